"""Which phase a generation is in, and how long each phase took, on the worker's clock.

Boundaries come from what the library itself reports on the sampling thread:
- `encode` starts when the worker starts an image (the native call begins with LoRA application,
  latent preparation and text conditioning, and for img2img the VAE encoding of the init image);
- `sample` starts at the library's log line "generating image: i/n - seed s", written right
  before its sampling loop;
- `decode` starts at its log line "decoding n latents", written right before the VAE decode;
- post-processing starts when the native call returns (copying the pixels out, PNG encoding,
  sending the image).
Every moment from the start of the first image to the end of the request falls in exactly one
phase, so the phase times add up to the worker's whole time on the request.
"""

from __future__ import annotations

import time

ENCODE, SAMPLE, DECODE, POST_PROCESS = "encode", "sample", "decode", "postProcess"
ORDER = (ENCODE, SAMPLE, DECODE, POST_PROCESS)

LOG_MARKERS = {"generating image: ": SAMPLE, "decoding ": DECODE}
"""Native log messages (their text after `file:line - `) that start a phase."""


def phase_of_log(message: str, markers: dict[str, str] = LOG_MARKERS) -> str | None:
    for prefix, phase in markers.items():
        if message.startswith(prefix):
            return phase
    return None


class PhaseClock:
    """Adds up the time spent in each phase; phases of one image only move forward."""

    def __init__(self) -> None:
        self.totals_ms = dict.fromkeys(ORDER, 0.0)
        self.phase: str | None = None
        self._since = 0.0

    def begin_image(self) -> None:
        self._switch(ENCODE)

    def enter(self, phase: str) -> bool:
        """Move on to `phase`; False (nothing changes) if the image is already there or past it."""
        if self.phase is None or ORDER.index(phase) <= ORDER.index(self.phase):
            return False
        self._switch(phase)
        return True

    def stop(self) -> None:
        self._switch(None)

    def _switch(self, phase: str | None) -> None:
        now = time.monotonic()
        if self.phase is not None:
            self.totals_ms[self.phase] += (now - self._since) * 1000
        self.phase, self._since = phase, now
