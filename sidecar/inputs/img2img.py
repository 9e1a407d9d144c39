"""What img2img and inpainting add to a `diffusion` request: input images, output size, step count.

Everything here happens in the front before any native work: the images are decoded and checked
(in a worker thread, see `images`), the output size comes from the source when the request does
not give one, and the source and mask are converted to exactly what the native library takes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import anyio
import msgspec
from diffusion_sidecar_protocol.types import DEFAULT_SIDE, DiffusionParams, Limits
from PIL import Image

from ..rpc.errors import invalid_params
from . import images


@dataclass
class Source:
    """A request's `init_image`, decoded and oriented, and whether it sets the output size."""

    image: Image.Image
    sets_size: bool
    """True when `width` or `height` was omitted and so comes from the image."""


async def open_source(params: DiffusionParams, limits: Limits) -> Source | None:
    """The decoded `init_image` (None for text-to-image); refuses a mask without one."""
    if params.init_image is msgspec.UNSET:
        if params.mask_image is not msgspec.UNSET:
            raise invalid_params("mask_image", "needs an `init_image` to repaint")
        return None
    image = await _off_loop(images.decode, "init_image", params.init_image, limits)
    return Source(image, params.width is msgspec.UNSET or params.height is msgspec.UNSET)


def sized(params: DiffusionParams, source: Source | None) -> DiffusionParams:
    """`params` with both sides set: as given, else the source's, else the native default."""
    width, height = source.image.size if source else (DEFAULT_SIDE, DEFAULT_SIDE)
    return msgspec.structs.replace(
        params,
        width=width if params.width is msgspec.UNSET else params.width,
        height=height if params.height is msgspec.UNSET else params.height,
    )


def check_source_size(params: DiffusionParams, source: Source | None, size_multiple: int, family: str) -> None:
    """A size taken from the source must suit the model as a given one must (refused, not rounded)."""
    if source is None or not source.sets_size:
        return
    if params.width % size_multiple or params.height % size_multiple:
        raise invalid_params(
            "init_image",
            f"is {source.image.width}x{source.image.height}; without `width` and `height` the output "
            f"takes its size, and this model ({family}) makes only multiples of {size_multiple}: pass "
            "`width` and `height` (the image is resized to them)",
        )


async def job_fields(params: DiffusionParams, source: Source | None, limits: Limits) -> dict[str, Any]:
    """The worker's `Generate` fields for the input images, at the output size."""
    if source is None:
        return {}
    size = (params.width, params.height)
    init_image = await _off_loop(images.picture, source.image, size)
    mask_image = None
    if params.mask_image is not msgspec.UNSET:
        mask_image = await _off_loop(_mask, params.mask_image, size, limits)
    return {
        "init_image": init_image,
        "mask_image": mask_image,
        "strength": params.strength,
        "img_cfg_scale": None if params.img_cfg_scale is msgspec.UNSET else params.img_cfg_scale,
    }


def _mask(text: str, size: tuple[int, int], limits: Limits):
    return images.mask(images.decode("mask_image", text, limits), size)


def sampling_steps(params: DiffusionParams) -> int:
    """Steps the native library runs per image: img2img skips the noisiest `steps - t_enc - 1`.

    stable-diffusion.cpp computes `t_enc = int(steps * strength)` in 32-bit floats, and
    `t_enc = steps - 1` at most, then runs `t_enc + 1` steps (all of them at strength 1).
    """
    if params.init_image is msgspec.UNSET or params.strength >= 1:
        return params.steps
    t_enc = int(_float32(params.steps * _float32(params.strength)))
    return min(t_enc, params.steps - 1) + 1


def _float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


async def _off_loop(function, *args):
    # Decoding a large image takes long enough to delay other requests' answers; a cancelled
    # request stops waiting at once (the thread finishes on its own and its result is dropped).
    return await anyio.to_thread.run_sync(function, *args, abandon_on_cancel=True)
