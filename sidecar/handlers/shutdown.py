"""`shutdown`: stop every worker, answer, then the sidecar exits 0."""

from __future__ import annotations

from ..context import Method, RequestContext
from ..protocol import NoParams


async def handle(params: NoParams, ctx: RequestContext) -> None:
    await ctx.server.stop()
    return None


method = Method("shutdown", NoParams, handle)
