"""Input images as the native library takes them (`sd_image_t`), for `sd_img_gen_params_t`.

The C structs only point at pixel buffers: an `InputImages` keeps them alive, and must outlive
the `generate_image` call that reads them.
"""

from __future__ import annotations

import ctypes

import stable_diffusion_cpp.stable_diffusion_cpp as sd

from . import messages


# sd-cli's `--canny` thresholds (relative to the strongest gradient) and edge levels.
CANNY_HIGH, CANNY_LOW, CANNY_WEAK, CANNY_STRONG = 0.08, 0.08, 0.8, 1.0


def canny(image: sd.sd_image_t) -> None:
    """Replace the pixels by their canny edges, in place (grey levels in every channel)."""
    sd.preprocess_canny(image, CANNY_HIGH, CANNY_LOW, CANNY_WEAK, CANNY_STRONG, False)


class InputImages:
    """A job's init image, mask, control image and reference images, set on one `sd_img_gen_params_t`."""

    def __init__(self, job: messages.Generate) -> None:
        self._buffers: list[ctypes.Array] = []
        self._job = job

    def apply(self, params: sd.sd_img_gen_params_t) -> None:
        job = self._job
        if job.ref_images:
            assert all(image.channels == 3 for image in job.ref_images)
            array = (sd.sd_image_t * len(job.ref_images))(*map(self._sd_image, job.ref_images))
            self._buffers.append(array)
            params.ref_images = array
            params.ref_images_count = len(job.ref_images)
        if job.control is not None:
            assert job.control.image.channels == 3
            params.control_image = self._sd_image(job.control.image)
            if job.control.canny:
                canny(params.control_image)
            params.control_strength = job.control.strength
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
