"""ESRGAN upscaling and the hires fix, end to end: a real sidecar, the synthetic model and a synthetic
ESRGAN x4 file. The pictures are noise: the tests check sizes, ticks, stats and PNG parameters."""

from __future__ import annotations

import asyncio
import base64
from io import BytesIO

import pytest
from diffusion_sidecar_client import Sidecar, SidecarError
from PIL import Image

from sidecar.synth.kinds import write

pytestmark = pytest.mark.anyio

SMALL = {"prompt": "a lighthouse at dusk", "width": 64, "height": 64, "steps": 1, "seed": 3}


@pytest.fixture(scope="module")
def esrgan_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write("esrgan", tmp_path_factory.mktemp("upscalers") / "esrgan-x4.safetensors"))


@pytest.fixture(scope="module")
async def attached(sidecar: Sidecar, synthetic_model: str, esrgan_file: str):
    """The synthetic model with the ESRGAN file attached."""
    return await sidecar.load_model_result(synthetic_model, {"upscalerPath": esrgan_file})


@pytest.fixture(scope="module")
async def upscaler(sidecar: Sidecar, esrgan_file: str):
    """The ESRGAN file loaded on its own."""
    return await sidecar.load_model_result(esrgan_file)


def _image(png: bytes) -> Image.Image:
    image = Image.open(BytesIO(png))
    image.load()
    return image


def _file(width: int, height: int, format: str = "PNG") -> bytes:
    buffer = BytesIO()
    Image.radial_gradient("L").resize((width, height)).convert("RGB").save(buffer, format=format)
    return buffer.getvalue()


async def _generate(sidecar: Sidecar, model_id: str, **params):
    call = sidecar.diffusion(modelId=model_id, **{**SMALL, **params})
    ticks = [tick async for tick in call.progress_stream]
    return ticks, await call.outputs, await call.stats


async def test_attached_upscaler_multiplies_each_image_and_reports_its_time(sidecar: Sidecar, attached) -> None:
    assert attached.upscaleFactor == 4 and attached.modelFamily == "SD 1.x Tiny UNet"
    _, (plain,), plain_stats = await _generate(sidecar, attached.modelId)
    ticks, (png,), stats = await _generate(sidecar, attached.modelId, upscale=True)
    image = _image(png)
    assert image.size == (256, 256) and (stats.width, stats.height) == (256, 256)
    # postProcessMs is the work after the library returned: here the upscale too, not only the PNG.
    assert plain_stats.postProcessMs < stats.postProcessMs < stats.generationMs
    assert [(t.step, t.totalSteps) for t in ticks if t.phase == "sample"] == [(1, 1)]
    settings = image.text["parameters"].split("\n")[-1]
    assert "Size: 64x64" in settings
    assert settings.endswith("Postprocess upscale by: 4, Postprocess upscaler: esrgan-x4")
    assert _image(plain).size == (64, 64)


async def test_upscale_is_refused_without_an_upscaler_or_past_max_pixels(
    sidecar: Sidecar, attached, synthetic_model: str
) -> None:
    plain_model = await sidecar.load_model(synthetic_model)
    with pytest.raises(SidecarError) as raised:
        await _generate(sidecar, plain_model, upscale=True)
    assert raised.value.data["field"] == "upscale" and "upscalerPath" in raised.value.data["rule"]
    with pytest.raises(SidecarError) as raised:
        await _generate(sidecar, attached.modelId, upscale={"repeats": 4})  # 16384x16384
    assert raised.value.data["code"] == "LIMIT_EXCEEDED" and raised.value.data["value"] == 16384 * 16384


async def test_an_esrgan_file_alone_is_an_upscaler_model(sidecar: Sidecar, upscaler) -> None:
    assert upscaler.modelFamily == "ESRGAN upscaler (x4)" and upscaler.upscaleFactor == 4
    ticks = []
    png, stats = await sidecar.upscale(upscaler.modelId, _file(40, 24), on_progress=ticks.append)
    image = _image(png)
    assert image.size == (160, 96) and image.mode == "RGB"
    assert (stats.width, stats.height, stats.inputWidth, stats.inputHeight) == (160, 96, 40, 24)
    assert stats.postProcessMs > 0 and stats.modelLoadMs > 0
    assert ticks and ticks[-1].tile == ticks[-1].totalTiles and {t.repeat for t in ticks} == {0}
    assert image.text["parameters"] == "Size: 160x96, Postprocess upscale by: 4, Postprocess upscaler: esrgan-x4"
    twice, stats = await sidecar.upscale(upscaler.modelId, _file(8, 6, "JPEG"), repeats=2)
    assert _image(twice).size == (128, 96) and (stats.width, stats.height) == (128, 96)


