"""Protocol units: envelopes, error mapping, ordering, PNG parameters. No process, no model."""

from __future__ import annotations

import anyio
import msgspec
import pytest
from diffusion_sidecar_protocol.types import DiffusionParams, LoadModelParams

from sidecar.rpc.errors import ERROR_CODES, SidecarError, from_validation_error
from sidecar.rpc.jsonrpc import BadMessage, Notification, SuccessResponse, decode_message, encode, error_response
from sidecar.runtime.models import FifoGate
from sidecar.worker import messages
from sidecar.worker.png import encode_png, parameters_text


def test_request_and_notification_are_told_apart() -> None:
    request = decode_message(b'{"jsonrpc":"2.0","id":"a-1","method":"initialize"}')
    assert request.id == "a-1" and not request.is_notification
    notification = decode_message(b'{"jsonrpc":"2.0","method":"note","params":{"x":1}}')
    assert notification.is_notification
    assert msgspec.json.decode(notification.params) == {"x": 1}


def test_null_id_is_a_request_not_a_notification() -> None:
    assert not decode_message(b'{"jsonrpc":"2.0","id":null,"method":"initialize"}').is_notification


@pytest.mark.parametrize("line", [b"{", b"not json", b'{"jsonrpc":"2.0",', b"\xff\xfe"])
def test_malformed_json_is_a_parse_error_without_id(line: bytes) -> None:
    with pytest.raises(BadMessage) as caught:
        decode_message(line)
    assert caught.value.error.number == -32700
    assert caught.value.request_id is None


@pytest.mark.parametrize(
    ("line", "request_id"),
    [
        (b'{"jsonrpc":"1.0","id":7,"method":"initialize"}', 7),
        (b'{"jsonrpc":"2.0","id":"x","method":5}', "x"),
        (b'{"jsonrpc":"2.0","id":3}', 3),
        (b"[]", None),
        (b"42", None),
    ],
)
def test_invalid_request_keeps_the_id_it_could_read(line: bytes, request_id: object) -> None:
    with pytest.raises(BadMessage) as caught:
        decode_message(line)
    assert caught.value.error.number == -32600
    assert caught.value.request_id == request_id


def test_error_response_shape() -> None:
    error = SidecarError("MODEL_NOT_LOADED", "no such model", modelId="m")
    line = encode(error_response(5, error))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert msgspec.json.decode(line) == {
        "jsonrpc": "2.0",
        "id": 5,
        "error": {"code": -32001, "message": "no such model", "data": {"code": "MODEL_NOT_LOADED", "modelId": "m"}},
    }


def test_success_null_result_is_kept_and_messages_are_single_lines() -> None:
    assert msgspec.json.decode(encode(SuccessResponse(id=1, result=None))) == {"jsonrpc": "2.0", "id": 1, "result": None}
    line = encode(Notification(method="m", params={"text": "two\nlines"}))
    assert line.count(b"\n") == 1


def test_error_codes_are_in_the_allowed_ranges() -> None:
    spec = {-32700, -32600, -32601, -32602, -32603}
    request_cancelled = -32800  # LSP's code, shared by CANCELLED and TIMEOUT
    for name, number in ERROR_CODES.items():
        assert number in spec or -32099 <= number <= -32000 or number == request_cancelled, name
    others = [number for number in ERROR_CODES.values() if number != request_cancelled]
    assert len(set(others)) == len(others)
    assert [name for name, number in ERROR_CODES.items() if number == request_cancelled] == ["CANCELLED", "TIMEOUT"]


@pytest.mark.parametrize(
    ("raw", "field", "rule_part"),
    [
        (b'{"modelId":"m","prompt":"p","width":100}', "width", "multiple of 8"),
        (b'{"modelId":"m","prompt":"p","steps":0}', "steps", ">= 1"),
        (b'{"modelId":"m","prompt":"p","timeoutMs":0}', "timeoutMs", ">= 1"),
        (b'{"modelId":"m"}', "prompt", "missing required field"),
        (b'{"modelId":"m","prompt":"p","stepz":3}', "stepz", "unknown field"),
        (b'{"modelId":"m","prompt":5}', "prompt", "Expected `str`"),
        (b'{"modelId":"m","prompt":"p","sampling_method":"nope"}', "sampling_method", "Invalid enum value"),
    ],
)
def test_validation_errors_name_field_and_rule(raw: bytes, field: str, rule_part: str) -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.decode(raw, type=DiffusionParams)
    error = from_validation_error(caught.value)
    assert error.number == -32602
    assert error.data["field"] == field
    assert rule_part in error.data["rule"]


