"""Live previews, progress phases and per-phase stats, through a real sidecar and the real backend.

One sidecar (the Python launcher; the binary's previews: tests/test_binary.py), with the synthetic model loaded together with a synthetic TAESD file
(random weights: every preview is noise, which is all these tests need). 64x64, 1-3 steps.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from diffusion_sidecar_client import Sidecar
from PIL import Image

from sidecar.synth.taesd import write_synthetic_taesd
from sidecar.worker import messages, previews
from tests.harness import RawSidecar

# Several generations per test: generous on a busy machine (each is about a second on an idle one).
pytestmark = [pytest.mark.anyio, pytest.mark.timeout(900)]

SMALL = {"prompt": "a lighthouse at dusk", "width": 64, "height": 64}
PHASE_SUM_TOLERANCE_MS = (0.05, 100.0)
"""Phase times may fall short of generationMs by the hand-over between processes: at most 5% of
generationMs or 100 ms, whichever is larger (a busy machine can delay the front's read)."""


@pytest.fixture(scope="session")
def synthetic_taesd(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_synthetic_taesd(tmp_path_factory.mktemp("taesd") / "taesd.safetensors"))


@pytest.fixture(scope="module")
async def sidecar(python_command: list[str], synthetic_model: str, synthetic_taesd: str):
    raw = await RawSidecar.start(command=python_command)
    loaded = await raw.call("loadModel", {"modelPath": synthetic_model, "modelConfig": {"taesdPath": synthetic_taesd}})
    raw.model_id = loaded["result"]["modelId"]
    yield raw
    await raw.stop()


async def _generate(raw: RawSidecar, **params) -> tuple[dict, list[dict], list[dict]]:
    """The response, the progress ticks and the previews of one generation."""
    request_id = await raw.send("diffusion", {"modelId": raw.model_id, **SMALL, **params})
    response = await raw.response(request_id, timeout=600)
    return (
        response,
        raw.notifications("diffusion/progress", request_id),
        raw.notifications("diffusion/preview", request_id),
    )


def _png(preview: dict) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(preview["png"])))
    image.load()
    return image


def _check_previews(previews: list[dict], *, images: int, steps: int, interval: int, size: tuple[int, int]) -> None:
    """Per image: steps strictly increasing (no duplicates, nothing negative), each a multiple of
    the interval, the last one present; every PNG of the announced size."""
    last_expected = steps - steps % interval
    for index in range(images):
        shown = [p["step"] for p in previews if p["image"] == index]
        assert shown == sorted(set(shown)), f"image {index}: {shown}"
        assert all(1 <= step <= steps and step % interval == 0 for step in shown), shown
        assert shown and shown[-1] == last_expected, f"image {index}: {shown}, want the last at {last_expected}"
    assert {p["image"] for p in previews} == set(range(images))
    for preview in previews:
        image = _png(preview)
        assert image.format == "PNG" and image.mode == "RGB"
        assert image.size == (preview["width"], preview["height"]) == size
        assert preview["totalSteps"] == steps


def _check_phases(ticks: list[dict], *, images: int, steps: int) -> None:
    """Per image, in order: encode (step 0), every sampling step once, decode (step n)."""
    want = [("encode", 0)] + [("sample", step) for step in range(1, steps + 1)] + [("decode", steps)]
    for index in range(images):
        assert [(t["phase"], t["step"]) for t in ticks if t["image"] == index] == want
    assert [t["image"] for t in ticks] == sorted(t["image"] for t in ticks), "images ran in order"
    elapsed = [t["elapsedMs"] for t in ticks]
    assert elapsed == sorted(elapsed)


def _check_phase_stats(stats: dict, sampling_steps: int) -> None:
    phases = stats["conditionerMs"] + stats["denoiseMs"] + stats["vaeMs"] + stats["postProcessMs"]
    share, floor = PHASE_SUM_TOLERANCE_MS
    assert all(stats[key] > 0 for key in ("conditionerMs", "denoiseMs", "vaeMs", "postProcessMs")), stats
    assert stats["generationMs"] - max(share * stats["generationMs"], floor) <= phases <= stats["generationMs"], stats
    assert stats["stepsPerSecond"] == pytest.approx(sampling_steps / stats["denoiseMs"] * 1000, abs=5e-4)  # 3 decimals


async def test_proj_previews_every_step_of_every_image_with_phases_and_stats(sidecar: RawSidecar) -> None:
    response, ticks, previews = await _generate(
        sidecar, steps=2, batch_count=2, seed=21, sampling_method="euler", preview_method="proj"
    )
    stats = response["result"]["stats"]
    # proj maps the latent to RGB: an eighth of the image's size.
    _check_previews(previews, images=2, steps=2, interval=1, size=(8, 8))
    assert {p["requestId"] for p in previews} == {response["id"]}
    _check_phases(ticks, images=2, steps=2)
    _check_phase_stats(stats, sampling_steps=2 * 2)


async def test_tae_previews_full_size_at_the_interval_with_heun(sidecar: RawSidecar) -> None:
    # heun calls the denoiser twice a step, the first time with the step negated; its last step
    # is one negated call only. Interval 2: step 1 is not previewed, step 2 is.
    response, ticks, previews = await _generate(
        sidecar, steps=2, seed=5, sampling_method="heun", preview_method="tae", preview_interval=2
    )
    assert "result" in response, response
    _check_previews(previews, images=1, steps=2, interval=2, size=(64, 64))
    assert len(previews) == 1
    _check_phases(ticks, images=1, steps=2)


