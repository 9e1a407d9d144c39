"""`initialize`: who the sidecar is, what it accepts, and its limits. Optional, any time."""

from __future__ import annotations

from typing import get_args

from diffusion_sidecar_protocol import PROTOCOL_VERSION, __version__
from diffusion_sidecar_protocol.types import (
    CachePreset,
    InitializeParams,
    InitializeResult,
    SamplingMethod,
    Scheduler,
    WeightType,
)

from ..runtime.context import Method, RequestContext


async def handle(params: InitializeParams, ctx: RequestContext) -> InitializeResult:
    return InitializeResult(
        serverName="diffusion-sidecar",
        serverVersion=__version__,
        protocolVersion=PROTOCOL_VERSION,
        backend=await ctx.server.backend.info(),
        samplingMethods=list(get_args(SamplingMethod)),
        schedulers=list(get_args(Scheduler)),
        cachePresets=list(get_args(CachePreset)),
        weightTypes=list(get_args(WeightType)),
        limits=ctx.server.limits,
    )


method = Method("initialize", InitializeParams, handle)
