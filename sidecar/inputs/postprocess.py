"""`diffusion`'s `upscale`: the attached ESRGAN file run on each image after generation."""

from __future__ import annotations

import msgspec
from diffusion_sidecar_protocol.types import DiffusionParams, Limits, UpscaleSpec

from ..rpc.errors import invalid_params, limit_exceeded
from ..runtime.models import LoadedModel


def upscale_repeats(params: DiffusionParams, model: LoadedModel, limits: Limits, size: tuple[int, int]) -> int:
    """How many times the upscaler runs on each image (0: not asked); the final `size` must fit."""
    if params.upscale is msgspec.UNSET or params.upscale is False:
        return 0
    repeats = params.upscale.repeats if isinstance(params.upscale, UpscaleSpec) else 1
    if not model.upscale_factor:
        raise invalid_params("upscale", "needs an upscaler attached to the model at load (modelConfig.upscalerPath)")
    check_output_pixels("upscale", size, model.upscale_factor**repeats, limits)
    return repeats


def check_output_pixels(field: str, size: tuple[int, int], scale: int, limits: Limits) -> None:
    """An upscaled image counts against `maxPixels` like a generated one."""
    pixels = size[0] * scale * size[1] * scale
    if pixels > limits.maxPixels:
        raise limit_exceeded(field, "maxPixels", limits.maxPixels, pixels)
