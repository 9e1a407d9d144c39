"""The smallest SDXL stable-diffusion.cpp builds, as one checkpoint file in the original layout.

The library fixes SDXL's UNet per variant and reads nothing but names; the smallest is "Vega"
(745M: no middle attention, transformer depths 1, 1, 2), told apart from full SDXL and SSD-1B by
the absence of `middle_block.1` and of a second transformer block in `output_blocks.3`. Both text
encoders are built at full size: CLIP-L (the synthetic SD1 model's tensors, 123M) and OpenCLIP
ViT-bigG (695M, in open_clip's own names as SDXL checkpoints ship it). The VAE is the synthetic
SD1 model's (SDXL's has the same shape). 1.56B parameters, 3.1 GB. Only a single file loads as
SDXL in this library version (a diffusers folder's `text_encoder_2` lands under the wrong
prefix). Random weights (`ldm_unet.values`): every picture is noise.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import ldm_unet, sd1_single
from .sd1 import load_manifest

FILE_NAME = "synthetic-sdxl-vega.safetensors"
CLIP_G = {"width": 1280, "layers": 32, "vocabulary": 49408, "tokens": 77}


def _open_clip_g() -> ldm_unet.Tensors:
    width, prefix = CLIP_G["width"], "conditioner.embedders.1.model."
    tensors = [
        (f"{prefix}token_embedding.weight", [CLIP_G["vocabulary"], width]),
        (f"{prefix}positional_embedding", [CLIP_G["tokens"], width]),
    ]
    for layer in range(CLIP_G["layers"]):
        block = f"{prefix}transformer.resblocks.{layer}"
        tensors += [
            *ldm_unet.norm(f"{block}.ln_1", width),
            (f"{block}.attn.in_proj_weight", [3 * width, width]),
            (f"{block}.attn.in_proj_bias", [3 * width]),
            *ldm_unet.linear(f"{block}.attn.out_proj", width, width),
            *ldm_unet.norm(f"{block}.ln_2", width),
            *ldm_unet.linear(f"{block}.mlp.c_fc", width, 4 * width),
            *ldm_unet.linear(f"{block}.mlp.c_proj", 4 * width, width),
        ]
    return [*tensors, *ldm_unet.norm(f"{prefix}ln_final", width), (f"{prefix}text_projection", [width, width])]


def tensors() -> ldm_unet.Tensors:
    unet = [("model.diffusion_model." + name, shape) for name, shape in ldm_unet.unet_tensors(ldm_unet.SDXL_VEGA)]
    vae = [(name, shape) for name, shape, _, _ in sd1_single.tensors() if name.startswith("first_stage_model.")]
    clip_l = [
        ("conditioner.embedders.0.transformer." + name, shape) for name, shape in load_manifest()[sd1_single.TEXT_ENCODER]
    ]
    return [*unet, *vae, *clip_l, *_open_clip_g()]


def default_cache_path() -> Path:
    return ldm_unet.cache_folder("sdxl-vega", tensors()) / FILE_NAME


def write_synthetic_sdxl(path: str | os.PathLike[str]) -> Path:
    return ldm_unet.write_file(path, tensors())
