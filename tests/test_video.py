"""Video end to end: the Python host client, a real sidecar, the real backend, the synthetic Wan.

The synthetic Wan is 1.5B parameters (the smallest layout the library takes): it is written once
per machine into the cache and loaded once for this module; every clip is the smallest that shows
its point (32x32, 5 frames, 1 step at cfg 1 where steps do not matter). Its frames are noise, and it
has no text encoder (the prompt is ignored): nothing here asserts what a frame looks like, the
tests compare clips with each other.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from diffusion_sidecar_client import Sidecar, SidecarError, SyncSidecar, VideoClip, VideoProgress
from PIL import Image

from sidecar.synth import wan as synth_wan

pytestmark = pytest.mark.anyio

MAX_FRAMES = 9
SIDE = 32
CLIP = {"prompt": "a lighthouse at dusk", "width": SIDE, "height": SIDE, "video_frames": 5, "steps": 1, "cfg_scale": 1.0}


def image_file(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((SIDE, SIDE), 40 + seed).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def pixels(data: bytes) -> bytes:
    return Image.open(io.BytesIO(data)).convert("RGB").tobytes()


@pytest.fixture(scope="module")
async def sidecar(python_command: list[str]):
    flags = ["--max-video-frames", str(MAX_FRAMES), "--max-video-pixels", str(SIDE * SIDE * MAX_FRAMES)]
    client = await Sidecar.start([*python_command, *flags])
    yield client
    assert await client.close() == 0


@pytest.fixture(scope="module")
async def wan(sidecar: Sidecar) -> str:
    folder = synth_wan.write_synthetic_wan(synth_wan.default_cache_dir())
    loaded = await sidecar.load_model_result(
        str(folder / "diffusion.safetensors"), {"vaePath": str(folder / "vae.safetensors")}
    )
    assert loaded.modelFamily == "Wan 2.x" and loaded.sizeMultiple == 16
    return loaded.modelId


async def clip(sidecar: Sidecar, model_id: str, **params) -> tuple[VideoClip, list[VideoProgress]]:
    ticks: list[VideoProgress] = []
    made = await sidecar.video(model_id, **{**CLIP, **params}, on_progress=ticks.append)
    return made, ticks


@pytest.fixture(scope="module")
async def seed_1(sidecar: Sidecar, wan: str) -> tuple[VideoClip, list[VideoProgress]]:
    return await clip(sidecar, wan, seed=1)


async def test_a_clip_is_distinct_frames_and_an_animated_webp_holding_them(seed_1) -> None:
    made, ticks = seed_1
    assert [(tick.phase, tick.step, tick.totalSteps, tick.frames) for tick in ticks] == [
        ("encode", 0, 1, 5), ("sample", 1, 1, 5), ("decode", 1, 1, 5)
    ]  # fmt: skip
    frames = [pixels(frame) for frame in made.frames]
    assert len(set(frames)) == 5
    assert {Image.open(io.BytesIO(frame)).size for frame in made.frames} == {(SIDE, SIDE)}
    parameters = Image.open(io.BytesIO(made.frames[0])).text["parameters"]
    assert "Seed: 1," in parameters and "Frames: 5" in parameters and "FPS: 16" in parameters
    animation = Image.open(io.BytesIO(made.animation))
    assert (animation.format, animation.n_frames, animation.info["loop"]) == ("WEBP", 5, 0)
    for index, frame in enumerate(frames):
        animation.seek(index)
        assert animation.convert("RGB").tobytes() == frame  # lossless: the PNGs' very pixels
        assert animation.info["duration"] == 1000 // 16
    assert parameters in animation.getexif()[0x010E]
    stats = made.result.stats
    assert (stats.frames, stats.seed, made.result.fps) == (5, 1, 16)
    assert stats.framesPerSecond > 0 and stats.stepsPerSecond > 0 and stats.denoiseMs > 0 and stats.vaeMs > 0


async def test_the_same_seed_makes_the_same_clip_and_another_seed_another(sidecar: Sidecar, wan: str, seed_1) -> None:
    again, _ = await clip(sidecar, wan, seed=1)
    other, _ = await clip(sidecar, wan, seed=2)
    assert again.frames == seed_1[0].frames and again.animation == seed_1[0].animation
    assert not set(map(pixels, other.frames)) & set(map(pixels, seed_1[0].frames))


async def test_image_to_video_reads_the_init_image(sidecar: Sidecar, wan: str, seed_1) -> None:
    """Same seed, so only the image differs from the clip made without one (VACE reads the init
    image as its reference)."""
    made, _ = await clip(sidecar, wan, seed=1, init_image=image_file(1))
    assert "Init image: yes" in Image.open(io.BytesIO(made.frames[0])).text["parameters"]
    assert not set(map(pixels, made.frames)) & set(map(pixels, seed_1[0].frames))


@pytest.mark.parametrize(
    ("params", "code", "field"),
    [
        ({"video_frames": 4}, "INVALID_PARAMS", "video_frames"),
        ({"video_frames": MAX_FRAMES + 4}, "LIMIT_EXCEEDED", "video_frames"),
        ({"width": 48, "video_frames": MAX_FRAMES}, "LIMIT_EXCEEDED", "video_frames"),  # maxVideoPixels
        ({"width": 40}, "INVALID_PARAMS", "width"),
        ({"end_image": image_file(1)}, "INVALID_PARAMS", "end_image"),  # VACE reads no end image
        ({"init_image": "not base64!"}, "INVALID_PARAMS", "init_image"),
    ],
)
async def test_what_the_clip_cannot_be_is_refused_before_any_native_work(
    sidecar: Sidecar, wan: str, params: dict, code: str, field: str
) -> None:
    ticks: list[VideoProgress] = []
    with pytest.raises(SidecarError) as refused:
        await sidecar.video(wan, **{**CLIP, **params}, on_progress=ticks.append)
    assert (refused.value.data_code, refused.value.data["field"]) == (code, field)
    assert ticks == []


def test_the_sync_client_passes_video_through_and_raises_what_the_sidecar_refuses(python_command: list[str]) -> None:
    """SyncSidecar.video on refusals alone: no Wan is loaded (a success would need a second 13 s
    load, the sync client being a sidecar of its own). The frame count is checked before the model
    is looked up, so the first refusal names `video_frames` even with no model; the second shows the
    model id reached the sidecar."""
    ticks: list[VideoProgress] = []
    with SyncSidecar(python_command) as sidecar:
        with pytest.raises(SidecarError) as frames:
            sidecar.video("no-such-model", **{**CLIP, "video_frames": 4}, on_progress=ticks.append)
        with pytest.raises(SidecarError) as model:
            sidecar.video("no-such-model", **CLIP, on_progress=ticks.append)
    assert (frames.value.data_code, frames.value.data["field"]) == ("INVALID_PARAMS", "video_frames")
    assert (model.value.data_code, model.value.data["modelId"]) == ("MODEL_NOT_LOADED", "no-such-model")
    assert ticks == []


async def test_a_still_image_on_wan_is_refused_for_video(sidecar: Sidecar, wan: str) -> None:
    call = sidecar.diffusion(modelId=wan, prompt="x", width=SIDE, height=SIDE, steps=1)
    with pytest.raises(SidecarError) as refused:
        await call.outputs
    assert refused.value.data["field"] == "modelId" and "`video`" in refused.value.message


async def test_a_clip_cancelled_mid_sampling_ends_at_once(sidecar: Sidecar, wan: str) -> None:
    """Last in the module: a cancel ends the worker (the model reloads behind it)."""
    sampling: list[VideoProgress] = []
    first_step = asyncio.Event()

    def on_progress(tick: VideoProgress) -> None:
        if tick.phase == "sample":
            sampling.append(tick)
            first_step.set()

    running = asyncio.create_task(sidecar.video(wan, **{**CLIP, "steps": 3, "seed": 3}, on_progress=on_progress))
    await first_step.wait()
    assert await sidecar.cancel(request_id=sampling[0].requestId) == 1
    with pytest.raises(SidecarError) as stopped:
        await running
    assert stopped.value.data_code == "CANCELLED" and sampling[-1].step < 3
