"""sidecar/images.py alone: what input images are refused, and what the accepted ones become.

No sidecar here: these are the rules; tests/test_img2img.py checks them through a real sidecar.
"""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
from diffusion_sidecar_protocol.types import DiffusionParams, Limits
from PIL import Image

from sidecar.inputs import images
from sidecar.inputs.img2img import sampling_steps
from sidecar.rpc.errors import SidecarError

LIMITS = Limits(maxImageBytes=100_000, maxImagePixels=1_000_000)


def file_of(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png_declaring(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header claims another size (the CRC fixed up, so only the size lies)."""
    data = bytearray(file_of(Image.new("RGB", (1, 1))))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def refusal(text: str, field: str = "init_image") -> str:
    with pytest.raises(SidecarError) as raised:
        images.decode(field, text, LIMITS)
    assert raised.value.code == "INVALID_PARAMS" and raised.value.data["field"] == field
    return raised.value.data["rule"]


NOISE = Image.effect_noise((64, 48), 60).convert("RGB")
BAD = {
    "not base64": ("@@@@", "must be base64"),
    "base64 with a space": (b64(file_of(NOISE))[:40] + " " + b64(file_of(NOISE))[40:], "must be base64"),
    "empty": ("", "is empty"),
    "not an image": (b64(b"just some text, not a picture"), "is not a PNG, JPEG, WebP, GIF or BMP image"),
    "TIFF (not accepted)": (b64(file_of(NOISE, "TIFF")), "is not a PNG, JPEG, WebP, GIF or BMP image"),
    "truncated PNG": (b64(file_of(NOISE)[:600]), "could not be decoded"),
    "truncated JPEG": (b64(file_of(NOISE, "JPEG")[:300]), "is not a readable PNG, JPEG, WebP, GIF or BMP image"),
    "zero width": (b64(png_declaring(0, 16)), "is not a PNG, JPEG, WebP, GIF or BMP image"),
    "over maxImagePixels": (
        b64(png_declaring(2000, 1000)),
        "is 2000x1000; this sidecar's maxImagePixels limit is 1000000",
    ),
    "a bomb past Pillow's own ceiling": (b64(png_declaring(100_000, 100_000)), "maxImagePixels limit"),
    "over maxImageBytes": ("A" * 200_000, "is 150000 bytes; this sidecar's maxImageBytes limit is 100000"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_images_are_refused_naming_the_field_and_the_rule(case: str) -> None:
    text, rule = BAD[case]
    assert rule in refusal(text)
    assert rule in refusal(text, "mask_image")


def test_data_url_prefix_and_every_accepted_format() -> None:
    for fmt in ("PNG", "JPEG", "WEBP", "GIF", "BMP"):
        text = b64(file_of(NOISE, fmt))
        assert images.decode("init_image", text, LIMITS).size == (64, 48)
        assert images.decode("init_image", f"data:image/{fmt.lower()};base64,{text}", LIMITS).size == (64, 48)


@pytest.mark.parametrize(("orientation", "corner"), [(6, "top-right"), (8, "bottom-left")])
def test_exif_orientation_is_applied(orientation: int, corner: str) -> None:
    """A phone photo stored landscape with orientation 6 (or 8) is shown, and used, upright."""
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 8, 8))  # a red mark in the stored top-left corner
    exif = stored.getexif()
    exif[0x0112] = orientation
    shown = images.decode("init_image", b64(file_of(stored, "PNG", exif=exif)), LIMITS)
    assert shown.size == (20, 40)
    x, y = {"top-right": (17, 2), "bottom-left": (2, 37)}[corner]  # 90° cw (6) / ccw (8)
    red, _, blue = shown.convert("RGB").getpixel((x, y))
    assert red > 200 and blue < 50


def grey_16_bit() -> Image.Image:
    image = Image.new("I;16", (4, 1))
    for x, value in enumerate((0, 257 * 100, 257 * 200, 65535)):
        image.putpixel((x, 0), value)
    return image


def with_alpha(mode: str) -> Image.Image:
    """Left half opaque (colour 200 or its grey), right half fully transparent."""
    image = Image.new("RGBA", (4, 1), (200, 200, 200, 255))
    image.paste((10, 10, 10, 0), (2, 0, 4, 1))
    return image.convert(mode) if mode != "RGBA" else image


def palette_with_transparency() -> Image.Image:
    image = Image.new("P", (4, 1), 0)
    image.putpalette([200, 200, 200, 10, 10, 10])
    image.paste(1, (2, 0, 4, 1))
    image.info["transparency"] = 1
    return Image.open(io.BytesIO(file_of(image)))  # as a PNG file carries it (tRNS)


# Source image -> the RGB pixels the model gets, left to right (transparency flattened onto white).
PICTURES = {
    "L": (Image.new("L", (4, 1), 90), [(90, 90, 90)] * 4),
    "1": (Image.new("1", (4, 1), 1), [(255, 255, 255)] * 4),
    "I;16": (grey_16_bit(), [(0, 0, 0), (100, 100, 100), (200, 200, 200), (255, 255, 255)]),
    "RGBA": (with_alpha("RGBA"), [(200, 200, 200)] * 2 + [(255, 255, 255)] * 2),
    "LA": (with_alpha("LA"), [(200, 200, 200)] * 2 + [(255, 255, 255)] * 2),
    "P with tRNS": (palette_with_transparency(), [(200, 200, 200)] * 2 + [(255, 255, 255)] * 2),
    "CMYK": (Image.new("CMYK", (4, 1), (0, 0, 0, 0)), [(255, 255, 255)] * 4),
}


@pytest.mark.parametrize("mode", PICTURES)
def test_any_mode_becomes_three_channel_rgb(mode: str) -> None:
    image, expected = PICTURES[mode]
    pixels = images.picture(image, image.size)
    assert (pixels.width, pixels.height, pixels.channels) == (4, 1, 3)
    assert [tuple(pixels.data[i : i + 3]) for i in range(0, 12, 3)] == expected


# Mask -> grey levels (transparency flattened onto black: transparent = keep).
MASKS = {
    "L": (Image.new("L", (4, 1), 255), [255] * 4),
    "RGB": (Image.new("RGB", (4, 1), (255, 255, 255)), [255] * 4),
    "I;16": (grey_16_bit(), [0, 100, 200, 255]),
    "RGBA": (with_alpha("RGBA"), [200, 200, 0, 0]),
    "LA": (with_alpha("LA"), [200, 200, 0, 0]),
    "P with tRNS": (palette_with_transparency(), [200, 200, 0, 0]),
}


@pytest.mark.parametrize("mode", MASKS)
def test_any_mode_becomes_a_one_channel_mask(mode: str) -> None:
    image, expected = MASKS[mode]
    pixels = images.mask(image, image.size)
    assert (pixels.width, pixels.height, pixels.channels) == (4, 1, 1)
    assert list(pixels.data) == expected


def test_pictures_and_masks_are_resized_to_the_output() -> None:
    assert (images.picture(NOISE, (128, 64)).width, images.picture(NOISE, (128, 64)).height) == (128, 64)
    mask = images.mask(Image.new("L", (16, 16), 255), (64, 32))
    assert (mask.width, mask.height, len(mask.data)) == (64, 32, 64 * 32)


@pytest.mark.parametrize(
    ("steps", "strength", "expected"),
    # t_enc = int(steps * strength) in float32, at most steps - 1; t_enc + 1 steps run.
    [
        (4, 0.0, 1),
        (4, 0.25, 2),
        (4, 0.5, 3),
        (4, 0.75, 4),
        (4, 1.0, 4),
        (20, 0.75, 16),
        (10, 0.7, 8),
        (10, 0.3, 4),
        (1, 0.5, 1),
        (100, 0.29, 30),
    ],  # 100 * 0.29 is 28.99... in doubles but 29 in float32, as the native library computes it
)
def test_sampling_steps_follow_the_native_rounding(steps: int, strength: float, expected: int) -> None:
    params = DiffusionParams(modelId="m", prompt="p", steps=steps, strength=strength, init_image="x")
    assert sampling_steps(params) == expected
    assert sampling_steps(DiffusionParams(modelId="m", prompt="p", steps=steps, strength=strength)) == steps
