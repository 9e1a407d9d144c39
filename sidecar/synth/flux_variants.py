"""FLUX Control and FLUX Fill: the synthetic FLUX (`flux`) with `img_in` widened.

stable-diffusion.cpp tells these families apart by `img_in`'s input width alone: the plain DiT
takes the noisy latent's 2x2 patches (16 channels x 4 = 64); Control also takes the control
image's latent (64 more, 128 in all, "Flux Control"); Fill takes the masked image's latent (64)
and the mask folded into 8x8 pixel blocks per latent pixel, then 2x2 patches (64 x 4 = 256),
384 in all ("Flux Fill"). Everything else is the tiny FLUX's, text encoder and VAE included.
"""

from __future__ import annotations

import os
from pathlib import Path

from .flux import PATCHED_CHANNELS, default_cache_dir, write_synthetic_flux

VAE_SCALE = 8
CONTROL_INPUTS = 2 * PATCHED_CHANNELS
FILL_INPUTS = 2 * PATCHED_CHANNELS + VAE_SCALE * VAE_SCALE * 4


def write_synthetic_flux_control(directory: str | os.PathLike[str]) -> Path:
    return write_synthetic_flux(directory, CONTROL_INPUTS)


def write_synthetic_flux_fill(directory: str | os.PathLike[str]) -> Path:
    return write_synthetic_flux(directory, FILL_INPUTS)


def control_cache_dir() -> Path:
    return default_cache_dir(CONTROL_INPUTS, "flux-control")


def fill_cache_dir() -> Path:
    return default_cache_dir(FILL_INPUTS, "flux-fill")
