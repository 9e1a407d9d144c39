"""UNets at full size in the original (ldm / CompVis) checkpoint layout, and the writer every full-size
kind shares: `sd1-full`, `controlnet` and `sdxl`.

stable-diffusion.cpp builds these UNets at sizes fixed per family (`unet.hpp`, `control.hpp`) and
reads nothing from the tensors but their names, so a synthetic one must be the real size: the
shapes below follow the library's constructors (`UnetModelBlock`, `ControlNetBlock`).

Full size means gigabytes, written on every fresh test machine: the values come from raw random
bits laid straight into fp16 (a random sign and mantissa under one exponent per tensor, chosen so
the spread matches fan-in scaling) instead of normal draws: 25 times quicker to make (measured),
so writing the bytes is what is left. Deterministic: each tensor's bits come from a generator
seeded by its name. The layer helpers are the FLUX generator's.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .flux import _conv as conv
from .flux import _group_norm as norm
from .flux import _linear as linear
from .sd1 import default_cache_dir, write_safetensors

Tensors = list[tuple[str, list[int]]]

MODEL_CHANNELS = 320
TIME_EMBED = 4 * MODEL_CHANNELS
VALUES = "sign-mantissa-fp16-v2"
"""Names the value scheme in every cache folder's digest: a changed scheme is written anew."""


@dataclass(frozen=True)
class UNet:
    channel_mult: tuple[int, ...]
    attention_levels: tuple[int, ...]
    transformer_depth: tuple[int, ...]
    """Per level; the middle block's attention takes the last."""
    context_dim: int
    linear_projection: bool
    middle_attention: bool = True
    label_inputs: int = 0
    """`label_emb`'s input width (SDXL's size and crop conditioning); 0 for none."""
    num_res_blocks: int = 2


SD1 = UNet((1, 2, 4, 4), (0, 1, 2), (1, 1, 1, 1), 768, linear_projection=False)
# "Vega": the smallest SDXL the library builds (no middle attention, shallow transformers).
SDXL_VEGA = UNet(
    (1, 2, 4), (1, 2), (1, 1, 2), 2048, linear_projection=True, middle_attention=False, label_inputs=2816
)


def _weight(name: str, inputs: int, outputs: int) -> Tensors:
    """A linear layer without a bias (attention's query, key and value)."""
    return [(f"{name}.weight", [outputs, inputs])]


def _resblock(name: str, inputs: int, outputs: int) -> Tensors:
    tensors = [
        *norm(f"{name}.in_layers.0", inputs),
        *conv(f"{name}.in_layers.2", inputs, outputs),
        *linear(f"{name}.emb_layers.1", TIME_EMBED, outputs),
        *norm(f"{name}.out_layers.0", outputs),
        *conv(f"{name}.out_layers.3", outputs, outputs),
    ]
    return tensors + (conv(f"{name}.skip_connection", inputs, outputs, kernel=1) if inputs != outputs else [])


def _transformer(name: str, channels: int, depth: int, spec: UNet) -> Tensors:
    def projection(part: str) -> Tensors:
        if spec.linear_projection:
            return linear(f"{name}.{part}", channels, channels)
        return conv(f"{name}.{part}", channels, channels, kernel=1)

    tensors = [*norm(f"{name}.norm", channels), *projection("proj_in")]
    for index in range(depth):
        block = f"{name}.transformer_blocks.{index}"
        for attention, context in (("attn1", channels), ("attn2", spec.context_dim)):
            tensors += [
                *_weight(f"{block}.{attention}.to_q", channels, channels),
                *_weight(f"{block}.{attention}.to_k", context, channels),
                *_weight(f"{block}.{attention}.to_v", context, channels),
                *linear(f"{block}.{attention}.to_out.0", channels, channels),
            ]
        tensors += [
            *linear(f"{block}.ff.net.0.proj", channels, 8 * channels),  # GEGLU: value and gate
            *linear(f"{block}.ff.net.2", 4 * channels, channels),
            *[tensor for part in ("norm1", "norm2", "norm3") for tensor in norm(f"{block}.{part}", channels)],
        ]
    return tensors + projection("proj_out")


def _embeddings(spec: UNet) -> Tensors:
    tensors = [*linear("time_embed.0", MODEL_CHANNELS, TIME_EMBED), *linear("time_embed.2", TIME_EMBED, TIME_EMBED)]
    if spec.label_inputs:
        tensors += [
            *linear("label_emb.0.0", spec.label_inputs, TIME_EMBED),
            *linear("label_emb.0.2", TIME_EMBED, TIME_EMBED),
        ]
    return tensors


def _input_blocks(spec: UNet) -> tuple[Tensors, list[int]]:
    """The encoder half, and the channels of every block's output (the skips, in order)."""
    tensors = conv("input_blocks.0.0", 4, MODEL_CHANNELS)
    skips = [MODEL_CHANNELS]
    channels, index = MODEL_CHANNELS, 0
    for level, mult in enumerate(spec.channel_mult):
        for _ in range(spec.num_res_blocks):
            index += 1
            tensors += _resblock(f"input_blocks.{index}.0", channels, mult * MODEL_CHANNELS)
            channels = mult * MODEL_CHANNELS
            if level in spec.attention_levels:
                tensors += _transformer(f"input_blocks.{index}.1", channels, spec.transformer_depth[level], spec)
            skips.append(channels)
        if level != len(spec.channel_mult) - 1:
            index += 1
            tensors += conv(f"input_blocks.{index}.0.op", channels, channels)
            skips.append(channels)
    return tensors, skips


