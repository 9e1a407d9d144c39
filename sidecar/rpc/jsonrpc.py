"""JSON-RPC 2.0 envelopes: decoding one incoming line, encoding outgoing messages.

One message per line, UTF-8, no embedded newlines (msgspec never writes a raw newline inside a
JSON document, so every encoded message is exactly one line).
"""

from __future__ import annotations

import re
from typing import Any, Literal, TypeVar

import msgspec
from diffusion_sidecar_protocol.types import RequestId
from msgspec import UNSET, Raw, Struct, UnsetType

from .errors import SidecarError


class Message(Struct, kw_only=True):
    """An incoming request (with `id`) or notification (without)."""

    jsonrpc: Literal["2.0"]
    method: str
    params: Raw = Raw(b"{}")
    id: RequestId | None | UnsetType = UNSET

    @property
    def is_notification(self) -> bool:
        return self.id is UNSET


class ErrorObject(Struct, kw_only=True):
    code: int
    message: str
    data: dict[str, Any] | UnsetType = UNSET


class SuccessResponse(Struct, kw_only=True):
    jsonrpc: Literal["2.0"] = "2.0"
    id: RequestId | None
    result: Any


class ErrorResponse(Struct, kw_only=True):
    jsonrpc: Literal["2.0"] = "2.0"
    id: RequestId | None
    error: ErrorObject


class Notification(Struct, kw_only=True):
    jsonrpc: Literal["2.0"] = "2.0"
    method: str
    params: Any


_message_decoder = msgspec.json.Decoder(Message)
_encoder = msgspec.json.Encoder()


class BadMessage(Exception):
    """A line that is not a valid message; answered with `error`, to `request_id` if one was read."""

    def __init__(self, error: SidecarError, request_id: RequestId | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.request_id = request_id


_batch_decoder = msgspec.json.Decoder(list[Raw])
_any_decoder = msgspec.json.Decoder()

# Besides DecodeError, msgspec raises RecursionError for JSON nested deeper than it decodes and
# UnicodeDecodeError for strings that are not UTF-8: none of them is valid JSON text.
UNDECODABLE = (msgspec.DecodeError, RecursionError, UnicodeDecodeError)


T = TypeVar("T")

# A JSON string escape: a surrogate pair, a lone surrogate, or any other escape (consumed whole, so
# that `\\ud83d`, an escaped backslash before the letters "ud83d", is left alone).
_ESCAPE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[dD][89a-fA-F][0-9a-fA-F]{2}|\\.", re.DOTALL
)
_LONE_SURROGATE_ESCAPE_LENGTH = len(rb"\ud83d")


def decode_json(decoder: msgspec.json.Decoder[T], data: bytes | Raw) -> T:
    """Decode, reading text that is not well-formed Unicode the way UTF-8 encoders write it.

    JavaScript hosts produce lone UTF-16 surrogates (a string cut through an emoji) and
    `JSON.stringify` sends them as escapes like `\\ud83d`; msgspec refuses the whole document for
    one, id and all. Such a surrogate, and any byte that is not UTF-8, reads as U+FFFD. The repair
    runs only when decoding failed, so well-formed input costs nothing extra.
    """
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError):
        repaired = _well_formed(bytes(data))
        if repaired == bytes(data):
            raise
    return decoder.decode(repaired)


def _well_formed(data: bytes) -> bytes:
    return _ESCAPE.sub(_replace_lone_surrogate, data.decode("utf-8", "replace").encode())


def _replace_lone_surrogate(escape: re.Match[bytes]) -> bytes:
    return rb"\ufffd" if len(escape[0]) == _LONE_SURROGATE_ESCAPE_LENGTH else escape[0]


def decode_line(line: bytes) -> Message | list[Message | BadMessage]:
    """One line: a message, or a batch (a JSON array) whose bad members are kept in place."""
    if line.startswith(b"["):
        try:
            members = decode_json(_batch_decoder, line)
        except UNDECODABLE as error:
            raise _parse_error(error) from None
        if not members:
            raise BadMessage(SidecarError("INVALID_REQUEST", "Invalid request: an empty batch"))
        return [_member(bytes(member)) for member in members]
    return decode_message(line)


def _member(raw: bytes) -> Message | BadMessage:
    try:
        return decode_message(raw)
    except BadMessage as bad:
        return bad


def decode_message(line: bytes) -> Message:
    try:
        return decode_json(_message_decoder, line)
    except msgspec.ValidationError as error:
        invalid = SidecarError("INVALID_REQUEST", f"Invalid request: {error}")
        raise BadMessage(invalid, _salvage_id(line)) from None
    except UNDECODABLE as error:
        raise _parse_error(error) from None


def parse_error(error: Exception) -> SidecarError:
    reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
    return SidecarError("PARSE_ERROR", f"Parse error: {reason}")


def _parse_error(error: Exception) -> BadMessage:
    return BadMessage(parse_error(error))


def _salvage_id(line: bytes) -> RequestId | None:
    """The id of a valid-JSON line that is not a valid request, if it has a usable one.

    The typed decoder stops at the first wrong shape, before it sees the whole line: a line that
    is not JSON at all must still be a parse error, which outranks an invalid request.
    """
    try:
        value = decode_json(_any_decoder, line)
    except UNDECODABLE as error:
        raise _parse_error(error) from None
    if isinstance(value, dict) and isinstance(request_id := value.get("id"), (int, str)) and not isinstance(request_id, bool):
        return request_id
    return None


def error_response(request_id: RequestId | None, error: SidecarError) -> ErrorResponse:
    return ErrorResponse(id=request_id, error=ErrorObject(code=error.number, message=error.message, data=error.data))


def encode(message: SuccessResponse | ErrorResponse | Notification) -> bytes:
    return _encoder.encode(message) + b"\n"


def encode_batch(messages: list[SuccessResponse | ErrorResponse]) -> bytes:
    return _encoder.encode(messages) + b"\n"
