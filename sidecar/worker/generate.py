"""Run one `Generate` request in the worker: each image of the batch, ticks as they happen."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from . import messages
from .native import NativeModel
from .png import encode_png, parameters_text


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
        parameters = parameters_text(
            prompt=job.prompt,
            negative_prompt=job.negative_prompt,
            steps=job.steps,
            sampler=sampler_name,
            scheduler=scheduler_name,
            cfg_scale=job.cfg_scale,
            seed=seed,
            width=raw.width,
            height=raw.height,
            model=job.model_name,
            image_cfg_scale=job.img_cfg_scale if job.init_image else None,
            denoising_strength=job.strength if job.init_image else None,
            masked=job.mask_image is not None,
        )
        png = encode_png(raw.data, raw.width, raw.height, raw.channels, parameters)
        send(messages.Image(index, seed, raw.width, raw.height, png))
    send(messages.Generated(sampler_name, scheduler_name))
