"""Live previews: the native preview callback, and PNG encoding off the sampling thread.

Facts this module is built on (pinned stable-diffusion.cpp, see native-facts.md):
- The preview callback is process-global and runs on the sampling thread; the frames it gets
  are freed when it returns, so they are copied out at once.
- The native `interval` is stored but never read: the callback fires on every denoiser call.
  Second-order samplers (heun, dpm2) call it twice per step, the first time with the step number
  negated (the last step only once, negated). The interval and the step numbering are applied
  here, exactly as the progress ticks count steps.
- The library decodes a preview (for tae and vae, the costly part) before it calls back, at every
  step. But whether it does is read from the global `denoised`/`noisy` flags at each step, while
  the callback and mode are fixed when sampling starts: so after each step the flags are set for
  the next one, and steps between intervals cost no decode at all.
- A ctypes callback object that is garbage-collected while registered crashes the process: the
  one object is made once per worker and kept for the life of the process.

Encoding happens on one encoder thread with a latest-wins slot: the sampling thread only copies
bytes and never waits on PNG compression. If a frame is still waiting when the next one comes
(encoding slower than sampling), the older one is dropped; the last frame of an image is never
dropped, because `flush` waits for it before the image is reported.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

import stable_diffusion_cpp.stable_diffusion_cpp as sd

from . import messages
from .png import encode_png

MODES = {"proj": sd.Preview.PREVIEW_PROJ, "tae": sd.Preview.PREVIEW_TAE, "vae": sd.Preview.PREVIEW_VAE}


@dataclass
class Frame:
    """One preview, copied out of native memory, waiting to be encoded."""

    image: int
    step: int
    steps: int
    width: int
    height: int
    channels: int
    data: bytes


class PreviewEncoder:
    """A thread that turns frames into `Preview` messages; holds at most one frame waiting."""

    def __init__(self, send: Callable[[messages.Preview], None]) -> None:
        self._send = send
        self._slot: Frame | None = None
        self._busy = False
        self._changed = threading.Condition()
        threading.Thread(target=self._run, name="preview-encoder", daemon=True).start()

    def offer(self, frame: Frame) -> None:
        """Never blocks: the frame replaces any frame still waiting."""
        with self._changed:
            self._slot = frame
            self._changed.notify_all()

    def flush(self) -> None:
        """Return once every offered frame has been sent (or dropped for a newer one)."""
        with self._changed:
            self._changed.wait_for(lambda: self._slot is None and not self._busy)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._slot is not None)
                frame, self._slot, self._busy = self._slot, None, True
            try:
                png = encode_png(frame.data, frame.width, frame.height, frame.channels, None)
                self._send(messages.Preview(frame.image, frame.step, frame.steps, frame.width, frame.height, png))
            except Exception as error:  # one lost preview must not stop the ones after it
                print(f"preview of step {frame.step} dropped: {error!r}", file=sys.stderr, flush=True)
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()


class NativePreviews:
    """The process-global preview callback, pointed at one image's generation at a time."""

    def __init__(self, send: Callable[[messages.Preview], None]) -> None:
        self._encoder: PreviewEncoder | None = None
        self._send = send
        self._target: _Target | None = None
        self.callback = sd.sd_preview_callback(self._on_preview)  # kept alive as long as the worker

    def start(self, job: messages.Generate, image: int, steps_of: Callable[[], int]) -> None:
        """Preview this image as `job` asks (nothing when it asks for none).

        `steps_of` gives the image's sampling total, for the previews' `steps`.
        """
        if job.preview_method is None:
            return
        if self._encoder is None:
            self._encoder = PreviewEncoder(self._send)
        # A hires fix numbers its second pass's native steps from 1 again: it decodes every step.
        gated = job.hires is None and job.preview_interval > 1
        mode = MODES[job.preview_method]
        self._target = _Target(image, job.preview_interval, steps_of, self._encoder, mode, job.preview_noisy, gated)
        self._decode_at(1)

    def after_step(self, step: int) -> None:
        """Sampling step `step` is done (the sampling thread, between steps): set up the next one."""
        if self._target is not None and self._target.gated:
            self._decode_at(step + 1)

    def _decode_at(self, step: int) -> None:
        """Whether the library decodes a preview at `step` (see above)."""
        target = self._target
        assert target is not None
        decode = not target.gated or step % target.interval == 0
        # The library ignores the interval it is given (see above); 1 says what it does.
        sd.sd_set_preview_callback(self.callback, target.mode, 1, decode and not target.noisy, decode and target.noisy, None)

    def end_sampling(self) -> None:
        """Sampling is over: a held first-half frame was the last step's only one, send it."""
        if (target := self._target) is not None and target.held is not None:
            target.send(target.held)
            target.held = None

    def stop(self) -> None:
        """Stop previewing and wait until this image's previews have all been sent."""
        if self._target is None:
            return
        self.end_sampling()
        sd.sd_set_preview_callback(None, sd.Preview.PREVIEW_NONE, 1, False, False, None)
        self._target = None
        assert self._encoder is not None
        self._encoder.flush()

    def _on_preview(self, step: int, frame_count: int, frames: ctypes._Pointer, _noisy: bool, _data: object) -> None:
        target = self._target
        if target is None or frame_count < 1:
            return
        number = abs(step)
        if number <= target.last_step or number % target.interval:
            return
        frame = frames[0]  # more than one only for video models
        size = frame.width * frame.height * frame.channel
        copied = Frame(
            target.image,
            number,
            target.steps_of(),
            frame.width,
            frame.height,
            frame.channel,
            ctypes.string_at(frame.data, size),  # freed by the library when this returns
        )
        if step < 0:
            # The first half of a second-order step: its second half (same number, positive)
            # replaces it, except on the last step, which has no second half.
            target.held = copied
        else:
            target.held = None
            target.send(copied)


@dataclass
class _Target:
    image: int
    interval: int
    steps_of: Callable[[], int]
    encoder: PreviewEncoder
    mode: int
    noisy: bool
    gated: bool
    """Whether steps off the interval skip the library's decode."""
    last_step: int = 0
    held: Frame | None = None

    def send(self, frame: Frame) -> None:
        self.last_step = frame.step
        self.encoder.offer(frame)


_previews: NativePreviews | None = None


def native_previews(send: Callable[[messages.Preview], None]) -> NativePreviews:
    """The worker's one NativePreviews (the native callback it wraps is process-global too)."""
    global _previews
    if _previews is None:
        _previews = NativePreviews(send)
    return _previews