@pytest.mark.parametrize("name", ["\n", "a`b", "x - at `$.y`"])
def test_unknown_field_names_are_reported_whatever_they_hold(name: str) -> None:
    raw = msgspec.json.encode({"modelPath": "x", "modelConfig": {name: 1}})
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.decode(raw, type=LoadModelParams)
    assert from_validation_error(caught.value).data["field"] == f"modelConfig.{name}"


def test_nested_field_paths_are_dotted() -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.decode(b'{"modelPath":"x","modelConfig":{"threads":0}}', type=LoadModelParams)
    assert from_validation_error(caught.value).data["field"] == "modelConfig.threads"
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.decode(b'{"modelPath":"x","modelConfig":{"bogus":1}}', type=LoadModelParams)
    assert from_validation_error(caught.value).data["field"] == "modelConfig.bogus"


@pytest.mark.anyio
async def test_fifo_gate_lets_requests_through_one_at_a_time_in_order() -> None:
    gate = FifoGate()
    order: list[int] = []
    inside = 0
    most_inside = 0

    async def request(number: int) -> None:
        nonlocal inside, most_inside
        async with gate.ticket():
            inside += 1
            most_inside = max(most_inside, inside)
            await anyio.lowlevel.checkpoint()
            order.append(number)
            inside -= 1

    async with anyio.create_task_group() as group:
        for number in range(6):
            group.start_soon(request, number)
    assert order == list(range(6))
    assert most_inside == 1
    assert len(gate) == 0


@pytest.mark.anyio
async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    gate = FifoGate()
    done: list[str] = []
    release = anyio.Event()
    second_scope = anyio.CancelScope()

    async def first() -> None:
        async with gate.ticket():
            await release.wait()
            done.append("first")

    async def second() -> None:
        with second_scope:
            async with gate.ticket():
                done.append("second")

    async def third() -> None:
        async with gate.ticket():
            done.append("third")

    async with anyio.create_task_group() as group:
        for task in (first, second, third):
            group.start_soon(task)
            await anyio.wait_all_tasks_blocked()
        assert len(gate) == 3
        second_scope.cancel()
        await anyio.wait_all_tasks_blocked()
        assert len(gate) == 2
        release.set()
    assert done == ["first", "third"]


def test_parameters_text_is_a1111_layout() -> None:
    text = parameters_text(
        prompt="a cat",
        negative_prompt="blurry",
        steps=4,
        sampler="euler_a",
        scheduler="discrete",
        cfg_scale=7.0,
        seed=42,
        width=64,
        height=32,
        model="tiny",
    )
    assert text.splitlines() == [
        "a cat",
        "Negative prompt: blurry",
        "Steps: 4, Sampler: euler_a, Schedule type: discrete, CFG scale: 7, Seed: 42, Size: 64x32, Model: tiny",
    ]
    without_negative = parameters_text(
        prompt="p", negative_prompt="", steps=1, sampler="s", scheduler="k", cfg_scale=1.5, seed=0, width=8, height=8, model="m"
    )
    assert "Negative prompt" not in without_negative and "CFG scale: 1.5" in without_negative


PIXELS_32X32 = bytes(range(256)) * 3 * 4  # RGB


@pytest.mark.parametrize("level", [None, 0, 9])
def test_png_carries_pixels_and_parameters(level: int | None) -> None:
    from io import BytesIO

    from PIL import Image

    options = {} if level is None else {"compress_level": level}
    png = encode_png(PIXELS_32X32, 32, 32, 3, "hello\nSteps: 1", **options)
    image = Image.open(BytesIO(png))
    assert image.size == (32, 32) and image.mode == "RGB"
    assert image.text["parameters"] == "hello\nSteps: 1"
    assert image.tobytes() == PIXELS_32X32


def test_png_compress_level_is_applied() -> None:
    stored, packed = (encode_png(PIXELS_32X32, 32, 32, 3, "", compress_level=level) for level in (0, 9))
    assert len(packed) < len(stored) // 4


def test_pipe_frames_round_trip_with_raw_bytes() -> None:
    message = messages.Image(index=1, seed=7, width=8, height=8, png=b"\x89PNG\x00\xff")
    data = messages.frame(message)
    (size,) = messages.HEADER.unpack(data[: messages.HEADER.size])
    assert size == len(data) - messages.HEADER.size
    assert messages.from_worker_decoder.decode(data[messages.HEADER.size :]) == message
