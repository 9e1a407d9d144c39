"""ESRGAN upscaling through the binding's C API (`new_upscaler_ctx`, `upscale`)."""

from __future__ import annotations

import ctypes

import stable_diffusion_cpp.stable_diffusion_cpp as sd

from .native import NativeError, RawImage

_free = ctypes.CDLL(None).free  # the image the library malloc'ed for us
_free.argtypes = [ctypes.c_void_p]

# The native command line's default: tiles keep memory flat on large images.
TILE_SIZE = 128


class NativeUpscaler:
    """One loaded ESRGAN model. Its scale is the model's own (1, 2 or 4)."""

    def __init__(self, path: str, threads: int) -> None:
        # direct=False: ggml's im2col convolutions, which every CPU variant implements.
        self._ctx = sd.new_upscaler_ctx(path.encode(), False, False, threads, TILE_SIZE)
        if not self._ctx:
            raise NativeError(f"{path} is not an ESRGAN model stable-diffusion.cpp can load")
        self.scale = sd.get_upscale_factor(self._ctx)

    def upscale(self, rgb: bytes, width: int, height: int) -> RawImage:
        if len(rgb) != width * height * 3:
            raise ValueError(f"expected {width}x{height} RGB bytes, got {len(rgb)}")
        pixels = ctypes.create_string_buffer(rgb, len(rgb))
        source = sd.sd_image_t(width, height, 3, ctypes.cast(pixels, ctypes.POINTER(ctypes.c_uint8)))
        result = sd.upscale(self._ctx, source, self.scale)
        if not result.data:
            raise NativeError("the upscaler returned no image")
        try:
            size = result.width * result.height * result.channel
            return RawImage(ctypes.string_at(result.data, size), result.width, result.height, result.channel)
        finally:
            _free(ctypes.cast(result.data, ctypes.c_void_p))

    def close(self) -> None:
        if self._ctx:
            sd.free_upscaler_ctx(self._ctx)
            self._ctx = None
