"""The backend probe's answer, kept per build and machine so that a launch need not run the probe.

The answer (versions, CPU variant and features, devices) changes only when the native library, the
CPU, the GPU drivers or the environment variables that steer ggml change; the key covers each of
them. It is read first thing in a serving launch, before the front's heavy imports, so it uses
nothing but the standard library and msgspec. A cached answer is used at once and checked again
in the background (backend/probe.py); a corrupt or unreadable file is ignored, never fatal.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path

# Environment variables that change what the probe finds: the library loaded, the CPU variant, which
# Vulkan drivers and devices there are.
ENVIRONMENT = (
    "STABLE_DIFFUSION_CPP_LIB", "DIFFUSION_SIDECAR_CPU_VARIANT", "GGML_VK_VISIBLE_DEVICES", "SD_VK_DEVICE",
    "GGML_VK_DISABLE_F16", "VK_ICD_FILENAMES", "VK_DRIVER_FILES", "VK_ADD_DRIVER_FILES", "LD_LIBRARY_PATH",
)  # fmt: skip
# Where Vulkan drivers register (an installed or removed driver changes the devices), and the
# dynamic linker's cache (an installed or removed Vulkan loader changes it).
DRIVER_FOLDERS = ("/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d")
LINKER_CACHE = "/etc/ld.so.cache"


def cache_folder() -> Path:
    """The sidecar's cache folder: $DIFFUSION_SIDECAR_CACHE, else $XDG_CACHE_HOME or ~/.cache."""
    if folder := os.environ.get("DIFFUSION_SIDECAR_CACHE"):
        return Path(folder)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "diffusion-sidecar"


def _library_folder() -> Path | None:
    if library := os.environ.get("STABLE_DIFFUSION_CPP_LIB"):
        return Path(library).parent
    spec = importlib.util.find_spec("stable_diffusion_cpp")  # finds it without importing (and loading) it
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "lib"


def _files(folder: Path | str) -> list[tuple[str, int, int]]:
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError:
        return []
    return [(entry.name, (s := entry.stat()).st_size, s.st_mtime_ns) for entry in entries if entry.is_file()]


def _cpu() -> list[str]:
    """The first processor's model name and flags: what ggml picks its CPU variant from."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace").split("\n\n", 1)[0]
    except OSError:
        return []
    return [line for line in text.splitlines() if line.startswith(("model name", "flags"))]


def key(format_version: str) -> str:
    """What the answer depends on, hashed. `format_version`: the answer's shape (a field added to it
    makes every earlier answer stale)."""
    try:
        linker = os.stat(LINKER_CACHE).st_mtime_ns
    except OSError:
        linker = 0
    library = _library_folder()
    recipe = {
        "format": format_version,
        "program": sys.executable,
        "library": [str(library), _files(library)] if library else None,
        "cpu": _cpu(),
        "environment": {name: os.environ.get(name) for name in ENVIRONMENT},
        "drivers": {folder: _files(folder) for folder in DRIVER_FOLDERS},
        "linker": linker,
        "memory": os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def path(answer_key: str) -> Path:
    return cache_folder() / "probe" / f"{answer_key}.json"


def read(answer_key: str) -> bytes | None:
    """The stored answer's bytes, or None (none stored, or unreadable)."""
    try:
        return path(answer_key).read_bytes()
    except OSError:
        return None


def write(answer_key: str, answer: bytes) -> None:
    """Store atomically: a reader sees the old answer or the new one, never half of one. A cache that
    cannot be written only costs the next launch a probe."""
    target = path(answer_key)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".probe-", delete=False) as partial:
            partial.write(answer)
        os.replace(partial.name, target)
    except OSError as error:
        sys.stderr.write(f"[sidecar] the backend probe's answer was not cached ({error})\n")
