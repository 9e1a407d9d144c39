"""`exit` (notification, as in LSP): end the process at once; status 0 only after `shutdown`."""

from __future__ import annotations

import os
import sys

from diffusion_sidecar_protocol.types import NoParams

from ..runtime.context import Method, RequestContext


async def handle(params: NoParams, ctx: RequestContext) -> None:
    ctx.server.models.kill_all()
    sys.stderr.flush()
    os._exit(0 if ctx.server.stopping.is_set() else 1)


method = Method("exit", NoParams, handle, allowed_while_stopping=True)