async def test_upscaler_and_diffusion_models_refuse_each_others_methods(sidecar: Sidecar, upscaler, attached) -> None:
    with pytest.raises(SidecarError) as raised:
        await _generate(sidecar, upscaler.modelId)
    assert raised.value.data["field"] == "modelId" and "upscale" in raised.value.data["rule"]
    with pytest.raises(SidecarError) as raised:
        await sidecar.upscale(attached.modelId, _file(8, 8))
    assert raised.value.data["field"] == "modelId"


@pytest.mark.parametrize(
    "image",
    [b"not base64 at all!", base64.b64encode(b"GIF89a but not really"), base64.b64encode(b"")],
    ids=["not-base64", "not-an-image", "empty"],
)
async def test_bad_images_are_refused_before_work(sidecar: Sidecar, upscaler, image: bytes) -> None:
    ticks = []
    with pytest.raises(SidecarError) as raised:
        await sidecar.request(
            "upscale", {"modelId": upscaler.modelId, "image": image.decode("latin-1")}, lambda *_: ticks.append(1)
        )
    assert raised.value.data["code"] == "INVALID_PARAMS" and raised.value.data["field"] == "image"
    assert ticks == []


async def test_an_upscale_in_progress_is_cancelled_and_the_model_keeps_serving(sidecar: Sidecar, upscaler) -> None:
    first_tick = asyncio.Event()
    request_ids = []

    def on_tick(tick) -> None:
        request_ids.append(tick.requestId)
        first_tick.set()

    running = asyncio.create_task(sidecar.upscale(upscaler.modelId, _file(384, 256), on_progress=on_tick))
    await first_tick.wait()
    assert await sidecar.cancel(request_id=request_ids[0]) == 1
    with pytest.raises(SidecarError) as raised:
        await running
    assert raised.value.data["code"] == "CANCELLED"
    png, _ = await sidecar.upscale(upscaler.modelId, _file(16, 16))
    assert _image(png).size == (64, 64)


async def test_hires_fix_with_a_latent_upscaler(sidecar: Sidecar, attached) -> None:
    hires = {"scale": 2, "steps": 1, "denoising_strength": 0.5, "upscaler": "latent (NEAREST)"}
    ticks, (png,), stats = await _generate(sidecar, attached.modelId, hires=hires)
    image = _image(png)
    assert image.size == (128, 128) and (stats.width, stats.height) == (128, 128)
    # The second pass schedules steps / strength = 2 steps and runs its last strength of them plus
    # one (the native rule): 2 steps, ticked after the first pass's 1 as steps 2 and 3 of 3.
    assert [(t.step, t.totalSteps) for t in ticks if t.phase == "sample"] == [(1, 3), (2, 3), (3, 3)]
    settings = image.text["parameters"].split("\n")[-1]
    assert "Size: 64x64" in settings
    assert settings.endswith(
        "Denoising strength: 0.5, Hires upscale: 2, Hires steps: 1, Hires upscaler: Latent (nearest)"
    )


async def test_hires_fix_with_the_attached_model_upscaler(sidecar: Sidecar, attached) -> None:
    hires = {"width": 128, "height": 192, "steps": 1, "upscaler": "model"}
    _, (png,), _ = await _generate(sidecar, attached.modelId, hires=hires)
    image = _image(png)
    assert image.size == (128, 192)
    assert "Hires resize: 128x192, Hires steps: 1, Hires upscaler: Model" in image.text["parameters"]


@pytest.mark.parametrize(
    ("hires", "field", "rule_part"),
    [
        ({"upscaler": "bilinear"}, "hires.upscaler", "must be one of"),
        ({"scale": 1.5}, "hires.width", "multiple of 64"),
        ({"scale": 2, "width": 128, "height": 128}, "hires", "not both"),
        ({"width": 128}, "hires", "both"),
        ({"denoising_strength": 0}, "hires.denoising_strength", ">"),
    ],
)
async def test_hires_combinations_that_would_fail_late_are_refused_first(
    sidecar: Sidecar, attached, hires: dict, field: str, rule_part: str
) -> None:
    with pytest.raises(SidecarError) as raised:
        await _generate(sidecar, attached.modelId, hires=hires)
    assert raised.value.data["field"] == field and rule_part in raised.value.data["rule"]


async def test_hires_model_upscaler_needs_an_attached_file(sidecar: Sidecar, synthetic_model: str) -> None:
    plain_model = await sidecar.load_model(synthetic_model)
    with pytest.raises(SidecarError) as raised:
        await _generate(sidecar, plain_model, hires={"upscaler": "Model"})
    assert raised.value.data["field"] == "hires.upscaler" and "upscalerPath" in raised.value.data["rule"]
