"""`convert`: write a model at another weight type (GGUF quantization), in a worker of its own.

Everything that can be refused is refused before the worker starts: the input files (as `loadModel`
checks them), the rules, the output path (`inputs/output_paths.py`: exists, outside `--models-root`,
no room). The conversion then takes a turn on the CPU like a generation (it reads and quantizes on
every core), and writes under a temporary name that becomes `outputPath` only once complete: a
cancel, a timeout, shutdown or a failure ends the worker and removes that file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import anyio
from diffusion_sidecar_protocol.types import ConvertParams, ConvertProgress, ConvertResult

from ..inputs import conversion, output_paths, weight_files
from ..inputs.paths import checked_file
from ..rpc.errors import SidecarError
from ..runtime.context import Method, RequestContext
from ..runtime.models import elapsed_ms
from ..runtime.scheduler import Demand
from ..worker import messages
from ..worker.process import WorkerExited, WorkerProcess


async def handle(params: ConvertParams, ctx: RequestContext) -> ConvertResult:
    root = ctx.server.limits.modelsRoot
    model_path = await checked_file("modelPath", params.modelPath, root, allow_folder=True)
    vae_path = await checked_file("vaePath", params.vaePath, root) if isinstance(params.vaePath, str) else ""
    rules_text = params.tensorTypeRules or ""
    rules = conversion.parse_rules("tensorTypeRules", rules_text)
    conversion.check_format(params.outputPath, params.type, rules)
    inputs = [path for path in (model_path, vae_path) if path]
    needed = await anyio.to_thread.run_sync(conversion.needed_bytes, inputs, params.type)
    output = await anyio.to_thread.run_sync(
        lambda: output_paths.checked_output(
            "outputPath", params.outputPath, root, suffixes=conversion.OUTPUT_SUFFIXES,
            overwrite=params.overwrite, inputs=inputs, needed_bytes=needed,
        )  # fmt: skip
    )
    if params.timeoutMs:
        ctx.active.scope.deadline = anyio.current_time() + params.timeoutMs / 1000 - (time.monotonic() - ctx.received_at)
    partial = output_paths.partial_path(output)
    job = messages.Convert(
        input_path=model_path,
        vae_path=vae_path,
        output_path=partial,
        weight_type=params.type,
        tensor_type_rules=rules_text,
        models_root=root,
    )

    def on_event(event: messages.FromWorker) -> None:
        if isinstance(event, messages.ConvertTick):
            tick = ConvertProgress(
                requestId=ctx.request_id,
                phase=event.phase,
                done=event.done,
                total=event.total,
                elapsedMs=ctx.elapsed_ms(),
            )
            ctx.notify("convert/progress", tick)

    # The native converter reads and quantizes on every core: one turn of the whole CPU.
    async with ctx.server.scheduler.turn(Demand(), owner=job, label=ctx.request_id):
        ctx.active.running = True
        started = time.monotonic()
        try:
            await _run(job, ctx, on_event)
            await anyio.to_thread.run_sync(
                lambda: output_paths.publish("outputPath", partial, output, overwrite=params.overwrite)
            )
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(output_paths.discard, partial)
        convert_ms = elapsed_ms(started)
    tensors = await anyio.to_thread.run_sync(weight_files.read_tensors, output)
    return ConvertResult(
        outputPath=output,
        outputBytes=os.stat(output).st_size,
        tensors=len(tensors),
        weightTypes=weight_files.type_counts(tensors),
        unquantized=conversion.unquantized(tensors, params.type, rules),
        convertMs=convert_ms,
    )


async def _run(job: messages.Convert, ctx: RequestContext, on_event: Callable[[messages.FromWorker], None]) -> None:
    """The conversion in a fresh worker, ended whatever happens (on a cancel, at once)."""
    async with anyio.create_task_group() as group:
        label = f"convert-{ctx.request_id}"
        worker = await WorkerProcess.start(ctx.server.models.worker_command, label, group)
        try:
            reply = await worker.request(job, on_event)
        except WorkerExited as exited:
            raise SidecarError(
                "CONVERT_FAILED",
                f"The conversion crashed its worker process ({exited.describe()})",
                reason=exited.stderr_tail[-1] if exited.stderr_tail else exited.describe(),
                **exited.details(),
            ) from None
        finally:
            worker.kill()
            with anyio.CancelScope(shield=True):  # dead before its file is removed: it cannot write after
                await worker.wait()
    if isinstance(reply, messages.Failed):
        raise reply.error("CONVERT_FAILED", "The model could not be converted")


method = Method("convert", ConvertParams, handle)


