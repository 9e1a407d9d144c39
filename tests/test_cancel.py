"""Cancel, every way: queued, running, mid-batch, by model, the LSP notification, a deadline."""

from __future__ import annotations

import base64

import pytest

from tests.harness import RawSidecar, wait_gone, worker_pids

pytestmark = pytest.mark.anyio

SMALL = {"prompt": "a harbour", "width": 64, "height": 64}
LONG = {**SMALL, "steps": 30}  # ~10 s: always still running when the test acts on it


@pytest.fixture(scope="module")
async def sidecar(sidecar_command: list[str], synthetic_model: str):
    raw = await RawSidecar.start(command=sidecar_command)
    loaded = await raw.call("loadModel", {"modelPath": synthetic_model})
    raw.model_id = loaded["result"]["modelId"]
    yield raw
    await raw.stop()
    ids = [m["id"] for m in raw.messages if "method" not in m and m["id"] is not None]
    assert len(ids) == len(set(ids)), "a request was answered twice"


async def _running(raw: RawSidecar, **params) -> int:
    """Send a generation and return its id once it is running (its first step ticked)."""
    request_id = await raw.send("diffusion", {"modelId": raw.model_id, **LONG, **params})
    await raw.wait_for(lambda m: m.get("method") == "diffusion/progress" and m["params"]["requestId"] == request_id)
    return request_id


def _cancelled(response: dict, code: str = "CANCELLED") -> dict:
    error = response["error"]
    assert error["code"] == -32800 and error["data"]["code"] == code, response
    return error["data"]


async def test_cancel_a_queued_request(sidecar: RawSidecar) -> None:
    running = await _running(sidecar)
    queued = await sidecar.send("diffusion", {"modelId": sidecar.model_id, **SMALL, "steps": 1})
    assert (await sidecar.call("cancel", {"requestId": queued}))["result"] == {"cancelled": 1}
    _cancelled(await sidecar.response(queued))
    assert sidecar.responses_to(running) == [], "cancelling the queued one touched the running one"
    assert (await sidecar.call("cancel", {"requestId": running}))["result"] == {"cancelled": 1}


async def test_cancel_a_running_request_and_the_model_comes_back(sidecar: RawSidecar) -> None:
    await sidecar.call("diffusion", {"modelId": sidecar.model_id, **SMALL, "steps": 1})  # settle earlier reloads
    (worker,) = worker_pids(sidecar.process.pid)
    running = await _running(sidecar)
    assert (await sidecar.call("cancel", {"requestId": running}))["result"] == {"cancelled": 1}
    data = _cancelled(await sidecar.response(running))
    assert data["outputs"] == [] and data["seeds"] == []
    assert wait_gone(worker, timeout=2)
    after = await sidecar.call("diffusion", {"modelId": sidecar.model_id, **SMALL, "steps": 1, "seed": 5})
    assert len(after["result"]["outputs"]) == 1
    (fresh,) = worker_pids(sidecar.process.pid)
    assert fresh != worker


async def test_cancel_mid_batch_keeps_the_finished_images(sidecar: RawSidecar) -> None:
    request_id = await sidecar.send(
        "diffusion", {"modelId": sidecar.model_id, **SMALL, "steps": 3, "batch_count": 3, "seed": 500}
    )
    await sidecar.wait_for(
        lambda m: m.get("method") == "diffusion/progress"
        and m["params"]["requestId"] == request_id
        and m["params"]["image"] == 1
    )
    await sidecar.call("cancel", {"requestId": request_id})
    data = _cancelled(await sidecar.response(request_id))
    assert data["seeds"] == [500] and len(data["outputs"]) == 1
    alone = await sidecar.call("diffusion", {"modelId": sidecar.model_id, **SMALL, "steps": 3, "seed": 500})
    assert base64.b64decode(data["outputs"][0]) == base64.b64decode(alone["result"]["outputs"][0])


async def test_cancel_every_request_on_a_model(sidecar: RawSidecar) -> None:
    running = await _running(sidecar)
    queued = [await sidecar.send("diffusion", {"modelId": sidecar.model_id, **SMALL, "steps": 1}) for _ in range(2)]
    assert (await sidecar.call("cancel", {"modelId": sidecar.model_id}))["result"] == {"cancelled": 3}
    for request_id in (running, *queued):
        _cancelled(await sidecar.response(request_id))


async def test_lsp_cancel_notification(sidecar: RawSidecar) -> None:
    running = await _running(sidecar)
    await sidecar.send_line(b'{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":%d}}' % running)
    _cancelled(await sidecar.response(running))


async def test_cancel_of_nothing_and_bad_cancel_params(sidecar: RawSidecar) -> None:
    assert (await sidecar.call("cancel", {"requestId": 123456789}))["result"] == {"cancelled": 0}
    assert (await sidecar.call("cancel", {"modelId": "no-such-model"}))["result"] == {"cancelled": 0}
    for params in ({}, {"requestId": 1, "modelId": "m"}):
        error = (await sidecar.call("cancel", params))["error"]
        assert error["code"] == -32602 and "exactly one" in error["data"]["rule"]


async def test_a_deadline_cancels_with_timeout(sidecar: RawSidecar) -> None:
    response = await sidecar.call("diffusion", {"modelId": sidecar.model_id, **LONG, "timeoutMs": 1500})
    _cancelled(response, "TIMEOUT")
    assert len((await sidecar.call("diffusion", {"modelId": sidecar.model_id, **SMALL, "steps": 1}))["result"]["outputs"]) == 1


async def test_a_queued_request_can_time_out_waiting(sidecar: RawSidecar) -> None:
    running = await _running(sidecar)
    waiting = await sidecar.call("diffusion", {"modelId": sidecar.model_id, **SMALL, "steps": 1, "timeoutMs": 200})
    _cancelled(waiting, "TIMEOUT")
    assert sidecar.responses_to(running) == []
    await sidecar.call("cancel", {"requestId": running})
