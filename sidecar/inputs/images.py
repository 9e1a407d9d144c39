"""Input images of a request (img2img sources, masks, and any later method that takes images).

An input image is hostile until proven otherwise: it is refused with INVALID_PARAMS naming its
field unless it is strict base64 of a PNG, JPEG, WebP, GIF or BMP file within `maxImageBytes`,
whose header declares at most `maxImagePixels` (checked before a single pixel is decoded: a small
file can declare gigapixels), and which decodes completely. The result is what the native library
can take without aborting: 3-channel RGB for pictures, 1-channel L for masks, as a viewer shows
the file (EXIF orientation applied).

Decoding is CPU work (hundreds of milliseconds for a large JPEG): the functions here block, and
the front calls them in a worker thread so its event loop keeps answering other requests.
"""

from __future__ import annotations

import binascii
import io
import re

from diffusion_sidecar_protocol.types import Limits
from PIL import Image, ImageOps, UnidentifiedImageError

from ..rpc.errors import invalid_params
from ..worker.messages import Pixels

FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
"""What Pillow may open. Others (TIFF, EPS, ...) are refused before any decoder of theirs runs."""
_FORMAT_NAMES = "PNG, JPEG, WebP, GIF or BMP"

_DATA_URL = re.compile(r"data:image/[A-Za-z0-9.+-]+;base64,")
# Where transparency is flattened: onto white for a picture (A1111's img2img background), onto
# black for a mask (an editor's transparent layer with white strokes repaints only the strokes).
PICTURE_BACKGROUND = (255, 255, 255)
MASK_BACKGROUND = (0, 0, 0)


def file_bytes(field: str, text: str, max_bytes: int) -> bytes:
    """The file inside a base64 string (with or without a `data:image/...;base64,` prefix)."""
    if match := _DATA_URL.match(text):
        text = text[match.end() :]
    size = len(text) // 4 * 3 - text[-2:].count("=")  # what it decodes to, before decoding it
    if size > max_bytes:
        raise invalid_params(field, f"is {size} bytes; this sidecar's maxImageBytes limit is {max_bytes}")
    try:
        data = binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (UnicodeEncodeError, binascii.Error) as error:
        raise invalid_params(field, f"must be base64 (standard alphabet, padded): {error}") from None
    if not data:
        raise invalid_params(field, "is empty")
    return data


def open_image(field: str, data: bytes, max_pixels: int) -> Image.Image:
    """Decode a file completely, as a viewer would show it (EXIF orientation applied)."""
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)  # reads the header only
    except Image.DecompressionBombError:
        image = None  # past Pillow's own ceiling, which is above ours
    except UnidentifiedImageError:
        raise invalid_params(field, f"is not a {_FORMAT_NAMES} image") from None
    except Exception as error:  # noqa: BLE001 - a hostile file can make a decoder raise anything
        raise invalid_params(field, f"is not a readable {_FORMAT_NAMES} image ({_reason(error)})") from None
    if image is None or image.width * image.height > max_pixels:
        size = f"over {2 * Image.MAX_IMAGE_PIXELS} pixels" if image is None else f"{image.width}x{image.height}"
        raise invalid_params(field, f"is {size}; this sidecar's maxImagePixels limit is {max_pixels}")
    if image.width < 1 or image.height < 1:
        raise invalid_params(field, f"has no pixels ({image.width}x{image.height})")
    try:
        image.load()  # a truncated or corrupt file fails here, not later in the native library
        return ImageOps.exif_transpose(image)
    except Exception as error:  # noqa: BLE001
        raise invalid_params(field, f"could not be decoded ({_reason(error)})") from None


def _reason(error: Exception) -> str:
    return str(error) or type(error).__name__


def _eight_bit(image: Image.Image) -> Image.Image:
    """Pillow clips 16/32-bit grey to 255 when converting to L; scale it instead."""
    if image.mode.startswith("I"):
        return image.convert("I").point(lambda value: value / 257).convert("L")
    return image


def _flattened(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """RGB with any transparency (alpha channel, palette or tRNS) composited onto `background`."""
    image = _eight_bit(image)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, background)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def picture(image: Image.Image, size: tuple[int, int]) -> Pixels:
    """3-channel RGB at `size` (stretched, with Pillow's antialiased bicubic filter)."""
    return _pixels(_flattened(image, PICTURE_BACKGROUND), size, Image.Resampling.BICUBIC)


def mask(image: Image.Image, size: tuple[int, int]) -> Pixels:
    """1-channel grey levels at `size` (ITU-R 601 luma of the flattened colours)."""
    return _pixels(_flattened(image, MASK_BACKGROUND).convert("L"), size, Image.Resampling.BILINEAR)


def _pixels(image: Image.Image, size: tuple[int, int], resample: Image.Resampling) -> Pixels:
    if image.size != size:
        image = image.resize(size, resample)
    return Pixels(image.tobytes(), image.width, image.height, len(image.getbands()))


def decode(field: str, text: str, limits: Limits) -> Image.Image:
    """`open_image(file_bytes(...))`: the usual way in, with this sidecar's limits."""
    return open_image(field, file_bytes(field, text, limits.maxImageBytes), limits.maxImagePixels)
