"""Write a synthetic ESRGAN upscaler (`synth-model --kind esrgan`): RealESRGAN's RRDBNet x4.

BasicSR's layout as stable-diffusion.cpp reads it (64 features, growth 32, `conv_up1`/`conv_up2`
for x4) with one RRDB block instead of 23: 870K parameters, 1.7 MB of fp16. Weights like the
model's: fan-in scaled normals, zero biases, seeded by name. Its output is noise too.
"""

from __future__ import annotations

import os
from pathlib import Path

from .synth_model import write_safetensors

FEATURES = 64
GROWTH = 32
BLOCKS = 1


def _conv(name: str, out_channels: int, in_channels: int) -> list[tuple[str, list[int]]]:
    return [(f"{name}.weight", [out_channels, in_channels, 3, 3]), (f"{name}.bias", [out_channels])]


def esrgan_tensors() -> list[tuple[str, list[int]]]:
    tensors = _conv("conv_first", FEATURES, 3)
    for block in range(BLOCKS):
        for dense in (1, 2, 3):
            for conv in range(1, 6):  # each conv sees the block input and every earlier conv's output
                out_channels = FEATURES if conv == 5 else GROWTH
                tensors += _conv(f"body.{block}.rdb{dense}.conv{conv}", out_channels, FEATURES + GROWTH * (conv - 1))
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        tensors += _conv(name, FEATURES, FEATURES)
    return tensors + _conv("conv_last", 3, FEATURES)


def write_synthetic_esrgan(path: str | os.PathLike[str]) -> Path:
    """Write the upscaler at `path` (its folder is created if needed) and return its path."""
    target = Path(path).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(target, esrgan_tensors())
    return target