def _middle_block(spec: UNet, channels: int, middle_attention: bool) -> Tensors:
    tensors = _resblock("middle_block.0", channels, channels)
    if middle_attention:
        tensors += _transformer("middle_block.1", channels, spec.transformer_depth[-1], spec)
        tensors += _resblock("middle_block.2", channels, channels)
    return tensors


def unet_tensors(spec: UNet) -> Tensors:
    """`UnetModelBlock`'s parameters, named as under `model.diffusion_model.`."""
    encoder, skips = _input_blocks(spec)
    channels = skips[-1]
    tensors = [*_embeddings(spec), *encoder, *_middle_block(spec, channels, spec.middle_attention)]
    index = 0
    for level in reversed(range(len(spec.channel_mult))):
        for block in range(spec.num_res_blocks + 1):
            outputs = spec.channel_mult[level] * MODEL_CHANNELS
            tensors += _resblock(f"output_blocks.{index}.0", channels + skips.pop(), outputs)
            channels, part = outputs, 1
            if level in spec.attention_levels:
                tensors += _transformer(f"output_blocks.{index}.1", channels, spec.transformer_depth[level], spec)
                part = 2
            if level > 0 and block == spec.num_res_blocks:
                tensors += conv(f"output_blocks.{index}.{part}.conv", channels, channels)
            index += 1
    return [*tensors, *norm("out.0", channels), *conv("out.2", channels, 4)]


HINT_CHANNELS = (3, 16, 16, 32, 32, 96, 96, 256, MODEL_CHANNELS)
"""`input_hint_block`: the control image, downscaled 8x by these convolutions to the latent's grid."""
# Seven SiLUs between the hint convolutions shrink a fan-in-scaled signal to almost nothing: with
# twice the spread there, two control images give clearly different pictures (measured: 0.4 mean
# levels apart at the plain spread).
WIDER = {".input_hint_block.": 1}
"""Name fragment: how many times to double the spread of the weights it names."""


def controlnet_tensors(spec: UNet) -> Tensors:
    """`ControlNetBlock`'s parameters: the UNet's encoder half and middle (always with attention),
    the hint convolutions, and a 1x1 "zero convolution" after every block whose output the UNet adds."""
    encoder, skips = _input_blocks(spec)
    hint = [
        tensor
        for index, (inputs, outputs) in enumerate(zip(HINT_CHANNELS, HINT_CHANNELS[1:]))
        for tensor in conv(f"input_hint_block.{2 * index}", inputs, outputs)
    ]
    zero_convs = [
        tensor
        for index, channels in enumerate(skips)
        for tensor in conv(f"zero_convs.{index}.0", channels, channels, kernel=1)
    ]
    return [
        *_embeddings(spec),
        *hint,
        *encoder,
        *zero_convs,
        *_middle_block(spec, skips[-1], middle_attention=True),
        *conv("middle_block_out.0", skips[-1], skips[-1], kernel=1),
    ]


def values(name: str, shape: list[int]) -> np.ndarray:
    """Zero biases, unit norm scales, and otherwise random fp16 with a spread of 1/sqrt(fan-in).

    Each value is +-(1 + m/1024) * 2**e: a random sign and 10-bit mantissa from the generator's raw
    bits, and one exponent `e` chosen so that the root mean square (1.53 * 2**e) is closest to the
    fan-in scale. No float arithmetic per value, which is what makes gigabytes quick to write.
    """
    if name.endswith("bias"):  # open_clip's `in_proj_bias` too
        return np.zeros(shape, dtype=np.float16)
    if len(shape) == 1:  # every other 1-D weight here is a norm's scale
        return np.ones(shape, dtype=np.float16)
    count = math.prod(shape)
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    raw = np.random.Generator(np.random.PCG64(seed)).bit_generator.random_raw(-(-count // 4))
    bits = raw.view(np.uint16)[:count]
    exponent = 15 + round(math.log2(1 / (math.sqrt(7 / 3) * math.sqrt(math.prod(shape[1:])))))
    exponent += sum(doublings for fragment, doublings in WIDER.items() if fragment in name)
    bits &= 0x83FF  # keep the sign and the mantissa
    bits |= np.uint16(exponent << 10)
    return bits.view(np.float16).reshape(shape)


def cache_folder(label: str, tensors: Tensors) -> Path:
    """Beside the other synthetic models in the cache; the name carries a digest of every tensor's
    name and shape and of the value scheme, so a changed model is written anew."""
    digest = hashlib.sha256(json.dumps([VALUES, tensors]).encode()).hexdigest()[:12]
    return default_cache_dir().parent / f"synthetic-{label}-{digest}"


def write_file(path: str | Path, tensors: Tensors) -> Path:
    """Write one safetensors file (its folder made if needed) and return its path; a complete file
    already there is kept (a cache is reused), and a file appears under its name only once complete."""
    target = Path(path).resolve()
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        write_safetensors(target, tensors, values)
    return target
