"""`$/cancelRequest` (notification, as in LSP): cancel the request with this id, like `cancel`."""

from __future__ import annotations

from ..context import Method, RequestContext
from ..protocol import CancelRequestParams


async def handle(params: CancelRequestParams, ctx: RequestContext) -> None:
    ctx.server.cancel(request_id=params.id)


method = Method("$/cancelRequest", CancelRequestParams, handle)
