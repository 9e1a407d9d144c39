"""What a model family (the name stable-diffusion.cpp logs as `Version: ...`) implies for a request.

The names and rules are the pinned library's (`model_version_to_str`, `sd_version_is_unet`,
`get_vae_scale_factor`, `get_diffusion_model_down_factor` in `stable-diffusion.cpp`).
"""

from __future__ import annotations

UNET_FAMILIES = frozenset({
    "SD 1.x", "SD 1.x Inpaint", "Instruct-Pix2Pix", "SD 1.x Tiny UNet", "SDXS (512-DS)",
    "SD 2.x", "SD 2.x Inpaint", "SD 2.x Tiny UNet", "SDXS (09)",
    "SDXL", "SDXL Inpaint", "SDXL Instruct-Pix2Pix", "SDXL (Vega)", "SDXL (SSD1B)",
})  # fmt: skip
# VAEs that scale by 16 (FLUX.2's patchifies 2x2 after its 8x); Chroma Radiance works on pixels.
VAE_SCALE = {"Wan 2.2 TI2V": 16, "Flux.2": 16, "Flux.2 klein": 16, "Ernie Image": 16, "Chroma Radiance": 1}
WAN_FAMILIES = frozenset({"Wan 2.x", "Wan 2.2 I2V", "Wan 2.2 TI2V"})
# Every width and height the protocol takes is a multiple of 8 already.
PROTOCOL_MULTIPLE = 8


def is_unet(family: str) -> bool:
    return family in UNET_FAMILIES


def size_multiple(family: str) -> int:
    """The multiple the library rounds `width` and `height` up to (silently) for this family.

    It is the VAE's scale times the diffusion model's own down-sampling: a UNet halves the latent
    three times (64 in all), Wan's DiT twice in space, other DiTs patchify inside and pad, so any
    latent size does.
    """
    down = 8 if is_unet(family) else 2 if family in WAN_FAMILIES else 1
    return max(VAE_SCALE.get(family, 8) * down, PROTOCOL_MULTIPLE)


# Families whose diffusion model reads reference-image latents (`ref_latents` in
# `diffusion_model.hpp`: FluxModel, QwenImageModel, ZImageModel); every other family would encode
# the images and drop them. The UNet edit models (Instruct-Pix2Pix) read the first one only.
REF_IMAGE_FAMILIES = frozenset({
    "Flux", "Flux Fill", "Flux Control", "Flex.2", "Chroma Radiance", "Flux.2", "Flux.2 klein",
    "Ovis Image", "Qwen Image", "Z-Image",
})  # fmt: skip
ONE_REF_IMAGE_FAMILIES = frozenset({"Instruct-Pix2Pix", "SDXL Instruct-Pix2Pix"})


def max_ref_images(family: str) -> int:
    """How many `ref_images` the family uses: 0 where the library would silently drop them."""
    if family in REF_IMAGE_FAMILIES:
        return 1 << 30
    return 1 if family in ONE_REF_IMAGE_FAMILIES else 0


# Families whose DiT reads a control image's latent beside the noise (`sd_version_is_control`).
# FLUX Fill is an inpainting model: it reads `init_image` and `mask_image`, never a control image.
CONTROL_FAMILIES = frozenset({"Flux Control", "Flex.2"})
# The ControlNet is built at the model's own family's full size (`ControlNetBlock(version)`): it
# fits the full UNets only; on a tiny or distilled UNet its residuals do not match and the process
# aborts at the first step (GGML_ASSERT), on a DiT nothing would read them.
CONTROLNET_FAMILIES = frozenset({
    "SD 1.x", "SD 1.x Inpaint", "Instruct-Pix2Pix", "SD 2.x", "SD 2.x Inpaint",
    "SDXL", "SDXL Inpaint", "SDXL Instruct-Pix2Pix",
})  # fmt: skip


# Video DiTs by the name the library logs for them (`WanRunner::desc`), and the images each reads
# (`prepare_video_generation_latents`): a T2V model drops an init image without a word, only the
# I2V and FLF2V models read an end image, and VACE takes its init image as a reference.
VIDEO_MODEL_IMAGES: dict[str, frozenset[str]] = {
    "Wan2.1-T2V-1.3B": frozenset(),
    "Wan2.x-T2V-14B": frozenset(),
    "Wan2.1-VACE-1.3B": frozenset({"init_image"}),
    "Wan2.x-VACE-14B": frozenset({"init_image"}),
    "Wan2.2-TI2V-5B": frozenset({"init_image"}),
    "Wan2.1-I2V-1.3B": frozenset({"init_image", "end_image"}),
    "Wan2.1-I2V-14B": frozenset({"init_image", "end_image"}),
    "Wan2.2-I2V-14B": frozenset({"init_image", "end_image"}),
    "Wan2.1-FLF2V-14B": frozenset({"init_image", "end_image"}),
}
# Frames come in 4n+1: the Wan VAE packs the first frame alone, then 4 frames per latent.
VIDEO_FRAME_STRIDE = 4
