"""The full-size SD1 model and an SD1 ControlNet, one file each in the original layout.

`sd1-full`: a full SD1.x UNet (860M parameters: 320 channels, mult 1,2,4,4, two res blocks per
level, a middle block) with the synthetic model's CLIP-L and VAE, named as `sd1-single` names them.
`controlnet`: the ControlNet that fits it (361M), under `control_model.` as the original `.pth`
files name it. stable-diffusion.cpp builds a ControlNet at SD1's full size whatever the file holds,
so nothing smaller can steer a picture: on the tiny UNet its residuals do not fit and the process
aborts. Random weights (`ldm_unet.values`): every picture is noise.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import ldm_unet, sd1_single

UNET_PREFIX = "model.diffusion_model."
FILE_NAME = "synthetic-sd1-full.safetensors"
CONTROLNET_FILE_NAME = "synthetic-controlnet-sd1.safetensors"


def tensors() -> ldm_unet.Tensors:
    unet = [(UNET_PREFIX + name, shape) for name, shape in ldm_unet.unet_tensors(ldm_unet.SD1)]
    companions = [(name, shape) for name, shape, _, _ in sd1_single.tensors() if not name.startswith(UNET_PREFIX)]
    return unet + companions


def controlnet_tensors() -> ldm_unet.Tensors:
    return [("control_model." + name, shape) for name, shape in ldm_unet.controlnet_tensors(ldm_unet.SD1)]


def default_cache_path() -> Path:
    return ldm_unet.cache_folder("sd1-full", tensors()) / FILE_NAME


def controlnet_cache_path() -> Path:
    return ldm_unet.cache_folder("controlnet-sd1", controlnet_tensors()) / CONTROLNET_FILE_NAME


def write_synthetic_sd1_full(path: str | os.PathLike[str]) -> Path:
    return ldm_unet.write_file(path, tensors())


def write_synthetic_controlnet(path: str | os.PathLike[str]) -> Path:
    return ldm_unet.write_file(path, controlnet_tensors())
