"""A DiT family end to end: the synthetic FLUX model (a standalone diffusion model plus separate
CLIP-L and VAE files, as FLUX ships) through a real sidecar and the real native backend.

Its pictures are noise; the tests compare sizes, seeds and pixel differences, never looks.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from diffusion_sidecar_client import Sidecar, SidecarError
from PIL import Image

from tests.harness import kill, model_hash, wait_gone, worker_pids

pytestmark = pytest.mark.anyio

SMALL = {"prompt": "a lighthouse at dusk", "width": 64, "height": 64, "steps": 2, "cfg_scale": 1.0, "seed": 11}


def flux_load(folder: Path) -> tuple[str, dict[str, str]]:
    """How a FLUX user loads it: the diffusion model, its text encoder and its VAE."""
    return str(folder / "diffusion.safetensors"), {
        "clipLPath": str(folder / "clip_l.safetensors"),
        "vaePath": str(folder / "vae.safetensors"),
    }


@pytest.fixture(scope="module")
async def loaded(sidecar: Sidecar, synthetic_flux: Path):
    progress = []
    result = await sidecar.load_model_result(*flux_load(synthetic_flux), on_progress=progress.append)
    return result, progress


@pytest.fixture(scope="module")
def flux(loaded) -> str:
    return loaded[0].modelId


@pytest.fixture(scope="module")
async def sd1(sidecar: Sidecar, synthetic_model: str) -> str:
    return await sidecar.load_model(synthetic_model)


def _png(data: bytes) -> Image.Image:
    image = Image.open(BytesIO(data))
    image.load()
    return image


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(_png(data), dtype=np.int16)


async def _generate(sidecar: Sidecar, model_id: str, **params):
    call = sidecar.diffusion(modelId=model_id, **{**SMALL, **params})
    ticks = [tick async for tick in call.progress_stream if tick.phase == "sample"]  # phases: test_previews.py
    return ticks, (await call.outputs)[0], await call.sampling


async def test_load_names_the_family_and_reports_progress(loaded) -> None:
    result, progress = loaded
    assert result.modelFamily == "Flux" and result.alreadyLoaded is False
    # A DiT pads its own patches: any multiple of the VAE's 8 comes out exactly (checked below).
    assert result.sizeMultiple == 8
    assert progress and progress[-1].loaded == progress[-1].total > 0


async def test_text_to_image_with_the_native_defaults_reported(
    sidecar: Sidecar, flux: str, synthetic_flux: Path
) -> None:
    from sidecar.worker import messages
    from sidecar.worker.native import NativeModel

    path, config = flux_load(synthetic_flux)
    load = messages.Load(diffusion_model_path=path, clip_l_path=config["clipLPath"], vae_path=config["vaePath"])
    native = NativeModel(load, "error", lambda loaded, total: None)
    defaults = native.names(*native.resolve_sampling(None, None))

    ticks, png, sampling = await _generate(sidecar, flux, steps=3)
    assert [(tick.step, tick.totalSteps) for tick in ticks] == [(1, 3), (2, 3), (3, 3)]
    image = _png(png)
    assert image.size == (64, 64) and image.mode == "RGB" and len(set(image.tobytes())) > 16
    assert sampling == defaults
    assert image.text["parameters"].splitlines()[1] == (
        f"Steps: 3, Sampler: {defaults[0]}, Schedule type: {defaults[1]}, CFG scale: 1, Distilled CFG Scale: 3.5, "
        f"Seed: 11, Size: 64x64, Model hash: {model_hash(synthetic_flux / 'diffusion.safetensors')}, Model: diffusion"
    )


async def test_sizes_come_out_exactly_as_asked(sidecar: Sidecar, flux: str) -> None:
    # Not multiples of 16 (a 2x2 latent patch) nor of 64 (a UNet's): the DiT still makes them exactly.
    for width, height in ((72, 64), (64, 40), (88, 24)):
        _, png, _ = await _generate(sidecar, flux, width=width, height=height, steps=1)
        assert _png(png).size == (width, height)


async def test_guidance_changes_the_picture_on_flux_only(sidecar: Sidecar, flux: str, sd1: str) -> None:
    _, low, _ = await _generate(sidecar, flux, guidance=1.0)
    _, high, _ = await _generate(sidecar, flux, guidance=6.0)
    assert np.abs(_pixels(low) - _pixels(high)).mean() > 1
    # A UNet has no guidance input: the same image whatever it is.
    _, low, _ = await _generate(sidecar, sd1, guidance=1.0, steps=1)
    _, high, _ = await _generate(sidecar, sd1, guidance=6.0, steps=1)
    assert np.array_equal(_pixels(low), _pixels(high))


async def test_cfg_scale_one_is_a_single_pass_that_ignores_the_negative_prompt(sidecar: Sidecar, flux: str) -> None:
    # stable-diffusion.cpp's FLUX advice is cfg_scale 1: distilled guidance only, one model pass per step.
    _, plain, _ = await _generate(sidecar, flux, cfg_scale=1.0)
    _, negative, _ = await _generate(sidecar, flux, cfg_scale=1.0, negative_prompt="fog, rain")
    assert np.array_equal(_pixels(plain), _pixels(negative))
    # Above 1, real classifier-free guidance runs on top: the negative prompt counts.
    _, plain, _ = await _generate(sidecar, flux, cfg_scale=4.0)
    _, negative, _ = await _generate(sidecar, flux, cfg_scale=4.0, negative_prompt="fog, rain")
    assert np.abs(_pixels(plain) - _pixels(negative)).mean() > 1


async def test_every_cache_preset_runs_on_both_families(sidecar: Sidecar, flux: str, sd1: str) -> None:
    for model_id, steps in ((flux, 6), (sd1, 3)):
        for preset in ("slow", "medium", "fast", "ultra"):
            ticks, png, _ = await _generate(sidecar, model_id, steps=steps, cache_preset=preset)
            assert _png(png).size == (64, 64) and [tick.step for tick in ticks] == list(range(1, steps + 1))


async def test_cancel_ends_the_worker_and_the_model_comes_back(sidecar: Sidecar, flux: str) -> None:
    await _generate(sidecar, flux, steps=1)  # settle any earlier reload
    before = worker_pids(sidecar.pid)
    call = sidecar.diffusion(modelId=flux, **{**SMALL, "steps": 100})
    await anext(call.progress_stream)
    assert await call.cancel() is True
    with pytest.raises(SidecarError) as cancelled:
        await call.outputs
    assert cancelled.value.data_code == "CANCELLED"
    _, png, _ = await _generate(sidecar, flux, steps=1)  # the model came back in a fresh worker
    assert _png(png).size == (64, 64)
    assert before - worker_pids(sidecar.pid), "the cancelled generation's worker is still there"


async def test_a_dit_without_a_text_encoder_is_refused_before_any_worker_starts(
    sidecar: Sidecar, synthetic_flux: Path
) -> None:
    before = worker_pids(sidecar.pid)
    for config in ({}, {"vaePath": str(synthetic_flux / "vae.safetensors")}):
        with pytest.raises(SidecarError) as refused:
            await sidecar.load_model(str(synthetic_flux / "diffusion.safetensors"), config)
        assert refused.value.data_code == "INVALID_PARAMS" and refused.value.data["field"] == "modelPath"
        assert "text encoder" in refused.value.data["rule"] and "clipLPath" in str(refused.value)
    assert worker_pids(sidecar.pid) == before


async def test_wrong_companion_files_fail_the_load_with_the_native_reason(
    sidecar: Sidecar, synthetic_flux: Path, synthetic_model: str
) -> None:
    path, config = flux_load(synthetic_flux)
    unet = str(Path(synthetic_model) / "unet" / "diffusion_pytorch_model.safetensors")
    wrong = {  # the file in the wrong slot, and what the native library says about it
        "a VAE as the text encoder": (path, {**config, "clipLPath": config["vaePath"]}, "not in model file"),
        "a UNet as the DiT": (unet, config, "get sd version from file failed"),
        "the text encoder as the VAE": (path, {**config, "vaePath": config["clipLPath"]}, "not in model file"),
    }
    for case, (model_path, model_config, native_reason) in wrong.items():
        with pytest.raises(SidecarError) as failed:
            await sidecar.load_model(model_path, model_config)
        assert failed.value.data_code == "MODEL_LOAD_FAILED", case
        assert native_reason in failed.value.data["reason"], (case, failed.value.data["reason"])


async def test_a_crashed_flux_worker_is_reported_reloaded_and_unloaded(sidecar: Sidecar, synthetic_flux: Path) -> None:
    # Its own copy (other options), so the module's model stays loaded.
    path, config = flux_load(synthetic_flux)
    others = worker_pids(sidecar.pid)
    model_id = await sidecar.load_model(path, {**config, "threads": 1})
    (worker,) = worker_pids(sidecar.pid) - others
    call = sidecar.diffusion(modelId=model_id, **{**SMALL, "steps": 100})
    await anext(call.progress_stream)
    kill(worker)
    with pytest.raises(SidecarError) as crashed:
        await call.outputs
    assert crashed.value.data_code == "WORKER_CRASHED" and crashed.value.data["signal"] == "SIGKILL"
    assert wait_gone(worker, timeout=5)
    assert await sidecar.load_model(path, {**config, "threads": 1}) == model_id
    _, png, _ = await _generate(sidecar, model_id, steps=1)
    assert _png(png).size == (64, 64)
    (reloaded,) = worker_pids(sidecar.pid) - others
    await sidecar.unload_model(model_id)
    assert wait_gone(reloaded, timeout=5) and worker_pids(sidecar.pid) == others


def _file(image: Image.Image) -> bytes:
    buffer = BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


REFERENCE = _file(Image.effect_noise((48, 80), 60).convert("RGB"))
OTHER_REFERENCE = _file(Image.linear_gradient("L").resize((64, 64)).convert("RGB"))


async def test_reference_images_change_the_picture_at_the_asked_size(sidecar: Sidecar, flux: str) -> None:
    # Kontext-style: each reference becomes extra image tokens beside the prompt's.
    _, plain, _ = await _generate(sidecar, flux)
    ticks, one, _ = await _generate(sidecar, flux, ref_images=[REFERENCE])
    _, other, _ = await _generate(sidecar, flux, ref_images=[OTHER_REFERENCE])
    _, both, _ = await _generate(sidecar, flux, ref_images=[REFERENCE, OTHER_REFERENCE])
    assert [tick.step for tick in ticks] == [1, 2]
    assert {_png(image).size for image in (one, other, both)} == {(64, 64)}
    pictures = [_pixels(image) for image in (plain, one, other, both)]
    for index, first in enumerate(pictures):
        for second in pictures[index + 1 :]:
            assert np.abs(first - second).mean() > 0.5
    _, again, _ = await _generate(sidecar, flux, ref_images=[REFERENCE])
    assert np.array_equal(_pixels(again), pictures[1])


async def test_reference_images_are_refused_where_the_library_would_drop_them(
    sidecar: Sidecar, flux: str, sd1: str
) -> None:
    call = sidecar.diffusion(modelId=sd1, **{**SMALL, "ref_images": [REFERENCE]})
    with pytest.raises(SidecarError) as refused:
        await call.outputs
    assert refused.value.data_code == "INVALID_PARAMS" and refused.value.data["field"] == "ref_images"
    assert "SD 1.x Tiny UNet" in refused.value.data["rule"]
    assert [tick async for tick in call.progress_stream] == [], "it reached the worker"
    with pytest.raises(SidecarError) as broken:
        await _generate(sidecar, flux, ref_images=[REFERENCE, "not*base64"])
    assert broken.value.data["field"] == "ref_images[1]" and "base64" in broken.value.data["rule"]
    with pytest.raises(SidecarError) as empty:
        await _generate(sidecar, flux, ref_images=[])
    assert empty.value.data["field"] == "ref_images"


def test_reference_sizes_follow_the_library_auto_resize() -> None:
    from sidecar.inputs.ref_images import reference_size

    assert reference_size((1000, 500), 64 * 64, 16) == (96, 48)
    assert reference_size((48, 80), 64 * 64, 16) == (48, 80)
    assert reference_size((4000, 10), 64 * 64, 16) == (1280, 16)  # never a side of 0
    assert reference_size((512, 512), 1024 * 1024, 32) == (1024, 1024)


async def test_img2img_on_flux(sidecar: Sidecar, flux: str) -> None:
    _, plain, _ = await _generate(sidecar, flux, steps=4)
    ticks, edited, _ = await _generate(sidecar, flux, steps=4, init_image=REFERENCE, strength=0.5, width=64, height=64)
    assert [tick.step for tick in ticks] == [1, 2, 3]  # int(4 * 0.5) + 1
    assert _png(edited).size == (64, 64) and np.abs(_pixels(edited) - _pixels(plain)).mean() > 0.5
    assert "Denoising strength: 0.5" in _png(edited).text["parameters"]
