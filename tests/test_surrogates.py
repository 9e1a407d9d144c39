"""Text that is not well-formed Unicode: lone UTF-16 surrogates and bytes that are not UTF-8.

JavaScript hosts cut strings through emoji; `JSON.stringify` then writes escapes like `\\ud83d`.
Such a request is answered under its id, and its text reads U+FFFD, as UTF-8 encoders write it.
"""

from __future__ import annotations

import base64
from io import BytesIO

import msgspec
import pytest
from diffusion_sidecar_client import Sidecar
from diffusion_sidecar_client.client import _encode
from PIL import Image

from sidecar.rpc.jsonrpc import BadMessage, decode_json, decode_line
from tests.harness import RawSidecar

pytestmark = pytest.mark.anyio

ANY = msgspec.json.Decoder()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (rb'"a\ud83db"', "a\ufffdb"),  # a lone high surrogate
        (rb'"\ude00"', "\ufffd"),  # a lone low surrogate
        (rb'"\ude00\ud83d"', "\ufffd\ufffd"),  # a pair in the wrong order is two lone ones
        (rb'"\ud83d\ude00\ud83d"', "\U0001f600\ufffd"),  # a pair stays a pair
        (rb'"\\ud83d"', "\\ud83d"),  # an escaped backslash before the letters: no surrogate at all
        (rb'"\\\ud83d"', "\\\ufffd"),
        (b'"caf\xe9"', "caf\ufffd"),  # a Latin-1 byte
        (b'"\xed\xa0\xbd"', "\ufffd\ufffd\ufffd"),  # a surrogate encoded as if it were UTF-8 (CESU-8)
    ],
)
def test_text_that_is_not_unicode_reads_as_replacement_characters(text: bytes, expected: str) -> None:
    assert decode_json(ANY, text) == expected


def test_json_that_is_malformed_for_another_reason_is_still_a_parse_error() -> None:
    with pytest.raises(BadMessage) as caught:
        decode_line(rb'{"jsonrpc":"2.0","id":1,"method":"x","params":{"p":"\ud83d"')
    assert caught.value.error.code == "PARSE_ERROR"


def test_python_client_sends_lone_surrogates_as_replacement_characters() -> None:
    sent = _encode({"params": {"prompt": "cut \ud83d", "list": ["\udc00"], "key \ud83d": 1, "fine": "\U0001f600"}})
    assert msgspec.json.decode(sent) == {
        "params": {"prompt": "cut \ufffd", "list": ["\ufffd"], "key \ufffd": 1, "fine": "\U0001f600"}
    }


async def test_python_client_generates_from_a_prompt_cut_through_an_emoji(
    python_command: list[str], synthetic_model: str
) -> None:
    async with await Sidecar.start(python_command) as sidecar:
        model_id = await sidecar.load_model(synthetic_model)
        call = sidecar.diffusion(modelId=model_id, prompt="a cat \ud83d", width=64, height=64, steps=1)
        (png,) = await call.outputs
    assert Image.open(BytesIO(png)).text["parameters"].splitlines()[0] == "a cat \ufffd"


def _parameters(png_base64: str) -> str:
    image = Image.open(BytesIO(base64.b64decode(png_base64)))
    return image.text["parameters"]


@pytest.fixture(scope="module")
async def raw(python_command: list[str], synthetic_model: str):
    sidecar = await RawSidecar.start(command=python_command)
    reply = await sidecar.call("loadModel", {"modelPath": synthetic_model})
    sidecar.model_id = reply["result"]["modelId"]
    yield sidecar
    await sidecar.stop()


def _request(request_id: object, method: str, params_json: bytes) -> bytes:
    return b'{"jsonrpc":"2.0","id":%s,"method":"%s","params":%s}' % (
        msgspec.json.encode(request_id),
        method.encode(),
        params_json,
    )


async def test_lone_surrogate_in_a_prompt_generates_with_a_replacement_character(raw: RawSidecar) -> None:
    params = b'{"modelId":"%s","prompt":"cut \\ud83d","negative_prompt":"\\udc00 low","width":64,"height":64,"steps":1,"seed":1}'
    await raw.send_line(_request(71, "diffusion", params % raw.model_id.encode()))
    reply = await raw.response(71)
    lines = _parameters(reply["result"]["outputs"][0]).splitlines()
    assert lines[:2] == ["cut \ufffd", "Negative prompt: \ufffd low"]


async def test_a_bad_request_with_a_lone_surrogate_is_answered_under_its_id(raw: RawSidecar) -> None:
    await raw.send_line(_request("req-\U0001f600", "diffusion", b'{"modelId":"\\ud83d","prompt":"x"}'))
    reply = await raw.response("req-\U0001f600")
    assert reply["error"]["data"]["code"] == "MODEL_NOT_LOADED"
    assert reply["error"]["data"]["modelId"] == "\ufffd"
    await raw.send_line(_request(72, "nope\\ud83d", b"{}"))
    assert (await raw.response(72))["error"]["data"] == {"code": "METHOD_NOT_FOUND", "method": "nope\ufffd"}
    await raw.send_line(b'{"jsonrpc":"2.0","id":73,"method":"cancel","params":{"requestId":"caf\xe9"}}')
    assert (await raw.response(73))["result"] == {"cancelled": 0}


async def test_batch_with_a_lone_surrogate_is_answered_member_by_member(raw: RawSidecar) -> None:
    await raw.send_line(b'[' + _request(74, "cancel", b'{"requestId":"\\ud83d"}') + b',{"id":75,"x":"\\udfff"}]')
    reply = await raw.wait_for(lambda message: message.get("id") == 75)
    assert reply["error"]["code"] == -32600
    assert (await raw.response(74))["result"] == {"cancelled": 0}
