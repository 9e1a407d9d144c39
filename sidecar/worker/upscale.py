"""Run one `Upscale` request in the worker: the upscaler's runs, a tick per tile, one PNG."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from . import messages
from .png import a1111_quote, encode_png
from .upscaler import NativeUpscaler


def upscale(upscaler: NativeUpscaler, job: messages.Upscale, send: Callable[[msgspec.Struct], None]) -> None:
    rgb, width, height = upscaler.run(
        job.rgb,
        job.width,
        job.height,
        job.repeats,
        lambda repeat, tile, tiles: send(messages.UpscaleTick(repeat, tile, tiles)),
    )
    fields = {"Size": f"{width}x{height}", **upscaler.png_fields(job.repeats)}
    parameters = ", ".join(f"{key}: {a1111_quote(value)}" for key, value in fields.items())
    send(messages.Upscaled(encode_png(rgb, width, height, 3, parameters), width, height))
