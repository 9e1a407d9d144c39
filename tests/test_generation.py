"""Generation end to end: the Python host client, a real sidecar process, the real native backend.

Images are tiny (64x64, 1-3 steps) to keep the suite fast on 2 cores; the synthetic model's
pictures are noise, which is all these tests need.
"""

from __future__ import annotations

import asyncio
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image

from diffusion_sidecar_client import Sidecar, SidecarError, SyncSidecar
from sidecar.worker import messages
from tests.harness import model_hash, wait_gone, worker_pids

pytestmark = pytest.mark.anyio

SMALL = {"prompt": "a lighthouse at dusk", "width": 64, "height": 64, "steps": 1}


@pytest.fixture(scope="module")
async def sidecar(sidecar_command: list[str]):
    client = await Sidecar.start(sidecar_command)
    yield client
    assert await client.close() == 0


@pytest.fixture(scope="module")
async def loaded(sidecar: Sidecar, synthetic_model: str):
    """The synthetic model loaded once for the module, with the load's progress notifications."""
    progress = []
    result = await sidecar.load_model_result(synthetic_model, on_progress=progress.append)
    return result, progress


@pytest.fixture(scope="module")
def model_id(loaded) -> str:
    return loaded[0].modelId


def _png(data: bytes) -> Image.Image:
    image = Image.open(BytesIO(data))
    image.load()
    return image


async def _generate(sidecar: Sidecar, model_id: str, **params):
    call = sidecar.diffusion(modelId=model_id, **{**SMALL, **params})
    ticks = [tick async for tick in call.progress_stream if tick.phase == "sample"]  # phases: test_previews.py
    return ticks, await call.outputs, await call.stats, await call.seeds


async def test_load_reports_progress_and_the_detected_family(loaded) -> None:
    result, progress = loaded
    assert result.modelFamily == "SD 1.x Tiny UNet" and result.sizeMultiple == 64
    assert result.modelLoadMs > 0 and result.alreadyLoaded is False
    assert progress, "no loadModel/progress notification"
    assert [p.loaded for p in progress] == sorted(p.loaded for p in progress)
    assert progress[-1].loaded == progress[-1].total > 0
    assert [p.elapsedMs for p in progress] == sorted(p.elapsedMs for p in progress)
    assert len({p.requestId for p in progress}) == 1


async def test_identical_load_returns_the_same_model_without_loading_again(
    sidecar: Sidecar, synthetic_model: str, model_id: str
) -> None:
    workers = worker_pids(sidecar.pid)
    again = await sidecar.load_model_result(synthetic_model, {})
    assert again.modelId == model_id and again.alreadyLoaded is True
    assert worker_pids(sidecar.pid) == workers


async def test_one_tick_per_sampling_step_in_order(sidecar: Sidecar, model_id: str) -> None:
    ticks, outputs, stats, _ = await _generate(sidecar, model_id, steps=3, seed=11)
    assert [(t.step, t.totalSteps, t.image, t.batchCount) for t in ticks] == [(1, 3, 0, 1), (2, 3, 0, 1), (3, 3, 0, 1)]
    elapsed = [t.elapsedMs for t in ticks]
    assert elapsed == sorted(elapsed) and 0 < elapsed[-1] <= stats.totalWallMs
    assert len({t.requestId for t in ticks}) == 1 and len(outputs) == 1


async def test_batch_reports_every_seed_and_matches_single_generations(sidecar: Sidecar, model_id: str) -> None:
    ticks, outputs, stats, seeds = await _generate(sidecar, model_id, batch_count=2, seed=1234)
    assert seeds == [1234, 1235] and stats.seed == 1234
    assert [(t.image, t.step, t.batchCount) for t in ticks] == [(0, 1, 2), (1, 1, 2)]
    assert len(outputs) == 2 and outputs[0] != outputs[1]
    # Image i of a batch is exactly what a single generation with seed + i makes.
    _, single, _, _ = await _generate(sidecar, model_id, seed=1235)
    assert single == [outputs[1]]


