"""`listModels` through every state: loading, ready (idle, running, queued), reloading, gone."""

from __future__ import annotations

import pytest

from diffusion_sidecar_client import Sidecar
from tests.harness import RawSidecar

pytestmark = pytest.mark.anyio

SMALL = {"prompt": "a kite", "width": 64, "height": 64, "steps": 1}


@pytest.fixture
async def raw(python_command: list[str]):
    sidecar = await RawSidecar.start(command=python_command)
    yield sidecar
    await sidecar.stop()


async def _listed(raw: RawSidecar) -> list[dict]:
    return (await raw.call("listModels"))["result"]["models"]


async def test_list_models_through_every_state(raw: RawSidecar, synthetic_model: str) -> None:
    assert await _listed(raw) == []
    load = await raw.send("loadModel", {"modelPath": synthetic_model})
    await raw.wait_for(lambda m: m.get("method") == "loadModel/progress" and m["params"]["requestId"] == load)
    (loading,) = await _listed(raw)
    assert loading["state"] == "loading" and loading["files"] == {"modelPath": synthetic_model}
    assert loading["modelFamily"] is None and loading["totals"] is None
    model_id = (await raw.response(load))["result"]["modelId"]
    assert loading["modelId"] == model_id

    (ready,) = await _listed(raw)
    assert ready["state"] == "ready" and ready["modelFamily"] == "SD 1.x Tiny UNet" and ready["sizeMultiple"] == 64
    assert (ready["running"], ready["queued"], ready["totals"]["totalGenerations"]) == (0, 0, 0)

    running = await raw.send("diffusion", {"modelId": model_id, **SMALL, "steps": 20})
    await raw.wait_for(lambda m: m.get("method") == "diffusion/progress" and m["params"]["requestId"] == running)
    queued = await raw.send("diffusion", {"modelId": model_id, **SMALL})
    (busy,) = await _listed(raw)
    assert (busy["running"], busy["queued"]) == (1, 1)

    await raw.call("cancel", {"requestId": running})
    (reloading,) = await _listed(raw)
    assert reloading["state"] == "reloading" and (reloading["running"], reloading["queued"]) == (0, 1)
    assert "result" in await raw.response(queued)
    (after,) = await _listed(raw)
    assert after["state"] == "ready" and (after["running"], after["queued"]) == (0, 0)
    assert after["totals"]["totalGenerations"] == 1 and after["totals"]["totalImages"] == 1
    assert after["totals"]["modelLoadMs"] == ready["totals"]["modelLoadMs"]

    await raw.call("unloadModel", {"modelId": model_id})
    assert await _listed(raw) == []


async def test_python_client_lists_models(python_command: list[str], synthetic_model: str) -> None:
    async with await Sidecar.start(python_command) as sidecar:
        model_id = await sidecar.load_model(synthetic_model)
        (listed,) = (await sidecar.list_models()).models
    assert listed.modelId == model_id and listed.state == "ready" and listed.totals is not None
