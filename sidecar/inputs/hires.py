"""`diffusion`'s `hires`: the hires fix resolved and checked before any work.

Natively a bad combination is noticed only after the whole first pass (or silently changed: other
sizes are rounded up, an unknown upscaler disables the fix). Here the target size must be one the
model makes exactly and fit `maxPixels`, and the `model` upscaler needs the ESRGAN file attached
at load, still there and still passing the checks of a path given (the native hires fix opens it
again on every call).
"""

from __future__ import annotations

import math
import struct

import msgspec
from diffusion_sidecar_protocol.types import HIRES_MODEL_UPSCALER, HIRES_UPSCALERS, DiffusionParams, HiresParams, Limits

from ..rpc.errors import invalid_params, limit_exceeded
from ..runtime.models import LoadedModel
from ..worker import messages
from ..worker.native_files import MODEL_UPSCALER
from .paths import checked_file

DEFAULT_SCALE = 2.0  # sd_hires_params_init's
_NATIVE_NAMES = {name.lower(): name for name in HIRES_UPSCALERS}


async def resolve(params: DiffusionParams, model: LoadedModel, limits: Limits) -> messages.Hires | None:
    if params.hires is msgspec.UNSET:
        return None
    hires = params.hires
    upscaler = _native_upscaler(hires.upscaler, model)
    if upscaler == MODEL_UPSCALER:  # the native hires fix opens the file attached at load again
        await checked_file("hires.upscaler", model.load.upscaler_path, limits.modelsRoot)
    width, height = _target_size(hires, params.width, params.height)
    for field, side in (("width", width), ("height", height)):
        if side % model.size_multiple or side > limits.maxSide:
            rule = f"must be a multiple of {model.size_multiple} for this model, at most {limits.maxSide}"
            raise invalid_params(f"hires.{field}", f"{rule}: the hires {field} would be {side}")
    if width * height > limits.maxPixels:
        raise limit_exceeded("hires", "maxPixels", limits.maxPixels, width * height)
    if hires.steps > limits.maxSteps:
        raise limit_exceeded("hires.steps", "maxSteps", limits.maxSteps, hires.steps)
    return messages.Hires(
        upscaler=upscaler,
        width=width,
        height=height,
        steps=hires.steps,
        denoising_strength=hires.denoising_strength,
        sampling_steps=second_pass_steps(hires.steps or params.steps, hires.denoising_strength),
        scale=hires.scale if hires.scale is not msgspec.UNSET else None,
    )


def _native_upscaler(name: str, model: LoadedModel) -> str:
    if name.lower() == HIRES_MODEL_UPSCALER:
        if not model.upscale_factor:
            raise invalid_params(
                "hires.upscaler", "`model` needs an upscaler attached at load (modelConfig.upscalerPath)"
            )
        return MODEL_UPSCALER
    if name.lower() not in _NATIVE_NAMES:
        choices = ", ".join([*HIRES_UPSCALERS, HIRES_MODEL_UPSCALER])
        raise invalid_params("hires.upscaler", f"must be one of (any case): {choices}")
    return _NATIVE_NAMES[name.lower()]


def _target_size(hires: HiresParams, width: int, height: int) -> tuple[int, int]:
    sized = hires.width is not msgspec.UNSET or hires.height is not msgspec.UNSET
    if sized and hires.scale is not msgspec.UNSET:
        raise invalid_params("hires", "give `scale`, or `width` and `height`; not both")
    if sized:
        if hires.width is msgspec.UNSET or hires.height is msgspec.UNSET:
            raise invalid_params("hires", "give both `width` and `height`")
        return hires.width, hires.height
    scale = DEFAULT_SCALE if hires.scale is msgspec.UNSET else hires.scale
    scale = _f32(scale)
    return math.floor(width * scale + 0.5), math.floor(height * scale + 0.5)  # C's round()


def second_pass_steps(steps: int, strength: float) -> int:
    """Steps the native second pass samples (A1111's rule: `steps / strength` scheduled, the last
    `strength` of them run), computed in float32 as the library does."""
    scheduled = int(_f32(steps / _f32(strength)))
    started = min(int(_f32(scheduled * _f32(strength))), scheduled - 1)
    return started + 1


def _f32(value: float) -> float:
    """`value` rounded to float32 (a double quotient or product rounded once more is exact)."""
    return struct.unpack("f", struct.pack("f", value))[0]
