"""What a model file's header says about it, read before any worker starts.

stable-diffusion.cpp loads a DiT (FLUX, SD3, Wan, ...) that has no text encoder at all, only to
crash the worker in the sampler (FLUX: a segfault). A safetensors file names every tensor in its
header, so a DiT without a text encoder is refused up front, from the names alone. Other formats
(.gguf, .ckpt) are left to the worker, which refuses the same load from the native log
(`worker/native.py`).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..rpc.errors import invalid_params
from ..worker.native_files import open_regular
from .model_hash import hashed_file

# The safetensors format caps its JSON header at 100 MB; past that, it is not a file we can judge.
MAX_HEADER_BYTES = 100_000_000

# Name fragments by which stable-diffusion.cpp recognises a DiT (`ModelLoader::get_sd_version`),
# with and without the `model.diffusion_model.` prefix, plus the diffusers FLUX layout.
DIT_MARKERS = (
    "double_blocks.",  # FLUX, FLUX.2, Ovis-Image
    "single_transformer_blocks.",  # FLUX, diffusers layout
    "joint_blocks.",  # SD3
    "transformer_blocks.0.img_mod.1.",  # Qwen-Image
    "cap_embedder.0.",  # Z-Image
    "layers.0.adaLN_sa_ln.",  # ERNIE-Image
    "blocks.0.cross_attn.norm_k.",  # Wan
    "llm_adapter.",  # Anima
    "nerf_final_layer_conv.",  # Chroma Radiance
)
# Prefixes under which a single-file checkpoint carries its text encoders.
TEXT_ENCODER_PREFIXES = (
    "text_encoders.", "cond_stage_model.", "conditioner.embedders.", "text_encoder.", "text_model.",
    "te.", "te1.", "te2.", "te3.",
)  # fmt: skip


def safetensors_names(path: str) -> list[str] | None:
    """The tensor names in a safetensors file's header, or None where it is not one we can read."""
    if Path(path).suffix.lower() != ".safetensors":
        return None
    try:
        with open_regular(path) as file:
            size = int.from_bytes(file.read(8), "little")
            if not 2 <= size <= MAX_HEADER_BYTES:
                return None
            header = json.loads(file.read(size))
    except (OSError, ValueError):
        return None  # the worker reports what is wrong with the file
    return [name for name in header if name != "__metadata__"] if isinstance(header, dict) else None


def diffusion_model_names(path: str) -> list[str] | None:
    """The tensor names of the file that holds the diffusion model at `path` (a diffusers folder's
    UNet file, else `path` itself), or None where it is not a safetensors file we can read."""
    return safetensors_names(hashed_file(path))


# Wan alone of the DiTs generates without a text encoder: it conditions on zeros (the prompt is ignored).
ALONE_DIT_MARKERS = ("blocks.0.cross_attn.norm_k.",)


def refuse_dit_without_text_encoder(field: str, path: str) -> bool:
    """Raise INVALID_PARAMS naming `field` when `path` is a DiT with no text encoder inside; True
    when it is a DiT that goes without one (Wan), to be loaded as a standalone diffusion model.

    Blocking file reads: call it off the event loop.
    """
    names = safetensors_names(path)
    if not names:
        return False
    marker = next((m for m in DIT_MARKERS if any(m in name for name in names)), None)
    if marker is None or any(name.startswith(TEXT_ENCODER_PREFIXES) for name in names):
        return False
    if marker in ALONE_DIT_MARKERS:
        return True
    raise invalid_params(
        field,
        "a DiT diffusion model without a text encoder needs one beside it: modelConfig.clipLPath, "
        "clipGPath, t5xxlPath or llmPath",
        f"`{field}` is a standalone DiT diffusion model (it has `{marker}` tensors and no text encoder); "
        "stable-diffusion.cpp cannot generate from it alone: give its text encoder(s) in modelConfig "
        "(clipLPath and/or t5xxlPath for FLUX, llmPath for Qwen-Image or Z-Image), and its VAE in vaePath",
    )
