"""The native library the frozen binary ships: stable-diffusion.cpp from the pinned binding's own
sources, with ggml's CPU code as run-time-selected variants (`GGML_BACKEND_DL`), never `-march=native`.

Built with cmake directly, not through pip: pip's wheel cache is keyed by name and version only, so
a wheel built with other flags could stand in for this one (or this one for the venv's) unnoticed.
The result is cached under ~/.cache/diffusion-sidecar/native/, keyed by the binding's version and
everything below that changes the build; a clean clone with a warm cache builds nothing.

    python build/native_library.py        # build if needed, print the library folder
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BINDING = "stable-diffusion-cpp-python"
# The sdist is the one requirements/all.lock pins, checked against the lock's hash when downloaded.
LOCK = ROOT / "requirements" / "all.lock"


def locked(name: str, lock: Path = LOCK) -> tuple[str, list[str]]:
    """The version a uv/pip-compile lock pins for `name`, and its hashes."""
    entry = re.search(rf"^{re.escape(name)}==(\S+)((?:\s*\\\n\s+--hash=\S+)+)", lock.read_text(), re.MULTILINE)
    if entry is None:
        raise SystemExit(f"{lock} pins no {name}")
    return entry.group(1), re.findall(r"--hash=(\S+)", entry.group(2))


VERSION, SDIST_HASHES = locked(BINDING)

# ggml's x86 variants (ggml/src/CMakeLists.txt, GGML_CPU_ALL_VARIANTS) kept here, each a full
# compile of ggml's CPU code (about 3 minutes on 2 cores). The others (sandybridge, ivybridge,
# piledriver, cannonlake, cascadelake, icelake, cooperlake, alderlake, sapphirerapids) add small
# gains on the CPUs they name and would triple the build; their CPUs run the next one down.
VULKAN = shutil.which("glslc") is not None and Path("/usr/include/vulkan/vulkan.hpp").exists()
VARIANTS = (
    "x64",  # any x86-64 (SSE2 only)
    "sse42",  # x86-64-v2
    "haswell",  # x86-64-v3: AVX2, FMA, F16C (most laptops and desktops since 2013)
    "skylakex",  # x86-64-v4: AVX-512 F/CD/BW/DQ/VL
    "zen4",  # AVX-512 with VBMI, VNNI and BF16 (AMD Zen 4/5, Intel Sapphire Rapids without AMX)
)
CMAKE_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=OFF",
    "-DGGML_BACKEND_DL=ON",
    "-DGGML_CPU_ALL_VARIANTS=ON",
    "-DSD_BUILD_SHARED_GGML_LIB=ON",  # ggml's own libraries, so that the variants can share them
    "-DSD_BUILD_EXAMPLES=OFF",
    # The sources sit inside this repository: git would name its commit as stable-diffusion.cpp's.
    # Without it the version reads "unknown", as in pip's build from the same sdist.
    "-DGIT_EXE=false",
    # Every library finds the others in its own folder, wherever the binary unpacks them.
    "-DCMAKE_INSTALL_RPATH=$ORIGIN",
    "-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON",
    # The GPU backend is one more module beside the CPU variants, which ggml loads only where the
    # system has a Vulkan loader (docs/gpu.md). Its build tools are Debian's glslc and
    # libvulkan-dev (`make binary` installs them as root); without them the library is CPU-only.
    *(["-DSD_VULKAN=ON"] if VULKAN else []),
    *os.environ.get("NATIVE_CMAKE_ARGS", "").split(),
)
BUILD_DIR = ROOT / "build" / "native"
# What the binding loads; ggml's base libraries sit beside it and the variants are found by name.
LIBRARY = "libstable-diffusion.so"
VARIANT_PATTERN = "libggml-cpu-*.so"


def cache_key() -> str:
    recipe = {
        "shim": SHIM.read_text(),
        "version": VERSION,
        "variants": VARIANTS,
        "cmake": CMAKE_OPTIONS,
        "patches": _PATCHES,
    }
    return hashlib.sha256(json.dumps(recipe).encode()).hexdigest()[:12]


def library_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    backends = "cpu-variants-vulkan" if VULKAN else "cpu-variants"
    return base / "diffusion-sidecar" / "native" / f"{BINDING}-{VERSION}-{backends}-{cache_key()}"


# What the build changes in the shipped sources (part of the cache key): the variant list, one
# added file without which a GGML_BACKEND_DL library of this version does not load, and a guard
# that lets ggml's Vulkan code compile against Debian bookworm's Vulkan headers.
_PATCHES = 3
SHIM = Path(__file__).resolve().parent / "cpu_backend_dl.cpp"
_VARIANT_LINE = re.compile(r"^(\s*)ggml_add_cpu_backend_variant\((\w+)\b", re.MULTILINE)


def _edit_shipped(path: Path, edit: Callable[[str], str]) -> None:
    """Rewrites `path` from the file as shipped, kept beside it, so a changed edit takes effect."""
    shipped = path.with_name(path.name + ".shipped")
    if not shipped.exists():
        shutil.copy2(path, shipped)
    path.write_text(edit(shipped.read_text()))


def _keep_only_our_variants(text: str) -> str:
    """Comments out the x86 variants not in VARIANTS (ggml has no option to pick some)."""
    names = {match.group(2) for match in _VARIANT_LINE.finditer(text)}
    missing = set(VARIANTS) - names
    if missing:
        raise SystemExit(f"ggml {VERSION} has no CPU variants named {sorted(missing)}")
    x86 = {"x64", "sse42", "sandybridge", "ivybridge", "piledriver", "haswell", "skylakex", "cannonlake",
           "cascadelake", "icelake", "cooperlake", "zen4", "alderlake", "sapphirerapids"}  # fmt: skip

    def drop(match: re.Match[str]) -> str:
        name = match.group(2)
        kept = name not in x86 or name in VARIANTS
        return match.group(0) if kept else f"{match.group(1)}# not built: {match.group(0).lstrip()}"

    return _VARIANT_LINE.sub(drop, text)


# ggml 0.9.8 asks the validation layer for best-practice checks through VK_EXT_layer_settings, whose
# C++ types came with Vulkan headers 1.3.272; bookworm ships 1.3.239. Older headers build the
# instance without those settings (they only matter with the validation layer installed).
_LAYER_SETTINGS = re.compile(
    r"(    VkBool32 enable_best_practice = layer_settings;\n.*?"
    r"vk::InstanceCreateInfo instance_create_info\(vk::InstanceCreateFlags\{\}, &app_info, layers, extensions, "
    r"&layer_setting_info\);\n)",
    re.DOTALL,
)


def _guard_layer_settings(text: str) -> str:
    if len(_LAYER_SETTINGS.findall(text)) != 1:
        raise SystemExit(f"ggml {VERSION}: the Vulkan layer-settings block is not where this build expects it")
    older = "    vk::InstanceCreateInfo instance_create_info(vk::InstanceCreateFlags{}, &app_info, layers, extensions);\n"
    return _LAYER_SETTINGS.sub(
        lambda m: f"#if VK_HEADER_VERSION >= 272\n{m.group(1)}#else\n{older}#endif\n", text
    )


def _sources(work: Path) -> Path:
    """The binding's sdist from the package index: the same vendored sources pip builds, refused by
    pip unless its hash is one the lock lists."""
    pinned = work / "sdist.txt"
    pinned.write_text(f"{BINDING}=={VERSION} " + " ".join(f"--hash={h}" for h in SDIST_HASHES) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps",
         "--require-hashes", "-r", str(pinned), "--dest", str(work)],
        check=True,
    )  # fmt: skip
    (archive,) = work.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    (source,) = (p for p in work.iterdir() if p.is_dir())
    return source


def build() -> Path:
    target = library_dir()
    if (target / LIBRARY).exists():
        return target
    started = time.monotonic()
    source = BUILD_DIR.with_name("native-src")
    if not source.exists():
        with tempfile.TemporaryDirectory(dir=BUILD_DIR.parent) as work:
            shutil.move(_sources(Path(work)), source)
    vendored = source / "vendor" / "stable-diffusion.cpp"
    _edit_shipped(vendored / "ggml" / "src" / "CMakeLists.txt", _keep_only_our_variants)
    _edit_shipped(vendored / "ggml" / "src" / "ggml-vulkan" / "ggml-vulkan.cpp", _guard_layer_settings)
    shutil.copy2(SHIM, vendored / "src" / SHIM.name)  # its sources are globbed from src/*.cpp
    cmake = ["nice", "-n", "10", "cmake"] if shutil.which("nice") else ["cmake"]
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    subprocess.run([*cmake, "-S", str(source), "-B", str(BUILD_DIR), *generator, *CMAKE_OPTIONS], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    jobs = str(os.cpu_count() or 1)
    subprocess.run([*cmake, "--build", str(BUILD_DIR), "--target", "stable-diffusion", "-j", jobs], check=True)
    built = BUILD_DIR / "bin"
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    # Only the names the loaders ask for (symlinks resolved), so the bundle holds one copy of each.
    # The backends ggml loads at run time (CPU variants, a GPU backend) are modules without versions.
    wanted = {LIBRARY, *(p.name for p in built.glob("libggml-*.so") if not p.is_symlink())}
    while wanted:
        for library in wanted:
            shutil.copy2(built / library, partial / library)
        wanted = _needed(partial) - {p.name for p in partial.iterdir()}
    partial.rename(target)
    print(f"native library built in {time.monotonic() - started:.0f} s: {target}", file=sys.stderr)
    return target


def _needed(folder: Path) -> set[str]:
    """The names (libggml.so.0, ...) under which the libraries in `folder` link against ggml's."""
    needed: set[str] = set()
    for library in folder.iterdir():
        dynamic = subprocess.run(["readelf", "-d", str(library)], capture_output=True, text=True, check=True).stdout
        needed |= set(re.findall(r"\(NEEDED\).*\[(libggml[^\]]*)\]", dynamic))
    return needed


if __name__ == "__main__":
    print(build())
