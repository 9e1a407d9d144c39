"""`listModels`: every model loaded or being loaded, its state, its queue and its totals.

For a host that restarts its UI (or its own process) and must find what the sidecar holds.
"""

from __future__ import annotations

from diffusion_sidecar_protocol.types import ListedModel, ListedRequest, ListModelsResult, NoParams

from ..runtime.context import Method, RequestContext


async def handle(params: NoParams, ctx: RequestContext) -> ListModelsResult:
    generations = [request for request in ctx.server.active.values() if request.method == "diffusion"]
    listed = []
    for model_id, settings, model in ctx.server.models.entries():
        on_model = [request for request in generations if request.model_id == model_id]
        running = sum(request.running for request in on_model)
        listed.append(
            ListedModel(
                modelId=model_id,
                files=settings.files,
                state="loading" if model is None else "reloading" if model.reloading else "ready",
                modelFamily=model and model.family,
                sizeMultiple=model and model.size_multiple,
                weightTypes=model.weight_types if model else None,
                running=running,
                queued=len(on_model) - running,
                totals=model and model.totals(),
                requests=[
                    ListedRequest(requestId=turn.label, running=turn.running, place=turn.place)
                    for turn in (ctx.server.scheduler.turns(model) if model else [])
                ],
            )
        )
    return ListModelsResult(models=listed)


method = Method("listModels", NoParams, handle)
