"""Which build of ggml's CPU code runs, and loading it where the library is built in variants.

The portable binary's library is built with `GGML_BACKEND_DL` and several CPU variants
(`libggml-cpu-haswell.so`, ...); ggml scores each against the CPU and loads the best one. By itself
ggml looks for them next to the executable and in the current folder, neither of which is the
folder the binary unpacks them into, so the worker names that folder before the first native call.
The development install's library has one CPU build compiled in (`GGML_NATIVE`): nothing to load.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import stable_diffusion_cpp.stable_diffusion_cpp as sd

VARIANT_PREFIX = "libggml-cpu-"
GPU_MODULE_PATTERN = "libggml-vulkan.so"
# Set by the frozen entry before the binding is imported; the binding loads the library it names.
LIBRARY_VARIABLE = "STABLE_DIFFUSION_CPP_LIB"
# ggml loads the variant that scores highest for the CPU's features, which is not always the fastest:
# on this project's AVX-512 machine the AVX2 (`haswell`) variant generated 30% faster (bench
# `portable`). A host that measured the same on its users' machines names the variant to load.
VARIANT_VARIABLE = "DIFFUSION_SIDECAR_CPU_VARIANT"


class _GgmlFeature(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("value", ctypes.c_char_p)]


class _DlInfo(ctypes.Structure):
    _fields_ = [
        ("fname", ctypes.c_char_p),
        ("fbase", ctypes.c_void_p),
        ("sname", ctypes.c_char_p),
        ("saddr", ctypes.c_void_p),
    ]


# The binding's handle reaches ggml's own libraries too (dlsym searches a library's dependencies).
_lib = sd._lib
_lib.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
_lib.ggml_backend_load_all_from_path.restype = None
_lib.ggml_backend_load.argtypes = [ctypes.c_char_p]
_lib.ggml_backend_load.restype = ctypes.c_void_p
_lib.ggml_backend_reg_by_name.argtypes = [ctypes.c_char_p]
_lib.ggml_backend_reg_by_name.restype = ctypes.c_void_p
_lib.ggml_backend_reg_get_proc_address.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_lib.ggml_backend_reg_get_proc_address.restype = ctypes.c_void_p
_get_features_type = ctypes.CFUNCTYPE(ctypes.POINTER(_GgmlFeature), ctypes.c_void_p)
_libc = ctypes.CDLL(None)
if hasattr(_libc, "dladdr"):
    _libc.dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
    _libc.dladdr.restype = ctypes.c_int


def load_variants() -> None:
    """Where the library comes in variants, load the one asked for or let ggml pick the best for
    this CPU (once). Raises ValueError for an asked variant that is not there, or that this CPU
    cannot run (ggml refuses to load it)."""
    library = os.environ.get(LIBRARY_VARIABLE)
    folder = Path(library).parent if library else None
    found = sorted(path.name for path in folder.glob(f"{VARIANT_PREFIX}*")) if folder else []
    if not found:
        return
    if not (asked := os.environ.get(VARIANT_VARIABLE)):
        _lib.ggml_backend_load_all_from_path(str(folder).encode())
        return
    names = [name.removeprefix(VARIANT_PREFIX).split(".")[0] for name in found]
    if asked not in names:
        raise ValueError(f"{VARIANT_VARIABLE}={asked!r}: no such CPU variant; this build has {', '.join(names)}")
    # The GPU backend beside the forced CPU code, as ggml's own loading adds it (first, so devices are
    # listed in ggml's usual order). Without a Vulkan loader on the system it fails to open, and the
    # CPU runs alone.
    for module in gpu_modules():
        _lib.ggml_backend_load(str(module).encode())
    if not _lib.ggml_backend_load(str(folder / found[names.index(asked)]).encode()):
        raise ValueError(f"{VARIANT_VARIABLE}={asked!r}: this CPU cannot run that variant")


def gpu_modules() -> list[Path]:
    """The GPU backend modules beside the library (the portable build's `libggml-vulkan.so`)."""
    library = os.environ.get(LIBRARY_VARIABLE)
    return sorted(Path(library).parent.glob(GPU_MODULE_PATTERN)) if library else []


def _features_function() -> int | None:
    registry = _lib.ggml_backend_reg_by_name(b"CPU")
    return _lib.ggml_backend_reg_get_proc_address(registry, b"ggml_backend_get_features") if registry else None


def variant() -> str | None:
    """The CPU variant's name (`haswell`, `zen4`, ...), or None where there is a single CPU build."""
    address = _features_function()
    if not address or not hasattr(_libc, "dladdr"):  # dladdr: POSIX; elsewhere the variant is unnamed
        return None
    info = _DlInfo()
    if not _libc.dladdr(ctypes.c_void_p(address), ctypes.byref(info)) or not info.fname:
        return None
    name = Path(os.fsdecode(info.fname)).name
    return name.removeprefix(VARIANT_PREFIX).split(".")[0] if name.startswith(VARIANT_PREFIX) else None


def features() -> list[str]:
    """What the running CPU code uses, as ggml names it (`AVX2`, `AVX512`, `OPENMP`, ...)."""
    address = _features_function()
    if not address:
        return []
    table = _get_features_type(address)(_lib.ggml_backend_reg_by_name(b"CPU"))
    names = []
    index = 0
    while (entry := table[index]).name is not None:  # the table ends with a null name
        if entry.value != b"0":
            names.append(entry.name.decode())
        index += 1
    return names
