"""Cancelling `loadModel`: by request id, by `$/cancelRequest`, by shutdown. The loading worker is
ended, the answer is -32800, and nothing is left behind."""

from __future__ import annotations

import pytest

from tests.harness import RawSidecar, wait_gone, worker_pids

pytestmark = pytest.mark.anyio


@pytest.fixture
async def raw(python_command: list[str]):
    sidecar = await RawSidecar.start(command=python_command)
    yield sidecar
    await sidecar.stop()


async def _loading(raw: RawSidecar, synthetic_model: str) -> tuple[int, int]:
    """Start a load; return its id and its worker once the worker reports progress."""
    request_id = await raw.send("loadModel", {"modelPath": synthetic_model})
    await raw.wait_for(lambda m: m.get("method") == "loadModel/progress" and m["params"]["requestId"] == request_id)
    (worker,) = worker_pids(raw.process.pid)
    return request_id, worker


def _assert_cancelled(response: dict) -> None:
    assert response["error"]["code"] == -32800 and response["error"]["data"]["code"] == "CANCELLED", response


@pytest.mark.parametrize("how", ["cancel", "$/cancelRequest"])
async def test_cancelled_load_ends_its_worker(raw: RawSidecar, synthetic_model: str, how: str) -> None:
    request_id, worker = await _loading(raw, synthetic_model)
    if how == "cancel":
        assert (await raw.call("cancel", {"requestId": request_id}))["result"] == {"cancelled": 1}
    else:
        await raw.send_line(b'{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":%d}}' % request_id)
    _assert_cancelled(await raw.response(request_id))
    assert wait_gone(worker, timeout=10)
    # The same load, asked again, works from scratch.
    assert (await raw.call("loadModel", {"modelPath": synthetic_model}))["result"]["alreadyLoaded"] is False


async def test_a_second_identical_load_survives_the_first_ones_cancel(raw: RawSidecar, synthetic_model: str) -> None:
    first, worker = await _loading(raw, synthetic_model)
    second = await raw.send("loadModel", {"modelPath": synthetic_model})
    await raw.call("cancel", {"requestId": first})
    _assert_cancelled(await raw.response(first))
    assert "modelId" in (await raw.response(second))["result"]
    assert worker not in worker_pids(raw.process.pid)


async def test_shutdown_cancels_a_load_and_leaves_nothing(raw: RawSidecar, synthetic_model: str) -> None:
    request_id, worker = await _loading(raw, synthetic_model)
    shutdown = await raw.send("shutdown")
    _assert_cancelled(await raw.response(request_id))
    assert (await raw.response(shutdown))["result"] is None
    assert await raw.exit_status() == 0
    assert wait_gone(worker, timeout=10)
