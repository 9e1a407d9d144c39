"""`unloadModel`: end the model's worker process, which returns its memory to the system."""

from __future__ import annotations

from ..context import Method, RequestContext
from ..protocol import UnloadModelParams, UnloadModelResult


async def handle(params: UnloadModelParams, ctx: RequestContext) -> UnloadModelResult:
    await ctx.server.models.unload(params.modelId)
    return UnloadModelResult(modelId=params.modelId, unloaded=True)


method = Method("unloadModel", UnloadModelParams, handle)
