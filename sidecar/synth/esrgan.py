"""Write a synthetic-weights ESRGAN upscaler that stable-diffusion.cpp loads and runs.

The architecture is real: RealESRGAN's RRDBNet at 4x in its original tensor names (BasicSR's
`rrdbnet_arch.py`, as the vendored `esrgan.hpp` reads them), with one RRDB block instead of 23:
64 features, 32 growth channels, about 870K parameters (1.7 MB in fp16). The weights are random
(deterministic, seeded by each tensor's name), so its pictures are noise at four times the size.

The tensor names are a contract: stable-diffusion.cpp detects the block count from `body.N.` and
the scale from `conv_up1`/`conv_up2`.
"""

from __future__ import annotations

import os
from pathlib import Path

from .sd1 import write_safetensors

FEATURES = 64
GROWTH = 32
BLOCKS = 1
CHANNELS = 3  # RGB in and out


def _conv(name: str, out_channels: int, in_channels: int) -> list[tuple[str, list[int]]]:
    return [(f"{name}.weight", [out_channels, in_channels, 3, 3]), (f"{name}.bias", [out_channels])]


def tensors() -> list[tuple[str, list[int]]]:
    """Every tensor of a 4x RRDBNet with BLOCKS blocks, in the order the file stores them."""
    layout = _conv("conv_first", FEATURES, CHANNELS)
    for block in range(BLOCKS):
        for dense in (1, 2, 3):  # each RRDB chains three residual dense blocks of five convolutions
            for conv in range(1, 5):
                layout += _conv(f"body.{block}.rdb{dense}.conv{conv}", GROWTH, FEATURES + (conv - 1) * GROWTH)
            layout += _conv(f"body.{block}.rdb{dense}.conv5", FEATURES, FEATURES + 4 * GROWTH)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        layout += _conv(name, FEATURES, FEATURES)
    return layout + _conv("conv_last", CHANNELS, FEATURES)


def write_synthetic_esrgan(path: str | os.PathLike[str]) -> Path:
    """Write the upscaler to the file `path` (its folder is created if needed) and return its path."""
    target = Path(path).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(target, tensors())
    return target
