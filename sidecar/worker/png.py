"""Encode a generated image as PNG with its generation parameters embedded.

The `parameters` text chunk uses the A1111 layout that "PNG info" readers understand:
the prompt, a `Negative prompt:` line when there is one, then one line of `Key: value` pairs.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping

from PIL import Image, PngImagePlugin

from . import messages

# zlib level 1 is several times faster than Pillow's default 6 for a few percent more bytes
# (bench/output.py measures every level): the encode must stay small next to a fast GPU's
# generation, not only next to a CPU's.
COMPRESS_LEVEL = 1


def parameters_text(
    *,
    prompt: str,
    negative_prompt: str,
    steps: int,
    sampler: str,
    scheduler: str,
    cfg_scale: float,
    seed: int,
    width: int,
    height: int,
    model: str,
    model_hash: str | None = None,
    guidance: float | None = None,
    image_cfg_scale: float | None = None,
    denoising_strength: float | None = None,
    masked: bool = False,
    extra: Mapping[str, object] = {},
) -> str:
    """img2img adds A1111's `Denoising strength` (and `Image CFG scale` when given); inpainting adds
    `Mask blur: 0`, the key by which A1111 and PNG-info readers tell an inpainting (no blur here).
    `extra`: further `Key: value` pairs (hires fix, LoRAs, upscaling), in A1111's order."""
    lines = [prompt]
    if negative_prompt:
        lines.append(f"Negative prompt: {negative_prompt}")
    fields = {
        "Steps": steps,
        "Sampler": sampler,
        "Schedule type": scheduler,
        "CFG scale": f"{cfg_scale:g}",
        # Forge's name for FLUX's distilled guidance, which "PNG info" readers know; UNets have none.
        **({} if guidance is None else {"Distilled CFG Scale": f"{guidance:g}"}),
        "Seed": seed,
        "Size": f"{width}x{height}",
        # A1111's order; tools find the model by this hash (sd-parsers reads both).
        **({} if model_hash is None else {"Model hash": model_hash}),
        "Model": model,
    }
    if image_cfg_scale is not None:
        fields["Image CFG scale"] = f"{image_cfg_scale:g}"
    if denoising_strength is not None:
        fields["Denoising strength"] = f"{denoising_strength:g}"
    if masked:
        fields["Mask blur"] = 0
    fields.update(extra)
    lines.append(", ".join(f"{key}: {a1111_quote(str(value))}" for key, value in fields.items()))
    return "\n".join(lines)


def a1111_quote(value: str) -> str:
    """A value as A1111 writes it: JSON-quoted when it holds a separator its reader splits on."""
    return json.dumps(value, ensure_ascii=False) if any(c in value for c in ",:\n") else value


def lora_tags(loras: list[messages.Lora]) -> str:
    """The prompt tags A1111 would have needed for these LoRAs, so the prompt reproduces there."""
    return "".join(f" <lora:{lora.name}:{lora.weight:g}>" for lora in loras)


def lora_fields(loras: list[messages.Lora]) -> dict[str, str]:
    """`Lora hashes`, which sites that read the parameters use to link each LoRA."""
    if not loras:
        return {}
    return {"Lora hashes": ", ".join(f"{lora.name}: {lora.short_hash}" for lora in loras)}


def encode_png(
    rgb: bytes, width: int, height: int, channels: int, parameters: str | None, compress_level: int = COMPRESS_LEVEL
) -> bytes:
    """`parameters` None writes no text chunk (previews carry none)."""
    mode = {3: "RGB", 4: "RGBA", 1: "L"}[channels]
    image = Image.frombytes(mode, (width, height), rgb)
    info = PngImagePlugin.PngInfo()
    if parameters is not None:
        info.add_text("parameters", parameters)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info, compress_level=compress_level)
    return buffer.getvalue()
