"""The invariant: every request that has an id gets exactly one response, whatever happens.

One stream mixes everything at once: queued and running generations, cancels racing their
targets, a worker crash, malformed neighbours, batches, and a shutdown in the middle of it all.
"""

from __future__ import annotations

import msgspec
import pytest

from tests.harness import RawSidecar, kill, worker_pids

pytestmark = pytest.mark.anyio

SMALL = {"prompt": "chaos", "width": 64, "height": 64, "steps": 2}


async def test_every_id_is_answered_exactly_once(sidecar_command: list[str], synthetic_model: str) -> None:
    raw = await RawSidecar.start(command=sidecar_command)
    sent: list[object] = []

    async def send(method: str, params: dict | None = None) -> object:
        request_id = await raw.send(method, params)
        sent.append(request_id)
        return request_id

    try:
        first = (await raw.call("loadModel", {"modelPath": synthetic_model}))["result"]["modelId"]
        first_worker = worker_pids(raw.process.pid)
        second = (await raw.call("loadModel", {"modelPath": synthetic_model, "modelConfig": {"threads": 1}}))["result"][
            "modelId"
        ]
        (doomed_worker,) = worker_pids(raw.process.pid) - first_worker  # the second model's worker

        generations = [await send("diffusion", {"modelId": model, **SMALL}) for model in (first, second) * 3]
        await raw.send_line(b"{not json")
        await send("cancel", {"requestId": generations[2]})  # queued behind the first
        await send("cancel", {"requestId": generations[0]})  # running, or about to
        await raw.send_line(msgspec.json.encode([{"jsonrpc": "2.0", "id": "b1", "method": "initialize"}, 5]))
        sent.append("b1")
        await send("cancel", {"requestId": generations[0]})  # a second cancel of the same request
        await raw.wait_for(lambda m: m.get("method") == "diffusion/progress" and m["params"]["requestId"] == generations[1])
        kill(doomed_worker)
        await send("diffusion", {"modelId": first, **SMALL, "timeoutMs": 1})
        assert (await raw.response(generations[1]))["error"]["data"]["code"] == "WORKER_CRASHED"
        await send("unloadModel", {"modelId": "never-loaded"})
        await raw.send_line(b'{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":%d}}' % generations[4])
        await send("shutdown")
        assert await raw.exit_status(timeout=30) == 0
    finally:
        await raw.stop()

    answered = [m["id"] for m in raw.messages if "method" not in m and m["id"] is not None]
    for request_id in sent:
        assert answered.count(request_id) == 1, f"request {request_id!r} answered {answered.count(request_id)} times"
    codes = {m["id"]: m.get("error", {}).get("data", {}).get("code") for m in raw.messages if "method" not in m}
    assert codes[generations[2]] == "CANCELLED"
