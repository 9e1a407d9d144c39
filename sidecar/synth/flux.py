"""Write a synthetic FLUX model the way FLUX ships: a standalone DiT plus separate companion files.

- `diffusion.safetensors`: a FLUX.1-dev DiT (guidance embedding included) with hidden size 128,
  head dim 128 (the only one stable-diffusion.cpp's rotary embedding takes), one double-stream and
  one single-stream block: about 1.6M parameters. The library reads depth and width from the
  tensor names and shapes, so this is the real architecture, only shallow and narrow.
- `clip_l.safetensors`: the CLIP-L text encoder, the very tensors of the SD1 synthetic model's
  (the library builds CLIP-L at its full fixed size, 123M parameters).
- `vae.safetensors`: the FLUX autoencoder (16 latent channels, no quant convs) in the original
  `ae.safetensors` layout. The library infers the decoder's width from `decoder.conv_in`, so the
  decoder is narrow (ch 32); the encoder's width is fixed at 128 and is written in full, since
  img2img and reference images need it.

Weights are random (`sd1.tensor_values`, seeded by each tensor's name): every picture is
noise. Deterministic: the same code always writes the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .sd1 import load_manifest, write_safetensors

Tensors = list[tuple[str, list[int]]]

HIDDEN = 128
MLP_HIDDEN = 4 * HIDDEN
LATENT_CHANNELS = 16
PATCHED_CHANNELS = LATENT_CHANNELS * 2 * 2  # the DiT sees 2x2 latent patches
T5_WIDTH = 4096  # `txt_in` takes T5-XXL's width; with CLIP-L alone the library pads with zeros
CLIP_WIDTH = 768  # CLIP-L's pooled output feeds `vector_in`
TIME_FREQUENCIES = 256
VAE_CH_MULT = (1, 2, 4, 4)
VAE_ENCODER_CH = 128  # fixed in the library
VAE_DECODER_CH = 32  # smallest that GroupNorm's 32 groups allow

TEXT_ENCODER = "text_encoder/model.safetensors"  # the SD1 synthetic model's, reused as CLIP-L


def _linear(name: str, inputs: int, outputs: int) -> Tensors:
    return [(f"{name}.weight", [outputs, inputs]), (f"{name}.bias", [outputs])]


def _attention(name: str) -> Tensors:
    return [
        *_linear(f"{name}.qkv", HIDDEN, 3 * HIDDEN),
        (f"{name}.norm.query_norm.scale", [HIDDEN]),
        (f"{name}.norm.key_norm.scale", [HIDDEN]),
        *_linear(f"{name}.proj", HIDDEN, HIDDEN),
    ]


def _stream(name: str) -> Tensors:
    """One half (img or txt) of a double-stream block; its layer norms have no parameters."""
    return [
        *_linear(f"{name}_mod.lin", HIDDEN, 6 * HIDDEN),
        *_attention(f"{name}_attn"),
        *_linear(f"{name}_mlp.0", HIDDEN, MLP_HIDDEN),
        *_linear(f"{name}_mlp.2", MLP_HIDDEN, HIDDEN),
    ]


def _embedder(name: str, inputs: int) -> Tensors:
    return [*_linear(f"{name}.in_layer", inputs, HIDDEN), *_linear(f"{name}.out_layer", HIDDEN, HIDDEN)]


def diffusion_tensors(img_inputs: int = PATCHED_CHANNELS) -> Tensors:
    """`img_inputs`: what `img_in` takes per patch; FLUX Control and Fill widen it (`flux_variants`)."""
    return [
        *_linear("img_in", img_inputs, HIDDEN),
        *_embedder("time_in", TIME_FREQUENCIES),
        *_embedder("vector_in", CLIP_WIDTH),
        *_embedder("guidance_in", TIME_FREQUENCIES),
        *_linear("txt_in", T5_WIDTH, HIDDEN),
        *_stream("double_blocks.0.img"),
        *_stream("double_blocks.0.txt"),
        *_linear("single_blocks.0.linear1", HIDDEN, 3 * HIDDEN + MLP_HIDDEN),
        *_linear("single_blocks.0.linear2", HIDDEN + MLP_HIDDEN, HIDDEN),
        ("single_blocks.0.norm.query_norm.scale", [HIDDEN]),
        ("single_blocks.0.norm.key_norm.scale", [HIDDEN]),
        *_linear("single_blocks.0.modulation.lin", HIDDEN, 3 * HIDDEN),
        *_linear("final_layer.linear", HIDDEN, PATCHED_CHANNELS),
        *_linear("final_layer.adaLN_modulation.1", HIDDEN, 2 * HIDDEN),
    ]


def _conv(name: str, inputs: int, outputs: int, kernel: int = 3) -> Tensors:
    return [(f"{name}.weight", [outputs, inputs, kernel, kernel]), (f"{name}.bias", [outputs])]


def _group_norm(name: str, channels: int) -> Tensors:
    return [(f"{name}.weight", [channels]), (f"{name}.bias", [channels])]


def _resnet(name: str, inputs: int, outputs: int) -> Tensors:
    tensors = [
        *_group_norm(f"{name}.norm1", inputs),
        *_conv(f"{name}.conv1", inputs, outputs),
        *_group_norm(f"{name}.norm2", outputs),
        *_conv(f"{name}.conv2", outputs, outputs),
    ]
    if inputs != outputs:
        tensors += _conv(f"{name}.nin_shortcut", inputs, outputs, kernel=1)
    return tensors


def _middle(name: str, channels: int) -> Tensors:
    attention = [f"{name}.attn_1.{part}" for part in ("q", "k", "v", "proj_out")]
    return [
        *_resnet(f"{name}.block_1", channels, channels),
        *_group_norm(f"{name}.attn_1.norm", channels),
        *[tensor for part in attention for tensor in _conv(part, channels, channels, kernel=1)],
        *_resnet(f"{name}.block_2", channels, channels),
    ]


def _encoder(ch: int) -> Tensors:
    """ldm's `Encoder` (2 resnets per level), to a mean and log-variance per latent channel."""
    tensors = _conv("encoder.conv_in", 3, ch)
    channels = ch
    for level, mult in enumerate(VAE_CH_MULT):
        for block in range(2):
            tensors += _resnet(f"encoder.down.{level}.block.{block}", channels, ch * mult)
            channels = ch * mult
        if level != len(VAE_CH_MULT) - 1:
            tensors += _conv(f"encoder.down.{level}.downsample.conv", channels, channels)
    return [
        *tensors,
        *_middle("encoder.mid", channels),
        *_group_norm("encoder.norm_out", channels),
        *_conv("encoder.conv_out", channels, 2 * LATENT_CHANNELS),
    ]


