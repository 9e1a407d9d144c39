"""The synthetic SD1 model as users download SD1 checkpoints: one `.safetensors` file in the original
(CompVis / A1111) layout, `model.diffusion_model.*`, `first_stage_model.*` and
`cond_stage_model.transformer.*`.

The tensors are the diffusers folder's (`sd1.py`), byte for byte, under the names the original
training code gave them: the map is the one diffusers' `convert_diffusers_to_original_stable_diffusion.py`
applies (and stable-diffusion.cpp applies in reverse when it reads a diffusers folder). The VAE's
attention projections are 1x1 convolutions in the original layout, linear layers in diffusers: the
same values, shaped `[C, C, 1, 1]`. So a picture from this file is the folder's picture, exactly.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np

from .sd1 import _manifest_text, load_manifest, tensor_values, write_safetensors

UNET = "unet/diffusion_pytorch_model.safetensors"
VAE = "vae/diffusion_pytorch_model.safetensors"
TEXT_ENCODER = "text_encoder/model.safetensors"
FILE_NAME = "synthetic-sd1.safetensors"

_UNET_WHOLE = {
    "time_embedding.linear_1.": "time_embed.0.",
    "time_embedding.linear_2.": "time_embed.2.",
    "conv_in.": "input_blocks.0.0.",
    "conv_norm_out.": "out.0.",
    "conv_out.": "out.2.",
}
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}
_VAE_ATTENTION = {"group_norm.": "norm.", "to_q.": "q.", "to_k.": "k.", "to_v.": "v.", "to_out.0.": "proj_out."}


def unet_name(name: str) -> str:
    """A diffusers UNet tensor's name in the original layout (SD1 block numbering: three input
    blocks per level, a resnet and an attention at each, the down-sampler last)."""
    for diffusers, original in _UNET_WHOLE.items():
        if name.startswith(diffusers):
            return original + name[len(diffusers) :]
    if match := re.match(r"(down|up)_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", name):
        side, level, kind, index, rest = match.groups()
        block = 3 * int(level) + int(index) + (1 if side == "down" else 0)
        if kind == "resnets":
            part, _, tail = rest.partition(".")
            rest = f"{_UNET_RESNET[part]}.{tail}"
        blocks = "input_blocks" if side == "down" else "output_blocks"
        return f"{blocks}.{block}.{0 if kind == 'resnets' else 1}.{rest}"
    if match := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", name):
        level, rest = match.groups()
        return f"input_blocks.{3 * (int(level) + 1)}.0.op.{rest}"
    if match := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.(.*)", name):
        level, rest = int(match.group(1)), match.group(2)
        # After the level's resnet and attention, or its resnet alone (level 0 of SD1 has no attention).
        return f"output_blocks.{3 * level + 2}.{1 if level == 0 else 2}.{rest}"
    raise ValueError(f"no original name for UNet tensor {name!r}")


def vae_name(name: str) -> str:
    """A diffusers VAE tensor's name in the original layout (the decoder's levels numbered from the
    bottom up, as the original code built them)."""
    if name.startswith(("quant_conv.", "post_quant_conv.")):
        return name
    coder, rest = name.split(".", 1)
    levels = 4
    replacements = [
        (r"down_blocks\.(\d+)\.resnets\.(\d+)\.", lambda m: f"down.{m[1]}.block.{m[2]}."),
        (r"down_blocks\.(\d+)\.downsamplers\.0\.", lambda m: f"down.{m[1]}.downsample."),
        (r"up_blocks\.(\d+)\.resnets\.(\d+)\.", lambda m: f"up.{levels - 1 - int(m[1])}.block.{m[2]}."),
        (r"up_blocks\.(\d+)\.upsamplers\.0\.", lambda m: f"up.{levels - 1 - int(m[1])}.upsample."),
        (r"mid_block\.resnets\.(\d+)\.", lambda m: f"mid.block_{int(m[1]) + 1}."),
        (r"mid_block\.attentions\.0\.", lambda m: "mid.attn_1."),
    ]
    for pattern, replacement in replacements:
        rest = re.sub(pattern, replacement, rest)
    if rest.startswith("mid.attn_1."):
        head, tail = "mid.attn_1.", rest[len("mid.attn_1.") :]
        for diffusers, original in _VAE_ATTENTION.items():
            if tail.startswith(diffusers):
                tail = original + tail[len(diffusers) :]
        rest = head + tail
    rest = rest.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
    return f"{coder}.{rest}"


def _is_vae_attention_projection(original: str, shape: list[int]) -> bool:
    return ".mid.attn_1." in original and len(shape) == 2


def tensors() -> list[tuple[str, list[int], str, list[int]]]:
    """Every tensor of the file: its name and shape here, and its name and shape in the folder."""
    manifest = load_manifest()
    entries = []
    for prefix, relative, rename in (
        ("model.diffusion_model.", UNET, unet_name),
        ("first_stage_model.", VAE, vae_name),
        ("cond_stage_model.transformer.", TEXT_ENCODER, lambda name: name),
    ):
        for name, shape in manifest[relative]:
            original = prefix + rename(name)
            stored = [*shape, 1, 1] if _is_vae_attention_projection(original, shape) else shape
            entries.append((original, stored, name, shape))
    return entries


def default_cache_path() -> Path:
    """Beside the folder model in the cache; the name carries the manifest's digest, as the folder's does."""
    from .sd1 import default_cache_dir

    digest = hashlib.sha256(_manifest_text().encode()).hexdigest()[:12]
    return default_cache_dir().parent / f"synthetic-sd1-single-{digest}" / FILE_NAME


def write_synthetic_sd1_single(path: str | os.PathLike[str]) -> Path:
    """Write the checkpoint to `path` (its folder created if needed) and return it; a complete file
    already there is kept (a cache is reused), and a file appears under its name only once complete."""
    target = Path(path).resolve()
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    entries = tensors()
    by_name = {original: (folder_name, folder_shape) for original, _, folder_name, folder_shape in entries}

    def values(original: str, shape: list[int]) -> np.ndarray:
        folder_name, folder_shape = by_name[original]
        return tensor_values(folder_name, folder_shape).reshape(shape)

    write_safetensors(target, [(original, shape) for original, shape, _, _ in entries], values)
    return target
