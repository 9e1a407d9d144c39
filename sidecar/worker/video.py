"""Run one `Video` request in the worker: one native call, ticks as it goes, the frames as PNG and
the clip as an animated WebP."""

from __future__ import annotations

import io
from collections.abc import Callable

import msgspec
from PIL import Image

from . import messages
from .native import NativeModel, RawImage
from .phases import DECODE, ENCODE, POST_PROCESS, SAMPLE, PhaseClock, phase_of_log
from .png import encode_png, parameters_text
from .previews import native_previews

# `generate_video` logs these right before sampling and right before the VAE decode; everything
# before them (text conditioning, encoding the init image) is the encode phase.
VIDEO_LOG_MARKERS = {"generate_video ": SAMPLE, "generating latent video completed": DECODE}
# The EXIF tag ImageDescription: where an animated WebP keeps its parameters (it has no text chunks).
EXIF_IMAGE_DESCRIPTION = 0x010E


def generate_video(model: NativeModel, job: messages.Video, send: Callable[[msgspec.Struct], None]) -> None:
    method, schedule = model.resolve_sampling(job.sampling_method, job.scheduler)
    sampler_name, scheduler_name = model.names(method, schedule)
    clock = PhaseClock()
    clock.begin_image()
    send(messages.Tick(0, 0, job.steps, ENCODE))
    sampled = 0

    def on_step(step: int, steps: int) -> None:
        nonlocal sampled
        sampled += 1
        send(messages.Tick(0, step, steps, SAMPLE))
        previews.after_step(step)

    def on_log(message: str) -> None:
        phase = phase_of_log(message, VIDEO_LOG_MARKERS)
        if phase is not None and clock.enter(phase) and phase == DECODE:
            previews.end_sampling()
            send(messages.Tick(0, job.steps, job.steps, DECODE))

    previews = native_previews(send)
    model.on_log(on_log)
    previews.start(job, 0, lambda: job.steps)  # type: ignore[arg-type]  # a Video has what previews read
    try:
        frames = model.generate_video(job, method, schedule, on_step)
    finally:
        model.on_log(None)
        previews.stop()
    clock.enter(POST_PROCESS)
    parameters = parameters_text(
        prompt=job.prompt,
        negative_prompt=job.negative_prompt,
        steps=job.steps,
        sampler=sampler_name,
        scheduler=scheduler_name,
        cfg_scale=job.cfg_scale,
        seed=job.seed,
        width=frames[0].width,
        height=frames[0].height,
        model=job.model_name,
        extra=_video_fields(job, len(frames)),
    )
    pngs = [encode_png(frame.data, frame.width, frame.height, frame.channels, parameters) for frame in frames]
    animation = animated_webp(frames, job.fps, parameters)
    clock.stop()
    send(
        messages.Clip(
            pngs, animation, frames[0].width, frames[0].height, sampler_name, scheduler_name, clock.totals_ms, sampled
        )
    )


def _video_fields(job: messages.Video, frames: int) -> dict[str, object]:
    fields: dict[str, object] = {"Frames": frames, "FPS": job.fps}
    if job.flow_shift is not None:
        fields["Flow shift"] = f"{job.flow_shift:g}"
    if job.init_image is not None:
        fields["Init image"] = "yes"
    if job.end_image is not None:
        fields["End image"] = "yes"
    return fields


def animated_webp(frames: list[RawImage], fps: int, parameters: str) -> bytes:
    """Lossless (the frames are exactly the PNGs' pixels), looping forever, `fps` frames a second."""
    mode = {3: "RGB", 4: "RGBA", 1: "L"}[frames[0].channels]
    images = [Image.frombytes(mode, (frame.width, frame.height), frame.data) for frame in frames]
    exif = Image.Exif()
    exif[EXIF_IMAGE_DESCRIPTION] = parameters
    buffer = io.BytesIO()
    images[0].save(
        buffer,
        format="WEBP",
        save_all=True,
        append_images=images[1:],
        duration=round(1000 / fps),
        loop=0,
        lossless=True,
        exif=exif.tobytes(),
    )
    return buffer.getvalue()