async def test_same_request_and_seed_give_byte_identical_pngs(sidecar: Sidecar, model_id: str) -> None:
    _, first, _, _ = await _generate(sidecar, model_id, seed=99, prompt="same")
    _, second, _, _ = await _generate(sidecar, model_id, seed=99, prompt="same")
    _, other_seed, _, _ = await _generate(sidecar, model_id, seed=100, prompt="same")
    _, other_prompt, _, _ = await _generate(sidecar, model_id, seed=99, prompt="different")
    assert first == second
    assert _png(first[0]).tobytes() != _png(other_seed[0]).tobytes()
    assert _png(first[0]).tobytes() != _png(other_prompt[0]).tobytes()


async def test_random_seed_is_drawn_reported_and_reproducible(sidecar: Sidecar, model_id: str) -> None:
    _, outputs, stats, seeds = await _generate(sidecar, model_id)
    assert 0 <= stats.seed < 2**32 and seeds == [stats.seed]
    _, again, _, _ = await _generate(sidecar, model_id, seed=stats.seed)
    assert again == outputs
    _, _, explicit_random, _ = await _generate(sidecar, model_id, seed=-1)
    assert 0 <= explicit_random.seed < 2**32


async def test_png_size_pixels_and_parameters_chunk(sidecar: Sidecar, model_id: str, synthetic_model: str) -> None:
    params = {
        "prompt": "a red bicycle",
        "negative_prompt": "rain",
        "width": 64,
        "height": 128,
        "steps": 2,
        "cfg_scale": 5.5,
        "sampling_method": "euler",
        "scheduler": "karras",
        "seed": 7,
    }
    _, outputs, stats, _ = await _generate(sidecar, model_id, **params)
    image = _png(outputs[0])
    assert image.size == (64, 128) and (stats.width, stats.height) == (64, 128)
    assert image.mode == "RGB" and len(set(image.tobytes())) > 16, "the picture is flat"
    assert image.text["parameters"].splitlines() == [
        "a red bicycle",
        "Negative prompt: rain",
        "Steps: 2, Sampler: euler, Schedule type: karras, CFG scale: 5.5, Seed: 7, Size: 64x128, "
        f"Model hash: {model_hash(Path(synthetic_model) / 'unet' / 'diffusion_pytorch_model.safetensors')}, "
        f"Model: {Path(synthetic_model).name}",
    ]


async def test_omitted_sampler_and_scheduler_are_the_native_per_model_choice(
    sidecar: Sidecar, model_id: str, synthetic_model: str
) -> None:
    from sidecar.worker.native import NativeModel

    native = NativeModel(messages.Load(model_path=synthetic_model), "error", lambda loaded, total: None)
    sampler, scheduler = native.names(*native.resolve_sampling(None, None))
    _, outputs, _, _ = await _generate(sidecar, model_id, seed=5)
    assert f"Sampler: {sampler}, Schedule type: {scheduler}," in _png(outputs[0]).text["parameters"]


async def test_stats_accumulate_over_the_life_of_the_model(sidecar: Sidecar, model_id: str) -> None:
    _, _, before, _ = await _generate(sidecar, model_id, steps=1)
    _, _, after, _ = await _generate(sidecar, model_id, steps=2, batch_count=2, width=64, height=128)
    assert after.totalGenerations == before.totalGenerations + 1
    assert after.totalImages == before.totalImages + 2
    assert after.totalSteps == before.totalSteps + 2 * 2
    assert after.totalPixels == before.totalPixels + 64 * 128 * 2
    assert after.totalGenerationMs == pytest.approx(before.totalGenerationMs + after.generationMs, abs=0.01)
    assert after.modelLoadMs == before.modelLoadMs > 0
    # Unlike QVAC's, the wall clock really includes the load.
    assert after.totalWallMs >= after.modelLoadMs + after.totalGenerationMs
    assert after.totalWallMs > before.totalWallMs


async def test_initialize_is_answered_while_a_generation_runs(sidecar: Sidecar, model_id: str) -> None:
    call = sidecar.diffusion(modelId=model_id, **{**SMALL, "steps": 4})
    stream = call.progress_stream
    await anext(stream)
    info = await sidecar.initialize()
    assert not call.outputs.done()
    assert info.serverName == "diffusion-sidecar" and "euler_a" in info.samplingMethods
    assert info.backend.bindingVersion == "0.4.7" and info.backend.systemInfo
    assert info.cachePresets == ["slow", "medium", "fast", "ultra"]
    assert len(await call.outputs) == 1


