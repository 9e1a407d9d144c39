"""Run one `Generate` request in the worker: each image of the batch, ticks as they happen."""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from . import hires, messages
from .native import NativeModel, RawImage
from .png import encode_png, lora_fields, lora_tags, parameters_text


def generate(model: NativeModel, job: messages.Generate, send: Callable[[msgspec.Struct], None]) -> None:
    """One native call per image, each with its own seed, as a native batch would use them.

    Separate calls cost a prompt encoding per image, but each finished image leaves at once
    (so a batch that is cut short keeps what it made) and every tick names its image.
    """
    method, schedule = model.resolve_sampling(job.sampling_method, job.scheduler)
    sampler_name, scheduler_name = model.names(method, schedule)
    for index, seed in enumerate(job.seeds):
        raw = model.generate(
            job, seed, method, schedule, lambda step, steps, index=index: send(messages.Tick(index, step, steps))
        )
        rgb, width, height, post_process_ms, upscale_fields = _upscaled(model, job, raw)
        parameters = parameters_text(
            prompt=job.prompt + lora_tags(job.loras),
            negative_prompt=job.negative_prompt,
            steps=job.steps,
            sampler=sampler_name,
            scheduler=scheduler_name,
            cfg_scale=job.cfg_scale,
            seed=seed,
            width=job.width,  # the first pass's, as A1111 writes it; hires and upscale fields say the rest
            height=job.height,
            model=job.model_name,
            extra={**hires.png_fields(job.hires), **lora_fields(job.loras), **upscale_fields},
        )
        png = encode_png(rgb, width, height, raw.channels, parameters)
        send(messages.Image(index, seed, width, height, png, post_process_ms))
    send(messages.Generated(sampler_name, scheduler_name))


def _upscaled(model: NativeModel, job: messages.Generate, raw: RawImage) -> tuple[bytes, int, int, float, dict[str, str]]:
    """The image after the attached upscaler's runs (`upscale`), the time they took, and what the PNG says of them."""
    if not job.upscale_repeats or model.upscaler is None:
        return raw.data, raw.width, raw.height, 0.0, {}
    started = time.monotonic()
    rgb, width, height = model.upscaler.run(raw.data, raw.width, raw.height, job.upscale_repeats, lambda *_: None)
    return rgb, width, height, round((time.monotonic() - started) * 1000, 3), model.upscaler.png_fields(job.upscale_repeats)
