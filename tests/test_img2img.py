"""img2img and inpainting end to end: the Python host client, a real sidecar, the real backend.

The synthetic model's VAE cannot reconstruct an image (its pictures are noise), so nothing here
asserts that an output looks like its source: the tests compare outputs with each other (seeds,
strengths, masked regions), and check sizes, steps, refusals and that the worker survives.
"""

from __future__ import annotations

import base64
import io
import struct
import zlib
from pathlib import Path

import pytest
from diffusion_sidecar_client import Sidecar, SidecarError
from PIL import Image, ImageChops, ImageStat

from tests.harness import worker_pids

pytestmark = pytest.mark.anyio

MAX_IMAGE_BYTES = 2_000_000
EDIT = {"prompt": "a lighthouse at dusk", "steps": 1, "strength": 0.3}


def file_of(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


SOURCE = file_of(Image.effect_noise((64, 64), 80).convert("RGB"))


@pytest.fixture(scope="module")
async def sidecar(python_command: list[str]):
    client = await Sidecar.start([*python_command, "--max-image-bytes", str(MAX_IMAGE_BYTES)])
    yield client
    assert await client.close() == 0


@pytest.fixture(scope="module")
async def model_id(sidecar: Sidecar, synthetic_model: str) -> str:
    return await sidecar.load_model(synthetic_model)


async def generate(sidecar: Sidecar, model_id: str, **params):
    call = sidecar.diffusion(modelId=model_id, **{**EDIT, **params})
    ticks = [tick async for tick in call.progress_stream]
    return [png(data) for data in await call.outputs], ticks, await call.stats


async def test_two_strengths_differ_from_each_other_and_from_text_to_image_and_repeat_exactly(
    sidecar: Sidecar, model_id: str
) -> None:
    common = {"steps": 3, "seed": 21}
    (text_to_image,), _, _ = await generate(sidecar, model_id, **common, width=64, height=64)
    (light,), light_ticks, light_stats = await generate(sidecar, model_id, **common, init_image=SOURCE, strength=0.3)
    (full,), full_ticks, full_stats = await generate(sidecar, model_id, **common, init_image=SOURCE, strength=1.0)
    (again,), _, _ = await generate(sidecar, model_id, **common, init_image=SOURCE, strength=0.3)
    pixels = [image.tobytes() for image in (text_to_image, light, full)]
    assert len(set(pixels)) == 3, "strengths and text-to-image must give three different images"
    assert again.tobytes() == light.tobytes() and again.info == light.info
    # int(3 * 0.3) + 1 = 1 step, all 3 at strength 1: ticks and stats count what really runs.
    assert [(t.phase, t.step, t.totalSteps) for t in light_ticks] == [("encode", 0, 1), ("sample", 1, 1), ("decode", 1, 1)]
    assert [(t.step, t.totalSteps) for t in full_ticks if t.phase == "sample"] == [(1, 3), (2, 3), (3, 3)]
    assert {t.totalSteps for t in full_ticks} == {3}
    assert full_stats.totalSteps - light_stats.totalSteps == 3
    assert "Denoising strength: 0.3" in light.info["parameters"] and "Steps: 3," in light.info["parameters"]
    assert "Mask blur" not in light.info["parameters"]
    assert "Denoising strength" not in text_to_image.info["parameters"]


async def test_a_batch_uses_seed_plus_i_and_each_image_is_reproducible_alone(sidecar: Sidecar, model_id: str) -> None:
    call = sidecar.diffusion(modelId=model_id, **EDIT, init_image=SOURCE, seed=40, batch_count=2)
    batch, seeds = await call.outputs, await call.seeds
    assert seeds == [40, 41]
    (alone,), _, _ = await generate(sidecar, model_id, init_image=SOURCE, seed=41)
    assert png(batch[1]).tobytes() == alone.tobytes()
    assert png(batch[0]).tobytes() != alone.tobytes()


def _mean_difference(a: Image.Image, b: Image.Image, box: tuple[int, int, int, int]) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a.crop(box), b.crop(box))).mean) / 3


async def test_inpainting_repaints_the_white_region_and_keeps_the_black_one(sidecar: Sidecar, model_id: str) -> None:
    """The keep region's latent is the source's at every step, whatever the seed; the repaint
    region is sampled from the seed's noise. So two seeds give nearly the same keep region (not
    the source's pixels: the synthetic VAE cannot reconstruct them; and not exactly the same: the
    VAE decoder mixes neighbouring latents) and different repaint regions. Without the mask,
    two seeds differ everywhere."""
    mask = Image.new("L", (32, 32), 0)  # half the output's size: resized to it
    mask.paste(255, (16, 0, 32, 32))  # right half: repaint
    masked = {"init_image": SOURCE, "mask_image": file_of(mask), "steps": 2, "strength": 1.0}
    (first,), _, _ = await generate(sidecar, model_id, **masked, seed=1)
    (second,), _, _ = await generate(sidecar, model_id, **masked, seed=2)
    keep, repaint = (0, 0, 24, 64), (40, 0, 64, 64)  # away from the border, which the decoder blurs
    kept, repainted = _mean_difference(first, second, keep), _mean_difference(first, second, repaint)
    assert kept < 0.3 * repainted, (kept, repainted)
    unmasked_params = {key: value for key, value in masked.items() if key != "mask_image"}
    (unmasked,), _, _ = await generate(sidecar, model_id, **unmasked_params, seed=2)
    assert _mean_difference(second, unmasked, keep) > 3 * kept
    assert "Denoising strength: 1, Mask blur: 0" in first.info["parameters"]


def _oriented(orientation: int, fmt: str) -> bytes:
    stored = Image.effect_noise((128, 64), 80).convert("RGB")
    exif = stored.getexif()
    exif[0x0112] = orientation
    return file_of(stored, fmt, exif=exif)


