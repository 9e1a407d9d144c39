"""JSON-RPC 2.0, completely: batches, ids echoed exactly, null ids, notifications, signals, exit."""

from __future__ import annotations

import signal

import msgspec
import pytest

from tests.harness import RawSidecar, kill, wait_gone, worker_pids

pytestmark = pytest.mark.anyio


@pytest.fixture
async def raw(sidecar_command: list[str]):
    sidecar = await RawSidecar.start(command=sidecar_command)
    yield sidecar
    await sidecar.stop()


async def _line_after(raw: RawSidecar, data: bytes):
    """Send `data`, then a marker request; return what came back before the marker's answer."""
    before = len(raw.lines)
    await raw.send_line(data)
    await raw.call("cancel", {"requestId": "marker"})
    return raw.lines[before:-1]


async def test_batch_gets_one_array_in_order_without_notification_entries(raw: RawSidecar) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": "a", "method": "cancel", "params": {"requestId": 1}},
        {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 5}},
        {"jsonrpc": "2.0", "id": 2, "method": "nope"},
        {"jsonrpc": "2.0", "id": 3, "method": "unloadModel", "params": {"modelId": "m"}},
        {"id": 4},
        7,
    ]
    (reply,) = await _line_after(raw, msgspec.json.encode(batch))
    assert isinstance(reply, list)
    assert [entry["id"] for entry in reply] == ["a", 2, 3, 4, None]
    assert reply[0]["result"] == {"cancelled": 0}
    assert [entry["error"]["code"] for entry in reply[1:]] == [-32601, -32001, -32600, -32600]


async def test_empty_batch_is_one_invalid_request(raw: RawSidecar) -> None:
    (reply,) = await _line_after(raw, b"[]")
    assert reply["error"]["code"] == -32600 and reply["id"] is None


async def test_batch_of_notifications_gets_no_reply(raw: RawSidecar) -> None:
    notifications = [{"jsonrpc": "2.0", "method": "someNotification"}, {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 1}}]
    assert await _line_after(raw, msgspec.json.encode(notifications)) == []


@pytest.mark.parametrize("request_id", ["abc", "", "ünïcødé 🎨", 0, -5, 2**53, 2**63 - 1, None])
async def test_ids_are_echoed_exactly(raw: RawSidecar, request_id: object) -> None:
    line = msgspec.json.encode({"jsonrpc": "2.0", "id": request_id, "method": "cancel", "params": {"modelId": "m"}})
    (reply,) = await _line_after(raw, line)
    assert reply["id"] == request_id and type(reply["id"]) is type(request_id)
    assert reply["result"] == {"cancelled": 0}


async def test_unknown_notifications_are_ignored_and_unknown_requests_refused(raw: RawSidecar) -> None:
    assert await _line_after(raw, b'{"jsonrpc":"2.0","method":"whatever","params":[1,2]}') == []
    (reply,) = await _line_after(raw, b'{"jsonrpc":"2.0","id":9,"method":"whatever"}')
    assert reply["error"]["code"] == -32601


async def _worker_and_generation(raw: RawSidecar, model: str) -> tuple[int, int]:
    model_id = (await raw.call("loadModel", {"modelPath": model}))["result"]["modelId"]
    (worker,) = worker_pids(raw.process.pid)
    request_id = await raw.send("diffusion", {"modelId": model_id, "prompt": "x", "width": 64, "height": 64, "steps": 30})
    await raw.wait_for(lambda m: m.get("method") == "diffusion/progress")
    return worker, request_id


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_sigterm_and_sigint_shut_down_cleanly(raw: RawSidecar, synthetic_model: str, sig: signal.Signals) -> None:
    worker, request_id = await _worker_and_generation(raw, synthetic_model)
    kill(raw.process.pid, sig)
    assert await raw.exit_status(timeout=2) == 0
    assert [r["error"]["data"]["code"] for r in raw.responses_to(request_id)] == ["SHUTTING_DOWN"]
    assert wait_gone(worker, timeout=2)


async def test_exit_without_shutdown_exits_at_once_with_status_1(raw: RawSidecar, synthetic_model: str) -> None:
    worker, _ = await _worker_and_generation(raw, synthetic_model)
    await raw.send_line(b'{"jsonrpc":"2.0","method":"exit"}')
    assert await raw.exit_status(timeout=2) == 1
    assert wait_gone(worker, timeout=2)


async def test_requests_after_shutdown_began_are_refused(raw: RawSidecar, synthetic_model: str) -> None:
    _, running = await _worker_and_generation(raw, synthetic_model)
    batch = msgspec.json.encode(
        [
            {"jsonrpc": "2.0", "id": "stop", "method": "shutdown"},
            {"jsonrpc": "2.0", "id": "late", "method": "initialize"},
        ]
    )
    await raw.send_line(batch)
    assert await raw.exit_status(timeout=5) == 0
    (reply,) = [line for line in raw.lines if isinstance(line, list)]
    assert reply[0] == {"jsonrpc": "2.0", "id": "stop", "result": None}
    assert reply[1]["error"]["data"]["code"] == "SHUTTING_DOWN"
    assert [r["error"]["data"]["code"] for r in raw.responses_to(running)] == ["SHUTTING_DOWN"]


@pytest.mark.parametrize(
    ("line", "code", "request_id"),
    [
        # Found by the fuzzer: msgspec raises RecursionError and UnicodeDecodeError, not DecodeError.
        (b"[" * 5000 + b"]" * 5000, -32700, None),
        (b'{"jsonrpc":"2.0","id":3,"method":"diffusion","params":{"x":' + b"[" * 5000 + b"]" * 5000 + b"}}", -32700, None),
        # Bytes that are not UTF-8 read as U+FFFD: the request is judged as any other.
        (b'{"jsonrpc":"2.0","id":4,"method":"diffusion","params":{"prompt":"\x80"}}', -32602, 4),
        (b'"\x80"', -32600, None),
        (b"0\x00", -32700, None),
    ],
)
async def test_undecodable_input_is_a_parse_error(raw: RawSidecar, line: bytes, code: int, request_id: object) -> None:
    (reply,) = await _line_after(raw, line)
    assert reply["error"]["code"] == code and reply["id"] == request_id