def _decoder(ch: int) -> Tensors:
    """ldm's `Decoder` (3 resnets per level, walked from the deepest level up)."""
    channels = ch * VAE_CH_MULT[-1]
    tensors = [*_conv("decoder.conv_in", LATENT_CHANNELS, channels), *_middle("decoder.mid", channels)]
    for level in reversed(range(len(VAE_CH_MULT))):
        for block in range(3):
            tensors += _resnet(f"decoder.up.{level}.block.{block}", channels, ch * VAE_CH_MULT[level])
            channels = ch * VAE_CH_MULT[level]
        if level != 0:
            tensors += _conv(f"decoder.up.{level}.upsample.conv", channels, channels)
    return [*tensors, *_group_norm("decoder.norm_out", channels), *_conv("decoder.conv_out", channels, 3)]


def vae_tensors() -> Tensors:
    return [*_encoder(VAE_ENCODER_CH), *_decoder(VAE_DECODER_CH)]


def files(img_inputs: int = PATCHED_CHANNELS) -> dict[str, Tensors]:
    """Every file of the model, by name, with its tensors in write order."""
    return {
        "diffusion.safetensors": diffusion_tensors(img_inputs),
        "clip_l.safetensors": load_manifest()[TEXT_ENCODER],
        "vae.safetensors": vae_tensors(),
    }


def default_cache_dir(img_inputs: int = PATCHED_CHANNELS, label: str = "flux") -> Path:
    """Beside the SD1 model in the cache; the name carries a digest of every tensor's name and shape."""
    from .sd1 import default_cache_dir as sd1_cache_dir

    digest = hashlib.sha256(json.dumps(files(img_inputs)).encode()).hexdigest()[:12]
    return sd1_cache_dir().parent / f"synthetic-{label}-{digest}"


def write_synthetic_flux(directory: str | os.PathLike[str], img_inputs: int = PATCHED_CHANNELS) -> Path:
    """Write the files into `directory` (created if needed) and return the folder.

    Files already there are kept (a cache folder is reused); each one appears under its final name
    only once complete. The text encoder and VAE are the same for every `img_inputs`: where the
    plain FLUX's cache folder already holds one, it is hard-linked rather than written again
    (320 MB and several seconds per variant).
    """
    root = Path(directory).resolve()
    root.mkdir(parents=True, exist_ok=True)
    plain = default_cache_dir()
    for name, tensors in files(img_inputs).items():
        if (root / name).exists():
            continue
        twin = plain / name
        if img_inputs != PATCHED_CHANNELS and name != "diffusion.safetensors" and twin.exists():
            try:
                os.link(twin, root / name)
                continue
            except OSError:  # another file system, or links not allowed: write it
                pass
        write_safetensors(root / name, tensors)
    return root
