"""One module per JSON-RPC method; this table is how the dispatcher finds them."""

from __future__ import annotations

from ..runtime.context import Method
from . import (
    cancel,
    cancel_request,
    convert,
    diffusion,
    exit,
    initialize,
    list_models,
    load_model,
    shutdown,
    unload_model,
    upscale,
    video,
)

METHODS: dict[str, Method] = {
    module.method.name: module.method
    for module in (
        initialize, load_model, diffusion, upscale, convert, video, cancel, cancel_request, unload_model, shutdown,
        exit, list_models,
    )
}
