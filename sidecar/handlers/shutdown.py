"""`shutdown`: stop every worker, answer, then the sidecar exits 0."""

from __future__ import annotations

from diffusion_sidecar_protocol.types import NoParams

from ..runtime.context import Method, RequestContext


async def handle(params: NoParams, ctx: RequestContext) -> None:
    await ctx.server.stop()
    return None


method = Method("shutdown", NoParams, handle)
