"""Control end to end: the synthetic FLUX Control and FLUX Fill models (the tiny FLUX with `img_in`
widened) through a real sidecar and the real backend, the library's canny preprocessor, and the
refusals that keep a control image off models that would drop it.

Pictures are noise (random weights): the tests compare outputs with each other, never looks.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from diffusion_sidecar_client import Sidecar, SidecarError
from PIL import Image, ImageChops, ImageDraw, ImageStat

from sidecar.synth import flux_variants
from tests.test_flux import flux_load

pytestmark = pytest.mark.anyio

SMALL = {"prompt": "a lighthouse at dusk", "width": 64, "height": 64, "steps": 2, "cfg_scale": 1.0, "seed": 11}


def file_of(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def square(box: tuple[int, int, int, int], size: int = 64) -> Image.Image:
    image = Image.new("RGB", (size, size), (0, 0, 0))
    ImageDraw.Draw(image).rectangle(box, fill=(255, 255, 255))
    return image


@pytest.fixture(scope="module")
async def control(sidecar: Sidecar, synthetic_flux: Path) -> tuple[str, str]:
    synthetic_flux  # the plain FLUX's cache folder first: the variants link its text encoder and VAE
    folder = flux_variants.write_synthetic_flux_control(flux_variants.control_cache_dir())
    result = await sidecar.load_model_result(*flux_load(folder))
    return result.modelId, result.modelFamily


@pytest.fixture(scope="module")
async def fill(sidecar: Sidecar, synthetic_flux: Path) -> tuple[str, str]:
    folder = flux_variants.write_synthetic_flux_fill(flux_variants.fill_cache_dir())
    result = await sidecar.load_model_result(*flux_load(folder))
    return result.modelId, result.modelFamily


@pytest.fixture(scope="module")
async def flux(sidecar: Sidecar, synthetic_flux: Path) -> str:
    return await sidecar.load_model(*flux_load(synthetic_flux))


async def generate(sidecar: Sidecar, model_id: str, **params) -> Image.Image:
    call = sidecar.diffusion(modelId=model_id, **{**SMALL, **params})
    return png((await call.outputs)[0])


def test_canny_draws_the_edges_of_a_square_and_nothing_else() -> None:
    import ctypes

    import stable_diffusion_cpp.stable_diffusion_cpp as sd

    from sidecar.worker.native_images import canny

    data = (ctypes.c_uint8 * (64 * 64 * 3)).from_buffer_copy(square((16, 16, 47, 47)).tobytes())
    canny(sd.sd_image_t(64, 64, 3, data))
    edges = np.frombuffer(bytes(data), dtype=np.uint8).reshape(64, 64, 3)
    assert (edges[..., 0] == edges[..., 1]).all() and (edges[..., 0] == edges[..., 2]).all()  # grey
    grey = edges[..., 0]
    on = grey > 127
    assert on.any()
    rows, columns = np.nonzero(on)
    # Every edge pixel lies near the square's outline, none inside or outside. Not exactly on it:
    # the library's edges are off by up to 3 pixels and doubled on the left side (x 13-14 and
    # 16-17 for an outline at 16), a quirk of its non-maximum suppression measured here.
    near_outline = (np.abs(rows[:, None] - [16, 47]).min(1) <= 3) | (np.abs(columns[:, None] - [16, 47]).min(1) <= 3)
    assert near_outline.all()
    assert grey[24:40, 24:40].max() == 0 and grey[:8, :].max() == 0  # flat regions: black
    # All four sides are drawn.
    for side in (grey[14:19, 20:44], grey[45:50, 20:44], grey[20:44, 14:19], grey[20:44, 45:50]):
        assert (side > 127).any()


async def test_the_variants_load_as_flux_control_and_flux_fill(control, fill) -> None:
    assert control[1] == "Flux Control" and fill[1] == "Flux Fill"


async def test_the_control_image_steers_flux_control_reproducibly(sidecar: Sidecar, control) -> None:
    model_id = control[0]
    first = file_of(square((8, 8, 40, 40)))
    second = file_of(square((24, 20, 60, 56)))
    one = await generate(sidecar, model_id, control_image=first, canny=True)
    again = await generate(sidecar, model_id, control_image=first, canny=True)
    other = await generate(sidecar, model_id, control_image=second, canny=True)
    plain = await generate(sidecar, model_id)
    assert one.tobytes() == again.tobytes()
    assert np.abs(np.asarray(one, np.int16) - np.asarray(other, np.int16)).mean() > 1
    assert np.abs(np.asarray(one, np.int16) - np.asarray(plain, np.int16)).mean() > 1
    # canny changes what the model reads: the edges, not the filled square.
    filled = await generate(sidecar, model_id, control_image=first)
    assert np.abs(np.asarray(one, np.int16) - np.asarray(filled, np.int16)).mean() > 1
    model = Path(flux_variants.control_cache_dir() / "diffusion.safetensors").stem
    unit = f"Module: canny, Model: {model}, Weight: 1.0, Resize Mode: Just Resize, Guidance Start: 0.0, Guidance End: 1.0"
    assert f'ControlNet 0: "{unit}, Control Mode: Balanced"' in one.info["parameters"]
    assert "ControlNet" not in plain.info["parameters"]


async def test_a_control_image_of_another_size_is_resized_to_the_output(sidecar: Sidecar, control) -> None:
    small = await generate(sidecar, control[0], control_image=file_of(square((4, 4, 20, 20), size=32)))
    assert small.size == (64, 64)


def _mean_difference(a: Image.Image, b: Image.Image, box: tuple[int, int, int, int]) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a.crop(box), b.crop(box))).mean) / 3


async def test_flux_fill_repaints_the_white_region_and_keeps_the_black_one(sidecar: Sidecar, fill) -> None:
    """Seeds, as tests/test_img2img.py does it. A Fill model is not blended with the source's latent
    outside the mask (the library does that for plain models only): it reads the masked image and
    the mask as inputs, so on random weights the keep region still varies with the seed, but
    measurably less than the repaint region (kept 40 vs repainted 66 mean levels, measured)."""
    source = file_of(Image.effect_noise((64, 64), 80).convert("RGB"))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (32, 0, 64, 64))  # right half: repaint
    masked = {"init_image": source, "mask_image": file_of(mask), "strength": 1.0}
    first = await generate(sidecar, fill[0], **masked, seed=1)
    second = await generate(sidecar, fill[0], **masked, seed=2)
    keep, repaint = (0, 0, 24, 64), (40, 0, 64, 64)
    kept, repainted = _mean_difference(first, second, keep), _mean_difference(first, second, repaint)
    assert kept < 0.8 * repainted, (kept, repainted)
    assert "Mask blur: 0" in first.info["parameters"]


REFUSALS = {
    "control_strength without image": ({"control_strength": 0.5}, "control_strength", "needs a `control_image`"),
    "canny without image": ({"canny": True}, "canny", "needs a `control_image`"),
    "strength out of range": ({"control_image": file_of(square((1, 1, 9, 9))), "control_strength": 2.5}, "control_strength", ""),
    "bad image": ({"control_image": b"\x89PNG\r\n\x1a\n"}, "control_image", "is not a"),
}


async def test_bad_control_inputs_are_refused_naming_the_field(sidecar: Sidecar, control) -> None:
    for name, (params, field, message) in REFUSALS.items():
        with pytest.raises(SidecarError) as refused:
            await generate(sidecar, control[0], **params)
        assert refused.value.data_code == "INVALID_PARAMS", name
        assert field in str(refused.value) and message in str(refused.value), name


async def test_a_control_image_is_refused_where_the_library_would_drop_it(
    sidecar: Sidecar, control, fill, flux: str
) -> None:
    image = file_of(square((8, 8, 40, 40)))
    cases = [
        (flux, {}, "control_image", "(Flux) reads no control image"),
        (fill[0], {}, "control_image", "FLUX Fill repaints"),
        (control[0], {"control_strength": 0.5}, "control_strength", "has none"),
        (control[0], {"hires": {"scale": 2}}, "control_image", "`hires`"),
    ]
    for model_id, params, field, message in cases:
        with pytest.raises(SidecarError) as refused:
            await generate(sidecar, model_id, control_image=image, **params)
        assert refused.value.data_code == "INVALID_PARAMS" and refused.value.data.get("field") == field, message
        assert message in str(refused.value)


async def test_a_controlnet_on_a_unet_it_does_not_fit_is_refused_and_its_model_unloaded() -> None:
    """The decision after a load (for files whose names cannot be read before it: .gguf, .ckpt), by
    the family the worker reported."""
    from types import SimpleNamespace

    from sidecar.inputs.control import refuse_unfitting_controlnet
    from sidecar.rpc.errors import SidecarError as Refusal
    from sidecar.worker import messages

    unloaded = []
    models = SimpleNamespace(has=lambda model_id: True, unload=lambda model_id: _record(unloaded, model_id))
    for family in ("SD 1.x Tiny UNet", "SDXL (Vega)", "Flux"):
        model = SimpleNamespace(model_id=family, family=family, load=messages.Load(control_net_path="/m/c.safetensors"))
        with pytest.raises(Refusal) as refused:
            await refuse_unfitting_controlnet(model, models)
        assert refused.value.data["field"] == "modelConfig.controlNetPath" and family in refused.value.message
    assert unloaded == ["SD 1.x Tiny UNet", "SDXL (Vega)", "Flux"]
    for family, control_net_path in (("SD 1.x", "/m/c.safetensors"), ("SD 1.x Tiny UNet", "")):
        model = SimpleNamespace(model_id=family, family=family, load=messages.Load(control_net_path=control_net_path))
        await refuse_unfitting_controlnet(model, models)  # kept
    assert len(unloaded) == 3


def test_a_controlnet_is_refused_before_the_load_from_the_model_files_tensor_names(tmp_path: Path) -> None:
    """The names alone decide (a header-only file is enough): full UNets pass, a UNet without a
    middle attention block and a DiT are refused; a file with no readable names waits for the load."""
    from sidecar.inputs.control import refuse_controlnet_before_load
    from sidecar.rpc.errors import SidecarError as Refusal
    from sidecar.synth import flux, sd1_full, sdxl

    def header_only(name: str, tensors: list[tuple[str, list[int]]]) -> str:
        entries = {tensor: {"dtype": "F16", "shape": shape, "data_offsets": [0, 0]} for tensor, shape in tensors}
        header = json.dumps(entries)
        (tmp_path / name).write_bytes(len(header).to_bytes(8, "little") + header.encode())
        return str(tmp_path / name)

    refuse_controlnet_before_load(header_only("sd1.safetensors", sd1_full.tensors()))
    refuse_controlnet_before_load(str(tmp_path / "model.gguf"))
    for name, tensors, what in (
        ("vega.safetensors", sdxl.tensors(), "tiny or distilled UNet"),
        ("flux.safetensors", flux.diffusion_tensors(), "a DiT"),
    ):
        with pytest.raises(Refusal) as refused:
            refuse_controlnet_before_load(header_only(name, tensors))
        assert refused.value.data["field"] == "modelConfig.controlNetPath" and what in refused.value.message


async def _record(unloaded: list[str], model_id: str) -> None:
    unloaded.append(model_id)
