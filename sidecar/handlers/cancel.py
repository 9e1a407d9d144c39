"""`cancel`: stop one request (by its id) or every request on a model, right now.

A queued request leaves its queue. A running one cannot be interrupted inside the native
library, so its worker process is ended and the model comes back in a fresh worker before the
next request on it runs. Either way the cancelled request is answered at once with -32800.
"""

from __future__ import annotations

from diffusion_sidecar_protocol.types import CancelParams, CancelResult

from ..rpc.errors import invalid_params
from ..runtime.context import Method, RequestContext


async def handle(params: CancelParams, ctx: RequestContext) -> CancelResult:
    by_request, by_model = isinstance(params.requestId, (int, str)), isinstance(params.modelId, str)
    if by_request == by_model:
        raise invalid_params("requestId", "give exactly one of `requestId` and `modelId`")
    if by_model:
        return CancelResult(cancelled=ctx.server.cancel(model_id=params.modelId))  # type: ignore[arg-type]
    return CancelResult(cancelled=ctx.server.cancel(request_id=params.requestId))  # type: ignore[arg-type]


method = Method("cancel", CancelParams, handle)
