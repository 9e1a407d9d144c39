"""`$/cancelRequest` (notification, as in LSP): cancel the request with this id, like `cancel`."""

from __future__ import annotations

from diffusion_sidecar_protocol.types import CancelRequestParams

from ..runtime.context import Method, RequestContext


async def handle(params: CancelRequestParams, ctx: RequestContext) -> None:
    ctx.server.cancel(request_id=params.id)


method = Method("$/cancelRequest", CancelRequestParams, handle)
