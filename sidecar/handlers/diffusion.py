"""`diffusion`: generate images on a loaded model, streaming a tick per sampling step."""

from __future__ import annotations

import base64
import secrets
import time

import anyio
import msgspec
from diffusion_sidecar_protocol.types import (
    DiffusionParams,
    DiffusionPreview,
    DiffusionProgress,
    DiffusionResult,
    DiffusionStats,
    Limits,
)

from ..inputs import control, img2img, ref_images
from ..inputs.c_strings import refuse_nul
from ..inputs.hires import resolve as resolve_hires
from ..inputs.loras import resolve as resolve_loras
from ..inputs.postprocess import upscale_repeats
from ..rpc.errors import SidecarError, invalid_params, limit_exceeded
from ..runtime.context import Method, RequestContext
from ..runtime.models import LoadedModel
from ..runtime.scheduler import ComputeScheduler
from ..worker import messages
from ..worker.phases import DECODE, ENCODE, POST_PROCESS, SAMPLE

RANDOM_SEED_RANGE = 2**32


def check_limits(params: DiffusionParams, limits: Limits) -> None:
    """The sidecar's limits, beyond what the params' types already check."""
    if params.width * params.height > limits.maxPixels:
        raise limit_exceeded("width", "maxPixels", limits.maxPixels, params.width * params.height)
    if params.steps > limits.maxSteps:
        raise limit_exceeded("steps", "maxSteps", limits.maxSteps, params.steps)
    if params.batch_count > limits.maxBatchCount:
        raise limit_exceeded("batch_count", "maxBatchCount", limits.maxBatchCount, params.batch_count)
    if params.seed + params.batch_count - 1 > limits.maxSeed:
        raise invalid_params("seed", f"seed + batch_count - 1 must be <= {limits.maxSeed}")
    for field in ("prompt", "negative_prompt"):
        if (size := len(getattr(params, field).encode())) > limits.maxPromptBytes:
            raise limit_exceeded(field, "maxPromptBytes", limits.maxPromptBytes, size)


def check_fits_model(params: DiffusionParams, model: LoadedModel, limits: Limits, scheduler: ComputeScheduler) -> None:
    """What depends on the model: the sizes it can make, the room left in its queue."""
    if model.is_upscaler:
        raise invalid_params("modelId", f"names an upscaler model ({model.family}); it takes `upscale`, not `diffusion`")
    if model.video_model:
        # As the library itself has it (`sd_ctx_supports_image_generation`): a still is a clip's job.
        raise invalid_params("modelId", f"names a video model ({model.video_model}); it takes `video`, not `diffusion`")
    for field in ("width", "height"):
        if getattr(params, field) % model.size_multiple:
            raise invalid_params(field, f"must be a multiple of {model.size_multiple} for this model ({model.family})")
    if params.preview_method == "tae" and not model.load.taesd_path:
        # The library would silently decode `tae` previews with the full VAE instead.
        raise invalid_params("preview_method", "`tae` needs a model loaded with modelConfig.taesdPath")
    check_queue_room(model, limits, scheduler)


# The library's GITS schedule is a table that starts at 2 steps: with 1 it reads before the table
# and the worker dies with SIGSEGV (found by tests/test_native_fuzz.py; no other scheduler does).
GITS_MIN_STEPS = 2


def check_scheduler_steps(params: DiffusionParams, steps_run: int, hires: messages.Hires | None) -> None:
    if params.scheduler != "gits":
        return
    for runs, which in ((steps_run, "this request"), (hires.sampling_steps if hires else GITS_MIN_STEPS, "its hires pass")):
        if runs < GITS_MIN_STEPS:
            raise invalid_params(
                "scheduler",
                f"`gits` needs at least {GITS_MIN_STEPS} sampling steps, and {which} would run {runs} "
                "(img2img runs int(steps * strength) + 1 of its steps)",
            )


def check_queue_room(model: LoadedModel, limits: Limits, scheduler: ComputeScheduler) -> None:
    queued = sum(not turn.running for turn in scheduler.turns(model))  # waiting for the device counts
    if queued >= limits.maxQueue:
        raise SidecarError(
            "QUEUE_FULL",
            f"Model {model.model_id} already has {queued} requests waiting (maxQueue {limits.maxQueue})",
            modelId=model.model_id,
            limit="maxQueue",
            max=limits.maxQueue,
        )


