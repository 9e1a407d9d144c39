"""From a decoded message to exactly one response (or none, for a notification)."""

from __future__ import annotations

import sys
import traceback

import msgspec

from .context import RequestContext
from .errors import SidecarError, from_validation_error
from .handlers import METHODS
from .jsonrpc import Message, SuccessResponse, encode, error_response


async def dispatch(message: Message, ctx: RequestContext) -> None:
    try:
        result = await _call(message, ctx)
    except SidecarError as error:
        reply = error_response(ctx.request_id, error)
    except Exception:  # a bug of ours: log it, answer, keep serving
        traceback.print_exc(file=sys.stderr)
        reply = error_response(ctx.request_id, SidecarError("INTERNAL_ERROR", "Internal error; see the sidecar's log"))
    else:
        reply = SuccessResponse(id=ctx.request_id, result=result)
    if not message.is_notification:
        ctx.server.outbox.put(encode(reply))


async def _call(message: Message, ctx: RequestContext) -> object:
    method = METHODS.get(message.method)
    if method is None:
        raise SidecarError("METHOD_NOT_FOUND", f"Method not found: {message.method!r}", method=message.method)
    if ctx.server.stopping.is_set():
        raise SidecarError("SHUTTING_DOWN", "The sidecar is shutting down and takes no new requests")
    try:
        params = msgspec.json.decode(message.params, type=method.params)
    except msgspec.ValidationError as error:
        raise from_validation_error(error) from None
    return await method.handle(params, ctx)
