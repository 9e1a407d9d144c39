"""The hires fix as the native generation parameters take it, and the ticks of its two passes."""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import stable_diffusion_cpp.stable_diffusion_cpp as sd

from . import messages
from .upscaler import NativeUpscaler

_str_to_upscaler = sd._lib.str_to_sd_hires_upscaler
_str_to_upscaler.argtypes = [ctypes.c_char_p]
_str_to_upscaler.restype = ctypes.c_int


def attach(params: sd.sd_img_gen_params_t, hires: messages.Hires | None, upscaler: NativeUpscaler | None) -> object:
    """Fill `params.hires`; the returned object owns what it points at: keep it alive during the call."""
    if hires is None:
        return None
    model_path = upscaler.path.encode() if upscaler is not None else b""
    params.hires.enabled = True
    params.hires.upscaler = _str_to_upscaler(hires.upscaler.encode())
    params.hires.model_path = model_path
    params.hires.target_width = hires.width
    params.hires.target_height = hires.height
    params.hires.steps = hires.steps
    params.hires.denoising_strength = hires.denoising_strength
    return model_path


class TwoPassSteps:
    """Sampling steps of both passes as one count: the first pass's 1..n, then the second's as n+1...

    The same native callback reports VAE and upscaler tiles between the passes; a second-pass step
    is told apart by its total and by following the previous one.
    """

    def __init__(self, on_step: Callable[[int, int], None], first: int, second: int) -> None:
        self._on_step = on_step
        self._first = first
        self._second = second
        self._done = 0

    def __call__(self, step: int, steps: int) -> None:
        in_first = self._done < self._first and steps == self._first
        in_second = self._done >= self._first and steps == self._second
        if (in_first or in_second) and step == self._done - (0 if in_first else self._first) + 1:
            self._done += 1
            self._on_step(self._done, self._first + self._second)


def png_fields(hires: messages.Hires | None) -> dict[str, str]:
    """A1111's hires-fix fields."""
    if hires is None:
        return {}
    size = (
        {"Hires upscale": f"{hires.scale:g}"}
        if hires.scale is not None
        else {"Hires resize": f"{hires.width}x{hires.height}"}
    )
    steps = {"Hires steps": str(hires.steps)} if hires.steps else {}
    return {"Denoising strength": f"{hires.denoising_strength:g}", **size, **steps, "Hires upscaler": hires.upscaler}
