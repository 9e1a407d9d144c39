"""Every kind of synthetic-weights file `diffusion-sidecar synth-model --kind KIND PATH` writes.

One generator module per kind, imported only when its kind is asked for (numpy and the manifests
stay off the serving path). Each writer takes the target path and returns what it wrote.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SynthKind:
    module: str
    """Module in `sidecar.synth` with the writer."""
    writer: str
    description: str
    """What PATH becomes, for `--help`."""
    cache: str | None = None
    """Function in the module giving where tests keep this kind, shared by every test runner
    (`synth-model --kind KIND` without PATH writes there); None: the kind has no such place."""


KINDS: dict[str, SynthKind] = {
    "sd1": SynthKind(
        "sd1",
        "write_synthetic_model",
        "an SD1.x tiny-UNet model, diffusers folder layout (PATH is a folder)",
        "default_cache_dir",
    ),
    "sd1-single": SynthKind(
        "sd1_single",
        "write_synthetic_sd1_single",
        "the sd1 model as one checkpoint in the original layout, as model sites ship SD1 "
        "(PATH is a .safetensors file)",
        "default_cache_path",
    ),
    "sd1-full": SynthKind(
        "sd1_full",
        "write_synthetic_sd1_full",
        "a full-size SD1.x UNet (860M) with the sd1 model's CLIP-L and VAE, one original-layout checkpoint, "
        "2.1 GB (PATH is a .safetensors file)",
        "default_cache_path",
    ),
    "controlnet": SynthKind(
        "sd1_full",
        "write_synthetic_controlnet",
        "an SD1 ControlNet (361M, 0.7 GB) for sd1-full; no tiny UNet takes one (PATH is a .safetensors file)",
        "controlnet_cache_path",
    ),
    "sdxl": SynthKind(
        "sdxl",
        "write_synthetic_sdxl",
        'the smallest SDXL the library builds ("Vega": no middle attention) with full-size CLIP-L and '
        "OpenCLIP-G, one original-layout checkpoint, 3.3 GB (PATH is a .safetensors file)",
        "default_cache_path",
    ),
    "flux": SynthKind(
        "flux",
        "write_synthetic_flux",
        "a tiny FLUX.1-dev DiT with separate CLIP-L and VAE files (PATH is a folder: diffusion.safetensors, "
        "clip_l.safetensors, vae.safetensors)",
        "default_cache_dir",
    ),
    "flux-control": SynthKind(
        "flux_variants",
        "write_synthetic_flux_control",
        "the tiny FLUX with img_in widened to 128 inputs: a FLUX Control (canny/depth) model, laid out as `flux`",
        "control_cache_dir",
    ),
    "flux-fill": SynthKind(
        "flux_variants",
        "write_synthetic_flux_fill",
        "the tiny FLUX with img_in widened to 384 inputs: a FLUX Fill (inpainting) model, laid out as `flux`",
        "fill_cache_dir",
    ),
    "wan": SynthKind(
        "wan",
        "write_synthetic_wan",
        "a Wan 2.1 video model, 1.3B layout with one VACE block, no text encoder (PATH is a folder: "
        "diffusion.safetensors, vae.safetensors; 3.2 GB)",
        "default_cache_dir",
    ),
    "lora": SynthKind(
        "lora",
        "write_synthetic_lora",
        "a kohya-format rank-4 LoRA for the sd1 model, UNet and text encoder (PATH is a .safetensors file)",
    ),
    "taesd": SynthKind(
        "taesd",
        "write_synthetic_taesd",
        "a TAESD tiny autoencoder for the sd1 model's `tae` previews (PATH is a .safetensors file)",
    ),
    "esrgan": SynthKind(
        "esrgan", "write_synthetic_esrgan", "a 4x RealESRGAN upscaler with one RRDB block (PATH is a .safetensors file)"
    ),
}
DEFAULT_KIND = "sd1"


def write(kind: str, path: str | os.PathLike[str] | None = None) -> Path:
    """Write `kind` at `path`, or where the tests keep it (its `cache`) when `path` is None."""
    spec = KINDS[kind]
    module = importlib.import_module(f"sidecar.synth.{spec.module}")
    if path is None:
        assert spec.cache is not None, kind
        path = getattr(module, spec.cache)()
    return getattr(module, spec.writer)(path)
