"""Write a synthetic TAESD (tiny autoencoder) file for the sd1 synthetic model's `tae` previews.

The layout is the diffusers `AutoencoderTiny` one that stable-diffusion.cpp's `tae.hpp` loads
(`decoder.layers.N.*`, `encoder.layers.N.*`, 4 latent channels, 64 features: 2.45M parameters);
the weights are random, drawn like the synthetic model's (seeded by each tensor's name), so the
file is deterministic and its previews are noise.
"""

from __future__ import annotations

import os
from pathlib import Path

from .sd1 import write_safetensors

FEATURES = 64
LATENT_CHANNELS = 4
RGB = 3


def _conv(name: str, n_in: int, n_out: int, *, bias: bool = True) -> list[tuple[str, list[int]]]:
    tensors = [(f"{name}.weight", [n_out, n_in, 3, 3])]
    return tensors + [(f"{name}.bias", [n_out])] if bias else tensors


def _block(name: str) -> list[tuple[str, list[int]]]:
    """A TAE residual block: three 3x3 convolutions (`conv.0/2/4`; 1 and 3 are ReLUs), no skip."""
    return [tensor for index in (0, 2, 4) for tensor in _conv(f"{name}.conv.{index}", FEATURES, FEATURES)]


def _decoder() -> list[tuple[str, list[int]]]:
    # Indexes follow nn.Sequential: 1 is a ReLU and 5, 10, 15 are upsamplings (no weights).
    tensors = _conv("decoder.layers.0", LATENT_CHANNELS, FEATURES)
    index = 2
    for _ in range(3):
        for _ in range(3):
            tensors += _block(f"decoder.layers.{index}")
            index += 1
        index += 1  # nn.Upsample
        tensors += _conv(f"decoder.layers.{index}", FEATURES, FEATURES, bias=False)
        index += 1
    tensors += _block(f"decoder.layers.{index}")
    tensors += _conv(f"decoder.layers.{index + 1}", FEATURES, RGB)
    return tensors


def _encoder() -> list[tuple[str, list[int]]]:
    tensors = _conv("encoder.layers.0", RGB, FEATURES) + _block("encoder.layers.1")
    index = 2
    for _ in range(3):
        tensors += _conv(f"encoder.layers.{index}", FEATURES, FEATURES, bias=False)  # stride 2
        index += 1
        for _ in range(3):
            tensors += _block(f"encoder.layers.{index}")
            index += 1
    return tensors + _conv(f"encoder.layers.{index}", FEATURES, LATENT_CHANNELS)


def taesd_tensors() -> list[tuple[str, list[int]]]:
    return _decoder() + _encoder()


def write_synthetic_taesd(path: str | os.PathLike[str]) -> Path:
    """Write the file at `path` (a `.safetensors` file; parent folders created) and return it."""
    target = Path(path).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(target, taesd_tensors())
    return target
