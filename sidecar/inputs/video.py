"""What a `video` request adds to the checks: frame counts, the clip's size, its start and end images."""

from __future__ import annotations

import anyio
import msgspec
from diffusion_sidecar_protocol.types import Limits, VideoParams

from ..rpc.errors import invalid_params, limit_exceeded
from ..worker.families import VIDEO_FRAME_STRIDE, VIDEO_MODEL_IMAGES
from ..worker.messages import Pixels
from . import images
from .c_strings import refuse_nul

IMAGE_FIELDS = ("init_image", "end_image")


def check(params: VideoParams, limits: Limits) -> None:
    """The sidecar's limits and the frame rule, beyond what the params' types already check."""
    for field in ("prompt", "negative_prompt"):
        refuse_nul(field, value := getattr(params, field))
        if (size := len(value.encode())) > limits.maxPromptBytes:
            raise limit_exceeded(field, "maxPromptBytes", limits.maxPromptBytes, size)
    if params.video_frames % VIDEO_FRAME_STRIDE != 1:
        below = params.video_frames - params.video_frames % VIDEO_FRAME_STRIDE + 1
        raise invalid_params(
            "video_frames",
            f"must be {VIDEO_FRAME_STRIDE}n+1 (1, 5, 9, ...): the library would make {below}",
        )
    if params.video_frames > limits.maxVideoFrames:
        raise limit_exceeded("video_frames", "maxVideoFrames", limits.maxVideoFrames, params.video_frames)
    pixels = params.width * params.height
    if pixels > limits.maxPixels:
        raise limit_exceeded("width", "maxPixels", limits.maxPixels, pixels)
    if pixels * params.video_frames > limits.maxVideoPixels:
        raise limit_exceeded("video_frames", "maxVideoPixels", limits.maxVideoPixels, pixels * params.video_frames)
    if params.steps > limits.maxSteps:
        raise limit_exceeded("steps", "maxSteps", limits.maxSteps, params.steps)


def check_images_fit(params: VideoParams, video_model: str) -> None:
    """Refuse an image the model would drop without a word (a T2V model and `init_image`)."""
    takes = VIDEO_MODEL_IMAGES.get(video_model, frozenset())
    for field in IMAGE_FIELDS:
        if getattr(params, field) is not msgspec.UNSET and field not in takes:
            what = ", ".join(sorted(takes)) or "no image"
            raise invalid_params(field, f"this model ({video_model}) takes {what}")


async def job_images(params: VideoParams, limits: Limits) -> dict[str, Pixels | None]:
    """`init_image` and `end_image` as RGB at the clip's size, decoded off the event loop."""
    size = (params.width, params.height)
    pixels: dict[str, Pixels | None] = {}
    for field in IMAGE_FIELDS:
        text = getattr(params, field)
        pixels[field] = None if text is msgspec.UNSET else await anyio.to_thread.run_sync(_picture, field, text, size, limits)
    return pixels


def _picture(field: str, text: str, size: tuple[int, int], limits: Limits) -> Pixels:
    return images.picture(images.decode(field, text, limits), size)
