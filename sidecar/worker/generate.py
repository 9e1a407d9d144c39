"""Run one `Generate` request in the worker: each image of the batch, ticks as they happen."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from . import control, hires, messages
from .native import NativeModel, RawImage
from .native_files import Generations
from .phases import DECODE, ENCODE, POST_PROCESS, SAMPLE, PhaseClock, phase_of_log
from .png import encode_png, lora_fields, lora_tags, parameters_text
from .previews import NativePreviews, native_previews


def generate(
    model: NativeModel, job: messages.Generate, send: Callable[[msgspec.Struct], None], files: Generations
) -> None:
    """One native call per image, each with its own seed, as a native batch would use them.

    Separate calls cost a prompt encoding per image, but each finished image leaves at once
    (so a batch that is cut short keeps what it made) and every tick names its image. Each call
    opens its files (LoRAs, the hires upscaler) again: they are checked right before each.
    """
    method, schedule = model.resolve_sampling(job.sampling_method, job.scheduler)
    sampler_name, scheduler_name = model.names(method, schedule)
    clock = PhaseClock()
    previews = native_previews(send)
    sampled = 0
    for index, seed in enumerate(job.seeds):
        progress = _ImageProgress(index, job.sampling_steps or job.steps, clock, previews, send)
        model.on_log(progress.on_log)
        previews.start(job, index, progress.steps_of)
        try:
            with files.generating(job):
                raw = model.generate(job, seed, method, schedule, progress.on_step)
        finally:
            model.on_log(None)
            previews.stop()
        clock.enter(POST_PROCESS)
        sampled += progress.sampled
        rgb, width, height, upscale_fields = _upscaled(model, job, raw)
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
            model_hash=job.model_hash,
            guidance=None if model.is_unet else job.guidance,
            image_cfg_scale=job.img_cfg_scale if job.init_image else None,
            denoising_strength=job.strength if job.init_image else None,
            masked=job.mask_image is not None,
            extra={**hires.png_fields(job.hires), **lora_fields(job.loras), **control.png_fields(job.control), **upscale_fields},
        )
        png = encode_png(rgb, width, height, raw.channels, parameters)
        send(messages.Image(index, seed, width, height, png))
    clock.stop()
    send(messages.Generated(sampler_name, scheduler_name, clock.totals_ms, sampled))


class _ImageProgress:
    """One image's ticks: a tick when a phase starts, and one per sampling step.

    Runs on the sampling thread (native callbacks); `send` is thread-safe.
    """

    def __init__(
        self,
        index: int,
        steps: int,
        clock: PhaseClock,
        previews: NativePreviews,
        send: Callable[[msgspec.Struct], None],
    ) -> None:
        self._index = index
        self._clock = clock
        self._previews = previews
        self._send = send
        self.steps = steps
        """The job's count until the library's own total comes with the first sampling tick."""
        self.sampled = 0
        clock.begin_image()
        send(messages.Tick(index, 0, steps, ENCODE))

    def steps_of(self) -> int:
        return self.steps

    def on_step(self, step: int, steps: int) -> None:
        self.steps = steps
        self.sampled += 1
        self._send(messages.Tick(self._index, step, steps, SAMPLE))
        self._previews.after_step(step)

    def on_log(self, message: str) -> None:
        phase = phase_of_log(message)
        if phase is None or not self._clock.enter(phase):
            return
        if phase == DECODE:
            self._previews.end_sampling()
            self._send(messages.Tick(self._index, self.steps, self.steps, DECODE))


def _upscaled(model: NativeModel, job: messages.Generate, raw: RawImage) -> tuple[bytes, int, int, dict[str, str]]:
    """The image after the attached upscaler's runs (`upscale`), and what the PNG says of them."""
    if not job.upscale_repeats or model.upscaler is None:
        return raw.data, raw.width, raw.height, {}
    rgb, width, height = model.upscaler.run(raw.data, raw.width, raw.height, job.upscale_repeats, lambda *_: None)
    return rgb, width, height, model.upscaler.png_fields(job.upscale_repeats)