async def test_the_output_takes_the_source_size_as_a_viewer_shows_it(
    sidecar: Sidecar, model_id: str, tmp_path: Path
) -> None:
    """Stored 128x64 with EXIF orientation 6 (JPEG) or 8 (PNG, given as a path): shown 64x128."""
    photo = tmp_path / "photo.png"
    photo.write_bytes(_oriented(8, "PNG"))
    for source in (_oriented(6, "JPEG"), photo):
        (image,), _, stats = await generate(sidecar, model_id, init_image=source, seed=3)
        assert image.size == (64, 128) and (stats.width, stats.height) == (64, 128)
        assert "Size: 64x128" in image.info["parameters"]
    (resized,), _, _ = await generate(sidecar, model_id, init_image=photo, width=64, height=64, seed=3)
    assert resized.size == (64, 64)


async def test_any_mode_and_format_is_converted_for_the_native_library(sidecar: Sidecar, model_id: str) -> None:
    """1- and 4-channel data would abort the native VAE; 16-bit and palette images need scaling
    and flattening. Each pair generates (the worker survives), WebP in the frozen binary too."""
    grey16 = Image.new("I;16", (64, 64), 40000)
    pairs = [
        (file_of(Image.new("L", (64, 64), 90)), file_of(Image.new("LA", (64, 64), (255, 128)))),
        (file_of(Image.new("RGBA", (64, 64), (9, 99, 199, 100)), "WEBP"), file_of(grey16)),
        (file_of(Image.new("CMYK", (64, 64), (10, 20, 30, 40)), "JPEG"), file_of(Image.new("P", (64, 64), 3), "GIF")),
    ]
    workers = worker_pids(sidecar.pid)
    for init_image, mask_image in pairs:
        (image,), _, _ = await generate(sidecar, model_id, init_image=init_image, mask_image=mask_image, seed=4)
        assert image.size == (64, 64) and image.mode == "RGB"
    assert worker_pids(sidecar.pid) == workers


def _png_declaring(width: int, height: int) -> bytes:
    data = bytearray(file_of(Image.new("RGB", (1, 1))))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


BAD_INPUTS = {
    "invalid base64": ({"init_image": "not*base64"}, "init_image", "must be base64"),
    "not an image": ({"init_image": b"GIF89a but not really"}, "init_image", "is not a"),
    "truncated": ({"init_image": SOURCE[: len(SOURCE) // 3]}, "init_image", "could not be decoded"),
    "zero width": ({"init_image": _png_declaring(0, 64)}, "init_image", "is not a"),
    "decompression bomb": ({"init_image": _png_declaring(50_000, 50_000)}, "init_image", "maxImagePixels"),
    "too many bytes": ({"init_image": "A" * (MAX_IMAGE_BYTES * 4 // 3 + 8)}, "init_image", "maxImageBytes"),
    "mask without image": ({"mask_image": SOURCE}, "mask_image", "needs an `init_image`"),
    "bad mask": ({"init_image": SOURCE, "mask_image": b"\x89PNG\r\n\x1a\n"}, "mask_image", "is not a"),
    "size the model cannot make": (
        {"init_image": file_of(Image.new("RGB", (100, 64)))},
        "init_image",
        "multiples of 64",
    ),
    "strength out of range": ({"init_image": SOURCE, "strength": 1.5}, "strength", "<= 1"),
}


async def test_every_bad_input_is_refused_and_the_worker_keeps_serving(sidecar: Sidecar, model_id: str) -> None:
    assert (await sidecar.initialize()).limits.maxImageBytes == MAX_IMAGE_BYTES
    await generate(sidecar, model_id, init_image=SOURCE, seed=5)
    workers = worker_pids(sidecar.pid)
    for case, (params, field, rule) in BAD_INPUTS.items():
        with pytest.raises(SidecarError) as raised:
            await sidecar.diffusion(modelId=model_id, **{**EDIT, **params}).outputs
        assert raised.value.data_code == "INVALID_PARAMS", case
        assert raised.value.data["field"] == field and rule in raised.value.data["rule"], (case, raised.value.data)
    assert worker_pids(sidecar.pid) == workers
    (image,), _, _ = await generate(sidecar, model_id, init_image=SOURCE, seed=5)
    assert image.size == (64, 64)


async def test_decoding_a_large_image_does_not_hold_up_other_requests(sidecar: Sidecar) -> None:
    """A 36-megapixel source takes a good while to decode; `initialize` is answered meanwhile."""
    large = base64.b64encode(file_of(Image.new("RGB", (6000, 6000), (20, 40, 60)))).decode()
    call = sidecar.diffusion(modelId="model-not-loaded", **EDIT, init_image=large)
    await sidecar.initialize()
    assert not call.outputs.done(), "initialize waited for the image to decode"
    with pytest.raises(SidecarError) as raised:  # decoded, then the size is checked
        await call.outputs
    assert raised.value.data_code == "LIMIT_EXCEEDED"


async def test_cancel_during_img2img_and_the_model_serves_again(sidecar: Sidecar, model_id: str) -> None:
    call = sidecar.diffusion(modelId=model_id, **{**EDIT, "init_image": SOURCE, "steps": 30, "strength": 1.0})
    ticks = call.progress_stream
    await anext(ticks)  # sampling has begun, so the source was encoded
    assert await call.cancel()
    with pytest.raises(SidecarError) as raised:
        await call.outputs
    assert raised.value.data_code == "CANCELLED"
    (image,), _, _ = await generate(sidecar, model_id, init_image=SOURCE, seed=6)
    assert image.size == (64, 64)
