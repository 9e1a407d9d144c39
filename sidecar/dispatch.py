"""From decoded messages to exactly one response per request (none for a notification)."""

from __future__ import annotations

import functools
import sys
import time
import traceback

import anyio
import msgspec

from .handlers import METHODS
from .rpc.errors import SidecarError, from_validation_error
from .rpc.jsonrpc import (
    UNDECODABLE,
    BadMessage,
    ErrorResponse,
    Message,
    SuccessResponse,
    decode_json,
    encode,
    encode_batch,
    error_response,
    parse_error,
)
from .runtime.context import ActiveRequest, RequestContext, ServerState

Response = SuccessResponse | ErrorResponse


async def dispatch(message: Message, server: ServerState, received_at: float) -> None:
    if (reply := await respond(message, server, received_at)) is not None:
        server.outbox.put(encode(reply))


async def dispatch_batch(items: list[Message | BadMessage], server: ServerState, received_at: float) -> None:
    """A batch is answered by one array, in request order; notifications in it get no entry."""
    replies: list[Response | None] = [None] * len(items)

    async def answer(index: int, message: Message) -> None:
        replies[index] = await respond(message, server, received_at)

    async with anyio.create_task_group() as group:
        for index, item in enumerate(items):
            if isinstance(item, BadMessage):
                replies[index] = error_response(item.request_id, item.error)
            else:
                group.start_soon(answer, index, item)
    answered = [reply for reply in replies if reply is not None]
    if answered:
        server.outbox.put(encode_batch(answered))


async def respond(message: Message, server: ServerState, received_at: float = 0.0) -> Response | None:
    request_id = None if message.is_notification else message.id
    active = ActiveRequest(method=message.method)
    ctx = RequestContext(server, request_id, active, received_at or time.monotonic())
    registered = request_id is not None and request_id not in server.active
    if registered:
        server.active[request_id] = active
    try:
        with active.scope:
            result = await _call(message, ctx)
        if active.scope.cancelled_caught:
            raise _cancelled(active)
        reply: Response = SuccessResponse(id=request_id, result=result)
    except SidecarError as error:
        reply = error_response(request_id, error)
    except Exception:  # a bug of ours: log it, answer, keep serving
        traceback.print_exc(file=sys.stderr)
        reply = error_response(request_id, SidecarError("INTERNAL_ERROR", "Internal error; see the sidecar's log"))
    finally:
        if registered:
            del server.active[request_id]
    return None if message.is_notification else reply


@functools.cache
def _params_decoder(params_type: type) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(params_type)


def _cancelled(active: ActiveRequest) -> SidecarError:
    error = active.cancel_reason or SidecarError("TIMEOUT", "The request's timeoutMs passed; it was cancelled")
    error.data.update(active.partial)
    return error


async def _call(message: Message, ctx: RequestContext) -> object:
    method = METHODS.get(message.method)
    if method is None:
        raise SidecarError("METHOD_NOT_FOUND", f"Method not found: {message.method!r}", method=message.method)
    if ctx.server.stopping.is_set() and not method.allowed_while_stopping:
        raise SidecarError("SHUTTING_DOWN", "The sidecar is shutting down and takes no new requests")
    try:
        params = decode_json(_params_decoder(method.params), message.params)
    except msgspec.ValidationError as error:
        raise from_validation_error(error) from None
    except UNDECODABLE as error:
        raise parse_error(error) from None
    return await method.handle(params, ctx)
