"""`upscale`: run an upscaler model (an ESRGAN file loaded on its own) on one image, a tick per tile."""

from __future__ import annotations

import base64
import time

import anyio
from diffusion_sidecar_protocol.types import Limits, UpscaleParams, UpscaleProgress, UpscaleResult, UpscaleStats

from ..inputs import images
from ..inputs.postprocess import check_output_pixels
from ..rpc.errors import invalid_params
from ..runtime.context import Method, RequestContext
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
    pixels = await anyio.to_thread.run_sync(_pixels, params.image, limits)
    width, height = pixels.width, pixels.height
    check_output_pixels("image", (width, height), model.upscale_factor**params.repeats, limits)
    ctx.active.model_id = model.model_id
    if params.timeoutMs:
        ctx.active.scope.deadline = (
            anyio.current_time() + params.timeoutMs / 1000 - (time.monotonic() - ctx.received_at)
        )
    job = messages.Upscale(rgb=pixels.data, width=width, height=height, repeats=params.repeats)

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
        raise outcome.error("GENERATION_FAILED", "Upscaling failed")
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


def _pixels(text: str, limits: Limits) -> messages.Pixels:
    """The `image` field as RGB at its own size, decoded and checked as every input image is."""
    image = images.decode("image", text, limits)
    return images.picture(image, image.size)


method = Method("upscale", UpscaleParams, handle)
