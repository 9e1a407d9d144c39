"""Input images as the native library takes them (`sd_image_t`), for `sd_img_gen_params_t`.

The C structs only point at pixel buffers: an `InputImages` keeps them alive, and must outlive
the `generate_image` call that reads them.
"""

from __future__ import annotations

import ctypes

import stable_diffusion_cpp.stable_diffusion_cpp as sd

from . import messages


class InputImages:
    """A job's init image and mask, set on one `sd_img_gen_params_t`."""

    def __init__(self, job: messages.Generate) -> None:
        self._buffers: list[ctypes.Array] = []
        self._job = job

    def apply(self, params: sd.sd_img_gen_params_t) -> None:
        job = self._job
        if job.init_image is None:
            return
        # The front sends RGB and L only: 1- or 4-channel data would abort the process in the VAE.
        assert job.init_image.channels == 3 and (job.mask_image is None or job.mask_image.channels == 1)
        params.init_image = self._sd_image(job.init_image)
        if job.mask_image is not None:
            params.mask_image = self._sd_image(job.mask_image)
        params.strength = job.strength
        if job.img_cfg_scale is not None:
            params.sample_params.guidance.img_cfg = job.img_cfg_scale

    def _sd_image(self, pixels: messages.Pixels) -> sd.sd_image_t:
        buffer = (ctypes.c_uint8 * len(pixels.data)).from_buffer_copy(pixels.data)
        self._buffers.append(buffer)
        return sd.sd_image_t(pixels.width, pixels.height, pixels.channels, buffer)
