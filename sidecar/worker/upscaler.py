"""An ESRGAN upscaler context (stable-diffusion.cpp's `upscaler_ctx_t`), attached to a model or alone.

The native calls crash on a NULL context and abort on an image that is not 3-channel: this class
never makes either call. The factor argument of `upscale` is ignored natively (the file's own
scale is used), so the class reports the file's factor and passes it back.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import stable_diffusion_cpp.stable_diffusion_cpp as sd

# Tiles of 128 pixels (sd-cli's default): the native code upscales tile by tile to bound memory,
# and reports each tile through the progress callback.
TILE_SIZE = 128

_libc = ctypes.CDLL(None)
_free = _libc.free
_free.argtypes = [ctypes.c_void_p]


class _Log(Protocol):
    def failure(self, fallback: str) -> Exception: ...


class _Progress(Protocol):
    listener: Callable[[int, int], None] | None


class NativeUpscaler:
    """One loaded ESRGAN file. `log` and `progress` are the worker's process-global native hooks."""

    def __init__(self, path: str, n_threads: int | None, log: _Log, progress: _Progress) -> None:
        self._log = log
        self._progress = progress
        threads = n_threads if n_threads is not None else sd.sd_get_num_physical_cores()
        # direct=False: ggml's im2col convolutions, which every CPU variant implements.
        self._ctx = sd.new_upscaler_ctx(path.encode(), False, False, threads, TILE_SIZE)
        if not self._ctx:
            raise log.failure("the native library could not load this file as an ESRGAN upscaler")
        self.factor = sd.get_upscale_factor(self._ctx)
        self.path = path
        self.name = Path(path).stem
        """What the PNG parameters call it (A1111 names upscalers by file stem too)."""

    def upscale(
        self, rgb: bytes, width: int, height: int, on_tile: Callable[[int, int], None]
    ) -> tuple[bytes, int, int]:
        """One run of the upscaler over 3-channel pixels, reporting each tile; the result's pixels and size."""
        if not self._ctx:  # closed: the native call would dereference NULL
            raise self._log.failure("this upscaler was freed")
        if len(rgb) != width * height * 3:
            raise self._log.failure(f"the upscaler takes 3-channel pixels: {len(rgb)} bytes is not {width}x{height}x3")
        pixels = ctypes.create_string_buffer(rgb, len(rgb))
        source = sd.sd_image_t(width, height, 3, ctypes.cast(pixels, ctypes.POINTER(ctypes.c_uint8)))
        ticked = []

        def on_progress(tile: int, tiles: int) -> None:
            if tile >= 1:  # the native tiler also reports a "0 of n" start
                ticked.append(tile)
                on_tile(tile, tiles)

        self._progress.listener = on_progress
        try:
            result = sd.upscale(self._ctx, source, self.factor)
        finally:
            self._progress.listener = None
        if not result.data:
            raise self._log.failure("the upscaler returned no image")
        if not ticked:  # an image within one tile is upscaled whole, without progress reports
            on_tile(1, 1)
        try:
            return ctypes.string_at(result.data, result.width * result.height * 3), result.width, result.height
        finally:
            _free(ctypes.cast(result.data, ctypes.c_void_p))

    def run(
        self, rgb: bytes, width: int, height: int, repeats: int, on_tile: Callable[[int, int, int], None]
    ) -> tuple[bytes, int, int]:
        """`repeats` runs, each on the last one's result; ticks name the run, the tile and the tile count."""
        for repeat in range(repeats):
            rgb, width, height = self.upscale(rgb, width, height, lambda tile, tiles, r=repeat: on_tile(r, tile, tiles))
        return rgb, width, height

    def close(self) -> None:
        """Free the native context now (a worker's upscaler lives as long as the worker)."""
        if self._ctx:
            sd.free_upscaler_ctx(self._ctx)
            self._ctx = None

    def png_fields(self, repeats: int) -> dict[str, str]:
        """What A1111's extras tab writes for an upscale."""
        return {"Postprocess upscale by": f"{self.factor**repeats}", "Postprocess upscaler": self.name}