async def test_a_cancel_stops_the_previews(sidecar: RawSidecar) -> None:
    request_id = await sidecar.send(
        "diffusion", {"modelId": sidecar.model_id, **SMALL, "steps": 30, "preview_method": "proj"}
    )
    await sidecar.wait_for(
        lambda m: m.get("method") == "diffusion/preview" and m["params"]["requestId"] == request_id, 600
    )
    await sidecar.call("cancel", {"requestId": request_id})
    cancelled = await sidecar.response(request_id)
    assert cancelled["error"]["data"]["code"] == "CANCELLED"
    # The next request waits for the model to come back in a fresh worker: by its answer,
    # anything the cancelled one had in flight would have arrived.
    after, _, previews_after = await _generate(sidecar, steps=1, seed=1)
    assert "result" in after and previews_after == []
    position = sidecar.messages.index(cancelled)
    late = [m for m in sidecar.messages[position:] if m.get("method") and m["params"].get("requestId") == request_id]
    assert late == []


async def test_without_a_taesd_file_tae_is_refused_and_vae_previews_decode_full_size(
    sidecar: RawSidecar, synthetic_model: str
) -> None:
    # On a model loaded with a TAESD file the library decodes `vae` previews with the TAESD as
    # well: the model's own VAE previews need a model loaded without one.
    plain = await sidecar.call("loadModel", {"modelPath": synthetic_model}, timeout=600)
    model_id = plain["result"]["modelId"]
    assert model_id != sidecar.model_id
    try:
        refused = await sidecar.call(
            "diffusion", {"modelId": model_id, **SMALL, "steps": 1, "preview_method": "tae"}, timeout=600
        )
        error = refused["error"]
        assert error["code"] == -32602 and error["data"]["field"] == "preview_method"
        assert "taesdPath" in error["data"]["rule"]
        # dpm2's last step is a single, negated call: its preview is still sent, once.
        job = {**SMALL, "steps": 2, "seed": 8, "sampling_method": "dpm2"}
        request_id = await sidecar.send(
            "diffusion", {"modelId": model_id, **job, "preview_method": "vae", "preview_noisy": True}
        )
        with_vae = await sidecar.response(request_id, timeout=600)
        _check_previews(
            sidecar.notifications("diffusion/preview", request_id), images=1, steps=2, interval=1, size=(64, 64)
        )
        _check_phases(sidecar.notifications("diffusion/progress", request_id), images=1, steps=2)
        # The TAESD file serves previews only: the final image is the model's VAE's, as without it.
        with_tae, _, previews = await _generate(sidecar, **job, preview_method="tae")
        _check_previews(previews, images=1, steps=2, interval=1, size=(64, 64))
        assert with_tae["result"]["outputs"] == with_vae["result"]["outputs"]
    finally:
        await sidecar.call("unloadModel", {"modelId": model_id})


async def test_a_missing_taesd_file_is_refused_at_load(
    sidecar: RawSidecar, synthetic_model: str, tmp_path: Path
) -> None:
    refused = await sidecar.call(
        "loadModel", {"modelPath": synthetic_model, "modelConfig": {"taesdPath": str(tmp_path / "none.safetensors")}}
    )
    assert refused["error"]["data"]["field"] == "modelConfig.taesdPath"


async def test_python_client_preview_stream(synthetic_model: str, synthetic_taesd: str) -> None:
    async with await Sidecar.start() as client:
        model_id = await client.load_model(synthetic_model, {"taesdPath": synthetic_taesd})
        call = client.diffusion(modelId=model_id, **SMALL, steps=2, seed=3, preview_method="tae")
        previews = [preview async for preview in call.preview_stream]
        assert [p.step for p in previews][-1] == 2
        assert all(Image.open(io.BytesIO(p.png)).size == (p.width, p.height) == (64, 64) for p in previews)
        assert len(await call.outputs) == 1
        quiet = client.diffusion(modelId=model_id, **SMALL, steps=1, seed=3)
        assert [p async for p in quiet.preview_stream] == []


async def test_a_preview_stream_never_read_holds_only_the_most_recent() -> None:
    from diffusion_sidecar_client.client import PREVIEW_BUFFER, Preview, _Recent

    previews: _Recent[Preview] = _Recent()
    for step in range(1, 101):
        previews.push(Preview(0, step, 100, 8, 8, b""))
    previews.end()
    assert [p.step async for p in previews.stream()] == list(range(101 - PREVIEW_BUFFER, 101))


@pytest.mark.parametrize(("interval", "noisy"), [(3, False), (2, True), (1, False)])
def test_the_library_decodes_only_at_the_steps_that_are_previewed(
    monkeypatch: pytest.MonkeyPatch, interval: int, noisy: bool
) -> None:
    """The library decodes a tae/vae preview at every step whatever its interval says; the worker
    switches its decode on for the steps that are sent, and off for the others."""
    flags = []  # (denoised, noisy) as set before step 1, then after each step for the next
    monkeypatch.setattr(previews.sd, "sd_set_preview_callback", lambda *args: flags.append(args[3:5]))
    job = messages.Generate(
        **{**SMALL, "steps": 6, "negative_prompt": "", "cfg_scale": 7.0, "guidance": 3.5, "seeds": [1]},
        sampling_method=None, scheduler=None, vae_tiling=False, cache_preset=None, model_name="m",
        preview_method="tae", preview_interval=interval, preview_noisy=noisy,
    )  # fmt: skip
    native = previews.NativePreviews(lambda _preview: None)
    native.start(job, 0, lambda: 6)
    for step in range(1, 7):
        native.after_step(step)
    if interval == 1:
        assert flags == [(not noisy, noisy)]  # on once, for every step
    else:
        assert flags[:6] == [(step % interval == 0 and not noisy, step % interval == 0 and noisy) for step in range(1, 7)]
