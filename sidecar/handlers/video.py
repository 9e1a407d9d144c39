"""`video`: a clip from a video model (Wan), a tick per sampling step, the frames and one animated file.

A method of its own rather than `diffusion` with a frame count: `diffusion` is QVAC's, field for
field, and answers with `outputs` and per-image ticks; a clip has fields no image has (frames, fps,
flow shift, an end image), one seed, and an animated file in its result.
"""

from __future__ import annotations

import base64
import secrets
import time

import anyio
import msgspec
from diffusion_sidecar_protocol.types import VideoParams, VideoPreview, VideoProgress, VideoResult, VideoStats

from ..inputs import video
from ..rpc.errors import invalid_params
from ..runtime.context import Method, RequestContext
from ..worker import messages
from ..worker.phases import DECODE, ENCODE, POST_PROCESS, SAMPLE
from .diffusion import GITS_MIN_STEPS, RANDOM_SEED_RANGE, check_queue_room


async def handle(params: VideoParams, ctx: RequestContext) -> VideoResult:
    limits = ctx.server.limits
    video.check(params, limits)
    model = ctx.server.models.get(params.modelId)
    if not model.video_model:
        raise invalid_params("modelId", f"names an image model ({model.family}); it takes `diffusion`, not `video`")
    for field in ("width", "height"):
        if getattr(params, field) % model.size_multiple:
            raise invalid_params(field, f"must be a multiple of {model.size_multiple} for this model ({model.family})")
    if params.scheduler == "gits" and params.steps < GITS_MIN_STEPS:
        raise invalid_params("scheduler", f"`gits` needs at least {GITS_MIN_STEPS} sampling steps")
    if params.preview_method == "tae" and not model.load.taesd_path:
        raise invalid_params("preview_method", "`tae` needs a model loaded with modelConfig.taesdPath")
    video.check_images_fit(params, model.video_model)
    check_queue_room(model, limits, ctx.server.scheduler)
    pictures = await video.job_images(params, limits)
    ctx.active.model_id = model.model_id
    if params.timeoutMs:
        ctx.active.scope.deadline = anyio.current_time() + params.timeoutMs / 1000 - (time.monotonic() - ctx.received_at)
    seed = secrets.randbelow(RANDOM_SEED_RANGE) if params.seed == -1 else params.seed
    job = messages.Video(
        prompt=params.prompt,
        negative_prompt=params.negative_prompt,
        width=params.width,
        height=params.height,
        frames=params.video_frames,
        fps=params.fps,
        steps=params.steps,
        cfg_scale=params.cfg_scale,
        flow_shift=None if params.flow_shift is msgspec.UNSET else params.flow_shift,
        sampling_method=params.sampling_method or None,
        scheduler=params.scheduler or None,
        seed=seed,
        vae_tiling=model.settings.vae_tiling if params.vae_tiling is msgspec.UNSET else params.vae_tiling,
        model_name=model.settings.name,
        preview_method=params.preview_method or None,
        preview_interval=params.preview_interval,
        **pictures,
    )

    def on_event(event: messages.FromWorker) -> None:
        if isinstance(event, messages.Tick):
            tick = VideoProgress(
                requestId=ctx.request_id,
                step=event.step,
                totalSteps=event.steps,
                elapsedMs=ctx.elapsed_ms(),
                frames=params.video_frames,
                phase=event.phase,
            )
            ctx.notify("video/progress", tick)
        elif isinstance(event, messages.Preview):
            preview = VideoPreview(
                requestId=ctx.request_id,
                step=event.step,
                totalSteps=event.steps,
                width=event.width,
                height=event.height,
                png=_base64(event.png),
            )
            ctx.notify("video/preview", preview)

    outcome, generation_ms = await ctx.run_on(model, job, on_event)
    if isinstance(outcome, messages.Failed):
        raise outcome.error("GENERATION_FAILED", "Video generation failed")
    assert isinstance(outcome, messages.Clip)
    phase_ms = {name: round(ms, 3) for name, ms in outcome.phase_ms.items()}
    denoise_ms = phase_ms[SAMPLE]
    frames = len(outcome.frames)
    stats = VideoStats(
        modelLoadMs=model.load_ms,
        generationMs=generation_ms,
        conditionerMs=phase_ms[ENCODE],
        denoiseMs=denoise_ms,
        vaeMs=phase_ms[DECODE],
        postProcessMs=phase_ms[POST_PROCESS],
        stepsPerSecond=round(outcome.sampling_steps / denoise_ms * 1000, 3) if denoise_ms else 0.0,
        framesPerSecond=round(frames / generation_ms * 1000, 3) if generation_ms else 0.0,
        frames=frames,
        width=outcome.width,
        height=outcome.height,
        seed=seed,
    )
    return VideoResult(
        frames=[_base64(png) for png in outcome.frames],
        animation=_base64(outcome.animation),
        fps=params.fps,
        seed=seed,
        stats=stats,
        sampling_method=outcome.sampling_method,
        scheduler=outcome.scheduler,
    )


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


method = Method("video", VideoParams, handle)
