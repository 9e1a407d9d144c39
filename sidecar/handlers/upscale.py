"""`upscale`: run an upscaler model (an ESRGAN file loaded on its own) on one image, a tick per tile."""

from __future__ import annotations

import base64
import time

import anyio
from diffusion_sidecar_protocol.types import Limits, UpscaleParams, UpscaleProgress, UpscaleResult, UpscaleStats

from ..context import Method, RequestContext
from ..errors import SidecarError, invalid_params
from ..postprocess import check_output_pixels
from ..worker import messages
from .diffusion import check_queue_room


async def handle(params: UpscaleParams, ctx: RequestContext) -> UpscaleResult:
    limits = ctx.server.limits
    models = ctx.server.models
    model = models.get(params.modelId)
    if not model.is_upscaler:
        raise invalid_params(
            "modelId", f"names a diffusion model ({model.family}); `upscale` takes an upscaler model (an ESRGAN file)"
        )
    check_queue_room(model, limits, ctx.server.scheduler)
    rgb, width, height = await anyio.to_thread.run_sync(_decoded, params.image, limits)
    check_output_pixels("image", (width, height), model.upscale_factor**params.repeats, limits)
    ctx.active.model_id = model.model_id
    if params.timeoutMs:
        ctx.active.scope.deadline = (
            anyio.current_time() + params.timeoutMs / 1000 - (time.monotonic() - ctx.received_at)
        )
    job = messages.Upscale(rgb=rgb, width=width, height=height, repeats=params.repeats)

    def on_event(event: messages.FromWorker) -> None:
        if isinstance(event, messages.UpscaleTick):
            tick = UpscaleProgress(
                requestId=ctx.request_id,
                tile=event.tile,
                totalTiles=event.tiles,
                repeat=event.repeat,
                repeats=params.repeats,
                elapsedMs=ctx.elapsed_ms(),
            )
            ctx.notify("upscale/progress", tick)

    outcome, post_process_ms = await ctx.run_on(model, job, on_event)
    if isinstance(outcome, messages.Failed):
        raise SidecarError("GENERATION_FAILED", f"Upscaling failed: {outcome.reason}", reason=outcome.reason)
    assert isinstance(outcome, messages.Upscaled)
    stats = UpscaleStats(
        modelLoadMs=model.load_ms,
        postProcessMs=post_process_ms,
        width=outcome.width,
        height=outcome.height,
        inputWidth=width,
        inputHeight=height,
    )
    return UpscaleResult(output=base64.b64encode(outcome.png).decode("ascii"), stats=stats)


def _decoded(image: str, limits: Limits) -> tuple[bytes, int, int]:
    """RGB pixels of the `image` field.

    TODO(lead): stand-in until issue 12's sidecar/images.py lands (`images.decode` + RGB at its own
    size); replace this function with it.
    """
    import binascii
    import io

    from PIL import Image

    try:
        data = binascii.a2b_base64(image.encode("ascii"), strict_mode=True)
        with Image.open(io.BytesIO(data), formats=("PNG", "JPEG", "WEBP", "BMP")) as picture:
            if picture.width * picture.height > limits.maxPixels:
                raise invalid_params("image", f"is {picture.width}x{picture.height}, over maxPixels {limits.maxPixels}")
            rgb = picture.convert("RGB")
    except SidecarError:
        raise
    except Exception as error:  # noqa: BLE001 - a hostile file can make a decoder raise anything
        raise invalid_params("image", f"must be a base64 PNG, JPEG, WebP or BMP image ({error})") from None
    return rgb.tobytes(), rgb.width, rgb.height


method = Method("upscale", UpscaleParams, handle)