async def test_cache_preset_and_vae_tiling_run_on_the_real_backend(sidecar: Sidecar, model_id: str) -> None:
    _, cached, _, _ = await _generate(sidecar, model_id, steps=3, cache_preset="ultra", seed=3)
    _, tiled, _, _ = await _generate(sidecar, model_id, vae_tiling=True, seed=3)
    assert _png(cached[0]).size == _png(tiled[0]).size == (64, 64)


async def test_two_models_generate_in_parallel_and_unload_frees_the_worker(
    sidecar: Sidecar, model_id: str, synthetic_model: str
) -> None:
    other = await sidecar.load_model_result(synthetic_model, {"threads": 1})
    assert other.modelId != model_id and other.alreadyLoaded is False
    workers = worker_pids(sidecar.pid)
    assert len(workers) == 2

    first = sidecar.diffusion(modelId=model_id, **{**SMALL, "steps": 3})
    second = sidecar.diffusion(modelId=other.modelId, **{**SMALL, "steps": 3})
    first_tick = await anext(first.progress_stream)
    second_tick = await anext(second.progress_stream)
    # Both were under way at once: each ticked before either finished.
    assert not first.outputs.done() or not second.outputs.done()
    assert (first_tick.phase, first_tick.step) == (second_tick.phase, second_tick.step) == ("encode", 0)
    assert len(await first.outputs) == len(await second.outputs) == 1

    await sidecar.unload_model(other.modelId)
    (gone,) = workers - worker_pids(sidecar.pid)
    assert wait_gone(gone, timeout=5)
    with pytest.raises(SidecarError) as refused:
        await _generate(sidecar, other.modelId)
    assert refused.value.data_code == "MODEL_NOT_LOADED" and refused.value.code == -32001
    assert (await _generate(sidecar, model_id))[1]


async def test_requests_for_one_model_run_in_arrival_order(sidecar: Sidecar, model_id: str) -> None:
    calls = [sidecar.diffusion(modelId=model_id, **SMALL, seed=seed) for seed in (1, 2, 3)]
    finished: list[int] = []

    async def wait(index: int) -> None:
        await calls[index].outputs
        finished.append(index)

    await asyncio.gather(*(wait(index) for index in range(3)))
    assert finished == [0, 1, 2]


def test_sync_client_generates(synthetic_model: str) -> None:
    ticks = []
    with SyncSidecar() as sidecar:
        model = sidecar.load_model(synthetic_model)
        images, stats = sidecar.diffusion(on_progress=ticks.append, modelId=model, **{**SMALL, "steps": 2, "seed": 1})
    assert [(t.phase, t.step) for t in ticks] == [("encode", 0), ("sample", 1), ("sample", 2), ("decode", 2)]
    assert len(images) == 1 and stats.seed == 1 and _png(images[0]).size == (64, 64)


async def test_sizes_the_model_cannot_make_exactly_are_refused(sidecar: Sidecar, model_id: str) -> None:
    # A UNet model makes multiples of 64 only; the library would silently round 96 up to 128.
    with pytest.raises(SidecarError) as refused:
        await _generate(sidecar, model_id, height=96)
    assert refused.value.code == -32602
    assert refused.value.data["field"] == "height" and "multiple of 64" in refused.value.data["rule"]


async def test_client_cancel_names_its_own_generation(sidecar: Sidecar, model_id: str) -> None:
    running = sidecar.diffusion(modelId=model_id, **{**SMALL, "steps": 30})
    queued = sidecar.diffusion(modelId=model_id, **SMALL)
    assert await queued.cancel() is True  # sent right after the diffusion request, and reaches it
    with pytest.raises(SidecarError) as cancelled:
        await queued.outputs
    assert cancelled.value.code == -32800 and cancelled.value.data_code == "CANCELLED"
    assert await running.cancel() is True
    with pytest.raises(SidecarError):
        await running.stats
    assert await running.cancel() is False