async def handle(params: DiffusionParams, ctx: RequestContext) -> DiffusionResult:
    for field in ("prompt", "negative_prompt"):
        refuse_nul(field, getattr(params, field))
    source = await img2img.open_source(params, ctx.server.limits)
    params = img2img.sized(params, source)
    check_limits(params, ctx.server.limits)
    models = ctx.server.models
    model = models.get(params.modelId)
    img2img.check_source_size(params, source, model.size_multiple, model.family)
    check_fits_model(params, model, ctx.server.limits, ctx.server.scheduler)
    hires = await resolve_hires(params, model, ctx.server.limits)
    size = (hires.width, hires.height) if hires else (params.width, params.height)
    repeats = upscale_repeats(params, model, ctx.server.limits, size)
    ctx.active.model_id = model.model_id  # cancellable from here: a LoRA may have to download
    loras = await resolve_loras(params.lora, ctx.server.limits.maxLoras, ctx.server.limits.modelsRoot, ctx)
    if params.timeoutMs:
        ctx.active.scope.deadline = anyio.current_time() + params.timeoutMs / 1000 - (time.monotonic() - ctx.received_at)
    seed = secrets.randbelow(RANDOM_SEED_RANGE) if params.seed == -1 else params.seed
    seeds = [seed + index for index in range(params.batch_count)]
    steps_run = img2img.sampling_steps(params)  # img2img skips the noisiest steps
    check_scheduler_steps(params, steps_run, hires)
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
        model_hash=model.settings.model_hash,
        preview_method=params.preview_method or None,
        preview_interval=params.preview_interval,
        preview_noisy=params.preview_noisy,
        **await img2img.job_fields(params, source, ctx.server.limits),
        sampling_steps=steps_run,
        loras=loras,
        upscale_repeats=repeats,
        hires=hires,
        **await ref_images.job_fields(params, model, ctx.server.limits),
        **await control.job_fields(params, model, ctx.server.limits),
    )
    images: list[messages.Image] = []
    # A cancel or timeout answers with the images already finished (dispatch adds these).
    ctx.active.partial = {"outputs": [], "seeds": []}

    def on_event(event: messages.FromWorker) -> None:
        if isinstance(event, messages.Tick):
            tick = DiffusionProgress(
                requestId=ctx.request_id,
                step=event.step,
                totalSteps=event.steps,
                elapsedMs=ctx.elapsed_ms(),
                image=event.image,
                batchCount=len(seeds),
                phase=event.phase,
            )
            ctx.notify("diffusion/progress", tick)
        elif isinstance(event, messages.Preview):
            preview = DiffusionPreview(
                requestId=ctx.request_id,
                image=event.image,
                step=event.step,
                totalSteps=event.steps,
                width=event.width,
                height=event.height,
                png=_base64(event.png),
            )
            ctx.notify("diffusion/preview", preview)
        elif isinstance(event, messages.Image):
            images.append(event)
            ctx.active.partial["outputs"].append(_base64(event.png))
            ctx.active.partial["seeds"].append(event.seed)

    outcome, generation_ms = await ctx.run_on(model, job, on_event)
    if isinstance(outcome, messages.Failed):
        raise outcome.error("GENERATION_FAILED", "Generation failed")
    stats = model.record(
        generation_ms=generation_ms,
        steps=steps_run + (hires.sampling_steps if hires else 0),
        width=images[0].width,
        height=images[0].height,
        seeds=seeds,
    )
    return DiffusionResult(
        outputs=ctx.active.partial["outputs"],
        seeds=seeds,
        stats=_with_phases(stats, outcome),
        sampling_method=outcome.sampling_method,
        scheduler=outcome.scheduler,
    )


def _with_phases(stats: DiffusionStats, generated: messages.Generated) -> DiffusionStats:
    phase_ms = {name: round(ms, 3) for name, ms in generated.phase_ms.items()}
    denoise_ms = phase_ms.get(SAMPLE, 0.0)
    return msgspec.structs.replace(
        stats,
        conditionerMs=phase_ms.get(ENCODE, 0.0),
        denoiseMs=denoise_ms,
        vaeMs=phase_ms.get(DECODE, 0.0),
        postProcessMs=phase_ms.get(POST_PROCESS, 0.0),
        stepsPerSecond=round(generated.sampling_steps / denoise_ms * 1000, 3) if denoise_ms else 0.0,
    )


def _base64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


method = Method("diffusion", DiffusionParams, handle)
