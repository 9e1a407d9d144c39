"""Errors a request can end with: a JSON-RPC code plus a stable string in `error.data.code`."""

from __future__ import annotations

import re
from typing import Any

import msgspec

# data.code -> JSON-RPC error code. The spec's own codes first, then the server range.
ERROR_CODES: dict[str, int] = {
    "PARSE_ERROR": -32700,
    "INVALID_REQUEST": -32600,
    "METHOD_NOT_FOUND": -32601,
    "INVALID_PARAMS": -32602,
    "INTERNAL_ERROR": -32603,
    "MODEL_NOT_LOADED": -32001,
    "MODEL_LOAD_FAILED": -32002,
    "WORKER_CRASHED": -32003,
    "GENERATION_FAILED": -32004,
    "SHUTTING_DOWN": -32005,
    "QUEUE_FULL": -32006,
    "LIMIT_EXCEEDED": -32007,
    "PATH_NOT_ALLOWED": -32008,
    # Sources (docs/models-from-urls.md): one code per thing a host would do differently.
    "DOWNLOAD_FAILED": -32009,
    "AUTH_REQUIRED": -32010,
    "CHECKSUM_MISMATCH": -32011,
    "INSUFFICIENT_DISK": -32012,
    "OFFLINE_NOT_CACHED": -32013,
    "DOWNLOAD_STALLED": -32014,
    "TOO_MANY_REDIRECTS": -32015,
    # convert (docs/models.md#converting)
    "CONVERT_FAILED": -32016,
    # LSP's RequestCancelled; a deadline that passed is a cancel too, told apart by data.code.
    "CANCELLED": -32800,
    "TIMEOUT": -32800,
}


class SidecarError(Exception):
    """Raised anywhere in a request's path; the dispatcher turns it into the error response."""

    def __init__(self, code: str, message: str, **data: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = {"code": code, **data}

    @property
    def number(self) -> int:
        return ERROR_CODES[self.code]


def invalid_params(field: str, rule: str, message: str | None = None) -> SidecarError:
    return SidecarError("INVALID_PARAMS", message or f"`{field}`: {rule}", field=field, rule=rule)


def limit_exceeded(field: str, limit: str, maximum: int, value: int) -> SidecarError:
    return SidecarError(
        "LIMIT_EXCEEDED",
        f"`{field}` is {value}, over this sidecar's {limit} limit of {maximum}",
        field=field,
        limit=limit,
        max=maximum,
        value=value,
    )


# msgspec reports "<rule> - at `$.a.b[0]`", or names the field in the rule for missing/unknown ones.
# Field names are the client's: they may hold newlines or backticks (found by the fuzzer).
_AT_PATH = re.compile(r"^(?P<rule>.*) - at `\$(?P<path>[^`]*)`$", re.DOTALL)
_NAMED_FIELD = re.compile(r"field `(?P<name>.*)`$", re.DOTALL)


def from_validation_error(error: msgspec.ValidationError) -> SidecarError:
    """Name the field and the rule that a params object broke."""
    text = str(error)
    rule, path = text, ""
    if match := _AT_PATH.match(text):
        rule, path = match["rule"], match["path"].lstrip(".")
    if named := _NAMED_FIELD.search(rule):
        path = f"{path}.{named['name']}" if path else named["name"]
    return invalid_params(path or "params", rule)
