"""`unloadModel`: end the model's worker process, which returns its memory to the system."""

from __future__ import annotations

from diffusion_sidecar_protocol.types import UnloadModelParams, UnloadModelResult

from ..runtime.context import Method, RequestContext


async def handle(params: UnloadModelParams, ctx: RequestContext) -> UnloadModelResult:
    await ctx.server.models.unload(params.modelId)
    return UnloadModelResult(modelId=params.modelId, unloaded=True)


method = Method("unloadModel", UnloadModelParams, handle)
