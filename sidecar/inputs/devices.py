"""`modelConfig.device`: a device `initialize` lists, and a model whose weights fit in it.

A model too large for a GPU's memory fails inside the native library in ways that range from a
clear allocation error to a process abort or, on some Vulkan drivers, a grey picture reported as
success. The weights' size is known before loading (the files' sizes: weights load as stored unless
`type` converts them), so a load that cannot fit is refused before any worker starts.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from diffusion_sidecar_protocol.types import TEXT_ENCODER_FILES, Device, ModelConfig

from ..rpc.errors import SidecarError, invalid_params

GIB = 1024**3


def check_device(config: ModelConfig, devices: list[Device]) -> str | None:
    """The device asked for, checked against the list; None: the library chooses."""
    if not isinstance(config.device, str):
        return None
    names = [device.name for device in devices]
    if config.device not in names:
        raise invalid_params(
            "modelConfig.device",
            f"one of the devices `initialize` lists: {', '.join(names)}",
            f"`modelConfig.device` is {config.device!r}; this sidecar's devices are {', '.join(names)}",
        )
    return config.device


def weights_on_device(files: dict[str, str], config: ModelConfig) -> list[str]:
    """The files whose weights go to the model's device: separate text encoders stay on the CPU with
    `clip_on_cpu`, a separate VAE with `vae_on_cpu` (inside a single checkpoint they cannot be told
    apart by size here, and count)."""
    kept_on_cpu = set()
    if config.clip_on_cpu is True:
        kept_on_cpu |= set(TEXT_ENCODER_FILES)
    if config.vae_on_cpu is True:
        kept_on_cpu.add("vaePath")
    return [path for name, path in files.items() if name not in kept_on_cpu]


def weights_bytes(files: Iterable[str]) -> int:
    """What the model's files hold (a diffusers folder: every file in it)."""
    total = 0
    for name in files:
        path = Path(name)
        if path.is_dir():
            total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        else:
            total += path.stat().st_size
    return total


def refuse_what_cannot_fit(device: Device | None, config: ModelConfig, files: Iterable[str]) -> None:
    """Weights larger than a GPU's memory: refused with what to try. Runs off the event loop."""
    if device is None or device.type == "cpu" or config.offload_to_cpu is True or config.type:
        return  # weights kept in system memory, or converted at load to a size not known here
    needed = weights_bytes(files)
    if needed <= device.memoryTotal:
        return
    raise SidecarError(
        "MODEL_LOAD_FAILED",
        f"The model's weights take {needed / GIB:.2f} GiB; {device.name} ({device.description}) has "
        f"{device.memoryTotal / GIB:.2f} GiB. Try `offload_to_cpu: true` (weights stay in system memory "
        "and move to the GPU as needed), `clip_on_cpu` and `vae_on_cpu`, a quantized `type` such as "
        "q8_0, or `device: \"CPU\"`",
        reason="deviceMemory",
        device=device.name,
        memoryTotal=device.memoryTotal,
        needed=needed,
    )
