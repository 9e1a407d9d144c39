"""What `ref_images` (FLUX Kontext-style reference images) adds to a `diffusion` request.

Checked in the front before any native work: the model must be of a family whose diffusion model
reads reference latents (stable-diffusion.cpp would otherwise encode them and silently drop them),
and each image goes through the one input-image path (`images`), off the event loop.
"""

from __future__ import annotations

import math
from typing import Any

import anyio
import msgspec
from diffusion_sidecar_protocol.types import DiffusionParams, Limits

from ..rpc.errors import invalid_params
from ..runtime.models import LoadedModel
from ..worker import families
from ..worker.messages import Pixels
from . import images

# stable-diffusion.cpp's own auto-resize (sd-cli's default): the output's pixel count, at most
# 1024x1024, the reference's aspect kept, sides rounded to multiples of 16 (32 for Qwen-Image).
MAX_REF_PIXELS = 1024 * 1024


async def job_fields(params: DiffusionParams, model: LoadedModel, limits: Limits) -> dict[str, Any]:
    """The worker's `Generate.ref_images`, or a refusal naming `ref_images`."""
    if params.ref_images is msgspec.UNSET:
        return {}
    most = families.max_ref_images(model.family)
    if most == 0:
        raise invalid_params(
            "ref_images",
            f"this model ({model.family}) does not use reference images (the library would drop them); "
            "FLUX-family (Kontext), Qwen-Image and Z-Image models do",
        )
    if len(params.ref_images) > most:
        raise invalid_params("ref_images", f"this model ({model.family}) uses {most} reference image only")
    multiple = 32 if model.family == "Qwen Image" else 16
    area = min(MAX_REF_PIXELS, params.width * params.height)
    return {
        "ref_images": [
            # A cancelled request stops waiting at once; the thread's result is dropped.
            await anyio.to_thread.run_sync(
                _reference, f"ref_images[{index}]", text, area, multiple, limits, abandon_on_cancel=True
            )
            for index, text in enumerate(params.ref_images)
        ]
    }


def _reference(field: str, text: str, area: int, multiple: int, limits: Limits) -> Pixels:
    image = images.decode(field, text, limits)
    return images.picture(image, reference_size(image.size, area, multiple))


def reference_size(size: tuple[int, int], area: int, multiple: int) -> tuple[int, int]:
    """The size stable-diffusion.cpp's auto-resize gives a reference image (never below `multiple`)."""
    width = math.sqrt(area * size[0] / size[1])
    height = width * size[1] / size[0]
    return tuple(max(multiple, round(side / multiple) * multiple) for side in (width, height))  # type: ignore[return-value]
