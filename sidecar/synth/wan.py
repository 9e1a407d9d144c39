"""Write a synthetic Wan 2.1 video model: the DiT (1.3B layout, with one VACE block) and its VAE.

- `diffusion.safetensors`: a Wan 2.1 DiT in the original layout (`blocks.N.*`). stable-diffusion.cpp
  reads only the block count from the tensors and aborts the process on any count but 30 or 40
  (`WanRunner`); every width is then fixed by that count. 30 blocks is the 1.3B model (dim 1536,
  FFN 8960, 12 heads): nothing can be narrowed, so the DiT is about 1.42B parameters. One VACE
  block (`vace_blocks.0`, its count read from the tensors) makes it a "Wan2.1-VACE-1.3B": the only
  1.3B layout that takes an init image without a CLIP vision encoder (632M more), so that
  image-to-video can be tested. It costs one block more per step (about 3%).
- `vae.safetensors`: the Wan 2.1 causal 3D VAE (z 16, dim 96, fixed by the library: 127M
  parameters), encoder included (VACE encodes its init and control frames).

No text encoder: without UMT5 the library conditions on zeros, so the prompt changes nothing.
Weights are random (`ldm_unet.values`: seeded by each tensor's name, written straight as fp16 bits,
about 25 times quicker than normal draws for these gigabytes): every frame is noise.
Deterministic: the same code always writes the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .ldm_unet import VALUES, values
from .sd1 import default_cache_dir as sd1_cache_dir
from .sd1 import write_safetensors

Tensors = list[tuple[str, list[int]]]

LAYERS = 30  # 30 or 40, or the library aborts; 30 is the 1.3B model
VACE_LAYERS = 1
DIM = 1536
FFN_DIM = 8960
FREQ_DIM = 256
TEXT_DIM = 4096  # UMT5-XXL's width, which `text_embedding` takes whether or not an encoder is loaded
LATENT_CHANNELS = 16
PATCH = (1, 2, 2)
VACE_IN_DIM = 96  # two 16-channel latents and a 64-value mask per latent pixel
VAE_DIM = 96
VAE_MULT = (1, 2, 4, 4)
VAE_RES_BLOCKS = 2


def _linear(name: str, inputs: int, outputs: int) -> Tensors:
    return [(f"{name}.weight", [outputs, inputs]), (f"{name}.bias", [outputs])]


def _conv(name: str, inputs: int, outputs: int, kernel: tuple[int, ...]) -> Tensors:
    return [(f"{name}.weight", [outputs, inputs, *kernel]), (f"{name}.bias", [outputs])]


def _attention(name: str) -> Tensors:
    projections = [tensor for part in "qkvo" for tensor in _linear(f"{name}.{part}", DIM, DIM)]
    return [*projections, (f"{name}.norm_q.weight", [DIM]), (f"{name}.norm_k.weight", [DIM])]


def _block(name: str) -> Tensors:
    """A T2V attention block; `norm1` and `norm2` are layer norms without parameters."""
    return [
        (f"{name}.modulation", [1, 6, DIM]),
        *_attention(f"{name}.self_attn"),
        (f"{name}.norm3.weight", [DIM]),
        (f"{name}.norm3.bias", [DIM]),
        *_attention(f"{name}.cross_attn"),
        *_linear(f"{name}.ffn.0", DIM, FFN_DIM),
        *_linear(f"{name}.ffn.2", FFN_DIM, DIM),
    ]


def diffusion_tensors() -> Tensors:
    tensors = [
        *_conv("patch_embedding", LATENT_CHANNELS, DIM, PATCH),
        *_linear("text_embedding.0", TEXT_DIM, DIM),
        *_linear("text_embedding.2", DIM, DIM),
        *_linear("time_embedding.0", FREQ_DIM, DIM),
        *_linear("time_embedding.2", DIM, DIM),
        *_linear("time_projection.1", DIM, 6 * DIM),
    ]
    for index in range(LAYERS):
        tensors += _block(f"blocks.{index}")
    tensors += [("head.modulation", [1, 2, DIM]), *_linear("head.head", DIM, LATENT_CHANNELS * PATCH[1] * PATCH[2])]
    for index in range(VACE_LAYERS):
        tensors += _block(f"vace_blocks.{index}")
        if index == 0:
            tensors += _linear(f"vace_blocks.{index}.before_proj", DIM, DIM)
        tensors += _linear(f"vace_blocks.{index}.after_proj", DIM, DIM)
    return tensors + _conv("vace_patch_embedding", VACE_IN_DIM, DIM, PATCH)


def _residual(name: str, inputs: int, outputs: int) -> Tensors:
    tensors = [
        (f"{name}.residual.0.gamma", [inputs]),
        *_conv(f"{name}.residual.2", inputs, outputs, (3, 3, 3)),
        (f"{name}.residual.3.gamma", [outputs]),
        *_conv(f"{name}.residual.6", outputs, outputs, (3, 3, 3)),
    ]
    return tensors + _conv(f"{name}.shortcut", inputs, outputs, (1, 1, 1)) if inputs != outputs else tensors


def _resample(name: str, dim: int, mode: str) -> Tensors:
    """Down: a strided conv (3D adds a temporal conv); up: a conv to half the channels (3D adds a
    temporal conv that doubles them, for the frame pairs it makes)."""
    if mode.startswith("down"):
        tensors = _conv(f"{name}.resample.1", dim, dim, (3, 3))
        return tensors + _conv(f"{name}.time_conv", dim, dim, (3, 1, 1)) if mode == "down3d" else tensors
    tensors = _conv(f"{name}.resample.1", dim, dim // 2, (3, 3))
    return tensors + _conv(f"{name}.time_conv", dim, dim * 2, (3, 1, 1)) if mode == "up3d" else tensors


def _middle(name: str, dim: int) -> Tensors:
    return [
        *_residual(f"{name}.middle.0", dim, dim),
        (f"{name}.middle.1.norm.gamma", [dim]),
        *_conv(f"{name}.middle.1.to_qkv", dim, 3 * dim, (1, 1)),
        *_conv(f"{name}.middle.1.proj", dim, dim, (1, 1)),
        *_residual(f"{name}.middle.2", dim, dim),
    ]


def _encoder() -> Tensors:
    dims = [VAE_DIM, *(VAE_DIM * mult for mult in VAE_MULT)]
    tensors, index = _conv("encoder.conv1", 3, dims[0], (3, 3, 3)), 0
    for level in range(len(VAE_MULT)):
        inputs = dims[level]
        for _ in range(VAE_RES_BLOCKS):
            tensors += _residual(f"encoder.downsamples.{index}", inputs, dims[level + 1])
            inputs, index = dims[level + 1], index + 1
        if level != len(VAE_MULT) - 1:
            tensors += _resample(f"encoder.downsamples.{index}", inputs, "down2d" if level == 0 else "down3d")
            index += 1
    return [
        *tensors,
        *_middle("encoder", dims[-1]),
        (f"encoder.head.0.gamma", [dims[-1]]),
        *_conv("encoder.head.2", dims[-1], 2 * LATENT_CHANNELS, (3, 3, 3)),
    ]


def _decoder() -> Tensors:
    dims = [VAE_DIM * VAE_MULT[-1], *(VAE_DIM * mult for mult in reversed(VAE_MULT))]
    tensors = [*_conv("decoder.conv1", LATENT_CHANNELS, dims[0], (3, 3, 3)), *_middle("decoder", dims[0])]
    index = 0
    for level in range(len(VAE_MULT)):
        # Each upsampling halved the channels its next level receives.
        inputs = dims[level] // 2 if level else dims[level]
        for _ in range(VAE_RES_BLOCKS + 1):
            tensors += _residual(f"decoder.upsamples.{index}", inputs, dims[level + 1])
            inputs, index = dims[level + 1], index + 1
        if level != len(VAE_MULT) - 1:
            tensors += _resample(f"decoder.upsamples.{index}", inputs, "up3d" if level < 2 else "up2d")
            index += 1
    return [
        *tensors,
        ("decoder.head.0.gamma", [dims[-1]]),
        *_conv("decoder.head.2", dims[-1], 3, (3, 3, 3)),
    ]


def vae_tensors() -> Tensors:
    return [
        *_encoder(),
        *_conv("conv1", 2 * LATENT_CHANNELS, 2 * LATENT_CHANNELS, (1, 1, 1)),
        *_decoder(),
        *_conv("conv2", LATENT_CHANNELS, LATENT_CHANNELS, (1, 1, 1)),
    ]


def files() -> dict[str, Tensors]:
    return {"diffusion.safetensors": diffusion_tensors(), "vae.safetensors": vae_tensors()}


def default_cache_dir() -> Path:
    """Beside the SD1 model in the cache; the name carries a digest of every tensor's name and shape,
    and of the value scheme."""
    digest = hashlib.sha256(json.dumps([VALUES, files()]).encode()).hexdigest()[:12]
    return sd1_cache_dir().parent / f"synthetic-wan-{digest}"


def write_synthetic_wan(directory: str | os.PathLike[str]) -> Path:
    """Write the files into `directory` (created if needed) and return the folder.

    Files already there are kept (a cache folder is reused); each appears under its final name only
    once complete.
    """
    root = Path(directory).resolve()
    root.mkdir(parents=True, exist_ok=True)
    for name, tensors in files().items():
        if not (root / name).exists():
            write_safetensors(root / name, tensors, values)
    return root
