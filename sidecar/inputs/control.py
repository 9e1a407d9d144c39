"""Control: what `control_image`, `control_strength` and `canny` add to a `diffusion` request, and
whether a `modelConfig.controlNetPath` fits the model it was loaded with.

Every refusal here comes before any native work: stable-diffusion.cpp would silently drop a
control image on a model that reads none, and aborts the whole process at the first step when a
ControlNet does not fit its UNet. That is refused before the load where the model file's tensor
names tell (safetensors), and otherwise right after it, by the family the library reports.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Any

import anyio
import msgspec
from diffusion_sidecar_protocol.types import DiffusionParams, Limits

from ..rpc.errors import invalid_params
from ..runtime.models import LoadedModel, ModelManager
from ..worker import families, messages
from ..worker.native_files import open_regular
from . import images, model_header

NATIVE_DEFAULT_STRENGTH = 0.9
"""`sd_img_gen_params_init`'s `control_strength`."""
# FLUX Control reads the control image's latent in full; the library ignores any weight there.
FULL_STRENGTH = 1.0


async def job_fields(params: DiffusionParams, model: LoadedModel, limits: Limits) -> dict[str, Any]:
    """The worker's `Generate.control`, or a refusal naming the field at fault."""
    if params.control_image is msgspec.UNSET:
        for field, given in (("control_strength", params.control_strength is not msgspec.UNSET), ("canny", params.canny)):
            if given:
                raise invalid_params(field, "needs a `control_image`")
        return {}
    controlnet = model.load.control_net_path
    if not controlnet and model.family not in families.CONTROL_FAMILIES:
        fill = " (FLUX Fill repaints `init_image` under `mask_image` instead)" if model.family == "Flux Fill" else ""
        raise invalid_params(
            "control_image",
            f"this model ({model.family}) reads no control image{fill}: load a ControlNet with "
            "modelConfig.controlNetPath, or use a FLUX Control model",
        )
    if not controlnet and params.control_strength is not msgspec.UNSET:
        raise invalid_params(
            "control_strength", f"weighs a ControlNet; this model ({model.family}) has none and reads the control image in full"
        )
    if params.hires is not msgspec.UNSET:
        raise invalid_params("control_image", "does not combine with `hires` (its second pass would read it at the first pass's size)")
    size = (params.width, params.height)
    # Decoding is CPU work: off the event loop; a cancelled request stops waiting at once.
    image = await anyio.to_thread.run_sync(_picture, params.control_image, size, limits, abandon_on_cancel=True)
    if controlnet:
        strength = NATIVE_DEFAULT_STRENGTH if params.control_strength is msgspec.UNSET else params.control_strength
        name = await anyio.to_thread.run_sync(controlnet_label, controlnet, abandon_on_cancel=True)
    else:
        strength, name = FULL_STRENGTH, model.settings.name
    return {"control": messages.Control(image, params.canny, strength, name)}


def _picture(text: str, size: tuple[int, int], limits: Limits) -> messages.Pixels:
    # Resized to the output size as img2img's source is (the library would stretch it anyway).
    return images.picture(images.decode("control_image", text, limits), size)


def controlnet_label(path: str) -> str:
    """The ControlNet as A1111's extension lists it: `name [hash]`, the hash A1111's old short model
    hash (the SHA-256 of 64 KiB at 1 MiB, first 8 digits), which is what it writes and looks up."""
    stat = os.stat(path)
    return f"{Path(path).stem} [{_short_hash(path, stat.st_size, stat.st_mtime_ns)}]"


@functools.lru_cache(maxsize=64)
def _short_hash(path: str, size: int, mtime_ns: int) -> str:
    """Cached by file identity (size, mtime): one ControlNet serves many requests."""
    with open_regular(path) as file:
        file.seek(0x100000)
        return hashlib.sha256(file.read(0x10000)).hexdigest()[:8]


# How stable-diffusion.cpp tells a full UNet (`get_sd_version`): a middle attention block. Tiny and
# distilled UNets (BK-SDM, SDXS, SDXL Vega and SSD-1B) have none, and no ControlNet fits them.
MIDDLE_ATTENTION = ("middle_block.1.", "mid_block.resnets.1.")
UNET_MARKERS = ("input_blocks.", "down_blocks.")


def refuse_controlnet_before_load(model_path: str) -> None:
    """Raise INVALID_PARAMS naming `modelConfig.controlNetPath` when the model's file shows a diffusion
    model no ControlNet fits: a DiT, or a UNet without a middle attention block. Files whose names
    cannot be read here (.gguf, .ckpt) are judged after the load. Blocking reads: off the event loop."""
    names = model_header.diffusion_model_names(model_path)
    if not names:
        return
    if any(marker in name for name in names for marker in model_header.DIT_MARKERS):
        what = "a DiT (FLUX, SD3, Wan, ...), which reads no ControlNet"
    elif any(marker in name for name in names for marker in UNET_MARKERS) and not any(
        marker in name for name in names for marker in MIDDLE_ATTENTION
    ):
        what = "a tiny or distilled UNet (no middle attention block: BK-SDM, SDXS, SDXL Vega or SSD-1B)"
    else:
        return
    raise invalid_params(
        "modelConfig.controlNetPath",
        f"a ControlNet fits the full SD1.x, SD2.x and SDXL UNets only, and modelPath is {what}; the "
        "library would abort at the first step",
    )


async def refuse_unfitting_controlnet(model: LoadedModel, models: ModelManager) -> None:
    """After the load, for what `refuse_controlnet_before_load` could not read: a ControlNet that
    does not fit its UNet is refused and its worker ended, before any generation can reach the
    library's abort."""
    if not model.load.control_net_path or model.family in families.CONTROLNET_FAMILIES:
        return
    if models.has(model.model_id):
        await models.unload(model.model_id)
    raise invalid_params(
        "modelConfig.controlNetPath",
        f"a ControlNet fits the full SD1.x, SD2.x and SDXL UNets only, and this model is {model.family} "
        "(the library would abort at the first step); the model was unloaded",
    )
