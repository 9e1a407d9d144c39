"""The compute devices ggml sees (the CPU, Vulkan GPUs), and which one a model runs on.

stable-diffusion.cpp picks its device itself when a model loads (`sd_get_default_backend`,
src/util.cpp): the Vulkan device `SD_VK_DEVICE` names, else the first GPU, then an integrated GPU,
then the CPU. A model asks for one by the environment its worker starts with (`environment`),
since ggml reads those variables when it loads its backends, before the first native call; the
worker then reports the device by the same rule (`chosen`), corrected by what the library logged
when a device failed to start.

Light to import: the front uses `environment` when it starts a worker, and must never load the
native library itself.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Sequence
from typing import Protocol, TypeVar

from . import messages

# ggml_backend_dev_type, in ggml-backend.h's order.
DEVICE_TYPES = ("cpu", "gpu", "igpu", "accel")
CPU = "CPU"
VULKAN_PREFIX = "Vulkan"
# Read by ggml's Vulkan backend: which Vulkan devices it shows, by index ("" shows none). Without it
# ggml hides CPU-type Vulkan devices (a software rasteriser such as Mesa's lavapipe).
VISIBLE_VARIABLE = "GGML_VK_VISIBLE_DEVICES"
# Read by stable-diffusion.cpp: which `VulkanN` runs the model.
DEVICE_VARIABLE = "SD_VK_DEVICE"


_D = TypeVar("_D", bound="_Listed")


def environment(device: str | None) -> dict[str, str]:
    """What a worker's environment adds so that its model runs on `device` (None: the library's
    choice). The names are those `initialize` lists; the front has checked them."""
    if device is None:
        return {}
    if device == CPU:
        return {VISIBLE_VARIABLE: ""}
    return {DEVICE_VARIABLE: device.removeprefix(VULKAN_PREFIX)}


@functools.cache  # declared once per process: the probe and every load list devices
def _library() -> ctypes.CDLL:
    import stable_diffusion_cpp.stable_diffusion_cpp as sd

    lib = sd._lib  # dlsym reaches ggml's own libraries through it
    for name, argtypes, restype in (
        ("ggml_backend_dev_count", [], ctypes.c_size_t),
        ("ggml_backend_dev_get", [ctypes.c_size_t], ctypes.c_void_p),
        ("ggml_backend_dev_name", [ctypes.c_void_p], ctypes.c_char_p),
        ("ggml_backend_dev_description", [ctypes.c_void_p], ctypes.c_char_p),
        ("ggml_backend_dev_type", [ctypes.c_void_p], ctypes.c_int),
        ("ggml_backend_dev_memory", [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_size_t)], None),
    ):
        function = getattr(lib, name)
        function.argtypes = argtypes
        function.restype = restype
    return lib


def listed() -> list[messages.Device]:
    """Every device ggml registered, in its order (GPUs first, the CPU last)."""
    lib = _library()
    devices = []
    for index in range(lib.ggml_backend_dev_count()):
        device = lib.ggml_backend_dev_get(index)
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        lib.ggml_backend_dev_memory(device, ctypes.byref(free), ctypes.byref(total))
        kind = lib.ggml_backend_dev_type(device)
        devices.append(
            messages.Device(
                name=lib.ggml_backend_dev_name(device).decode(),
                description=lib.ggml_backend_dev_description(device).decode(errors="replace"),
                type=DEVICE_TYPES[kind] if 0 <= kind < len(DEVICE_TYPES) else "unknown",
                memory_total=total.value,
                memory_free=free.value,
            )
        )
    return devices


def warnings(devices: list[messages.Device]) -> list[str]:
    """Why a GPU backend that ships with this build shows no device, where it does not: every
    model then runs on the CPU, which a host should be able to tell its user."""
    from .cpu_backend import gpu_modules  # loads the native library: only where it is loaded anyway

    if not gpu_modules() or any(device.name.startswith(VULKAN_PREFIX) for device in devices):
        return []
    if os.environ.get(VISIBLE_VARIABLE) == "":
        reason = f"{VISIBLE_VARIABLE} is empty, which hides every Vulkan device"
    elif not _has_vulkan_loader():
        reason = "the system has no Vulkan loader (libvulkan.so.1): install the GPU's driver"
    else:
        reason = (
            "no Vulkan device started: no GPU driver (ICD) is installed, or it failed; ggml also hides "
            f"software devices such as Mesa's lavapipe unless {VISIBLE_VARIABLE} names them"
        )
    return [f"The Vulkan backend found no device ({reason}); models run on the CPU."]


def _has_vulkan_loader() -> bool:
    try:
        ctypes.CDLL("libvulkan.so.1")
    except OSError:
        return False
    return True


# sd.cpp has returned single-colour pictures as success on Vulkan drivers where the VAE decode ran
# out of memory (its issue #1220); a real picture is never one colour to the last pixel.
BLANK_PICTURE = (
    "the GPU returned a picture of a single colour (a known failure of the VAE decode on some Vulkan "
    "drivers when it runs out of memory); load the model with `vae_on_cpu: true`, or set `vae_tiling`"
)


def is_blank(pixels: bytes, channels: int) -> bool:
    """Every pixel the same colour."""
    return len(pixels) >= channels and pixels == pixels[:channels] * (len(pixels) // channels)


class _Listed(Protocol):
    name: str
    type: str


def pick(devices: Sequence[_D], asked: str | None = None) -> _D | None:
    """The device stable-diffusion.cpp runs a model on: `asked` where listed, else its own rule
    (the Vulkan device `SD_VK_DEVICE` names, the first GPU, an integrated GPU, the CPU)."""
    by_name = {device.name: device for device in devices}
    if asked is not None:
        return by_name.get(asked)
    if (index := os.environ.get(DEVICE_VARIABLE, "")).isdigit() and f"{VULKAN_PREFIX}{int(index)}" in by_name:
        return by_name[f"{VULKAN_PREFIX}{int(index)}"]
    for kind in ("gpu", "igpu", "cpu"):
        for device in devices:
            if device.type == kind:
                return device
    return None


def chosen(failed: bool) -> str:
    """In a worker, after loading: the device the model runs on. `failed`: the library logged that
    the device it picked did not start, and fell back to the CPU."""
    device = None if failed else pick(listed())
    return device.name if device is not None else CPU
