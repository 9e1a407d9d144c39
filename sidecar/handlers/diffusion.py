"""`diffusion`: generate images on a loaded model, streaming a tick per sampling step."""

from __future__ import annotations

import base64
import secrets
import time

import msgspec

from ..context import Method, RequestContext
from ..errors import SidecarError, invalid_params
from ..models import elapsed_ms
from ..protocol import DiffusionParams, DiffusionProgress, DiffusionResult
from ..worker import messages

RANDOM_SEED_RANGE = 2**32


async def handle(params: DiffusionParams, ctx: RequestContext) -> DiffusionResult:
    model = ctx.server.models.get(params.modelId)
    for field in ("width", "height"):
        if getattr(params, field) % model.size_multiple:
            raise invalid_params(field, f"must be a multiple of {model.size_multiple} for this model ({model.family})")
    seed = secrets.randbelow(RANDOM_SEED_RANGE) if params.seed == -1 else params.seed
    seeds = [seed + index for index in range(params.batch_count)]
    job = messages.Generate(
        prompt=params.prompt,
        negative_prompt=params.negative_prompt,
        width=params.width,
        height=params.height,
        steps=params.steps,
        cfg_scale=params.cfg_scale,
        guidance=params.guidance,
        sampling_method=params.sampling_method or None,
        scheduler=params.scheduler or None,
        seeds=seeds,
        vae_tiling=model.settings.vae_tiling if params.vae_tiling is msgspec.UNSET else params.vae_tiling,
        cache_preset=params.cache_preset or None,
        model_name=model.settings.name,
    )
    images: list[messages.Image] = []

    def on_event(event: messages.FromWorker) -> None:
        if isinstance(event, messages.Tick):
            tick = DiffusionProgress(
                requestId=ctx.request_id,
                step=event.step,
                totalSteps=event.steps,
                elapsedMs=ctx.elapsed_ms(),
                image=event.image,
                batchCount=len(seeds),
            )
            ctx.notify("diffusion/progress", tick)
        elif isinstance(event, messages.Image):
            images.append(event)

    async with model.gate.turn():
        started = time.monotonic()
        outcome = await model.request(job, on_event)
        generation_ms = elapsed_ms(started)
    if isinstance(outcome, messages.Failed):
        raise SidecarError("GENERATION_FAILED", f"Generation failed: {outcome.reason}", reason=outcome.reason)
    stats = model.record(
        generation_ms=generation_ms, steps=params.steps, width=images[0].width, height=images[0].height, seeds=seeds
    )
    outputs = [base64.b64encode(image.png).decode("ascii") for image in images]
    return DiffusionResult(outputs=outputs, seeds=seeds, stats=stats)


method = Method("diffusion", DiffusionParams, handle)
