"""The serve loop: stdin -> decode -> dispatch -> handler -> worker -> encode -> stdout."""

from __future__ import annotations

import signal
import sys
import time
import traceback
from collections.abc import Awaitable, Callable

import anyio
import anyio.abc
from diffusion_sidecar_protocol.types import Limits

from .backend.probe import BackendProbe
from .dispatch import dispatch, dispatch_batch
from .rpc.errors import SidecarError
from .rpc.jsonrpc import BadMessage, decode_line, encode, error_response
from .rpc.stdio_guard import claim_stdout
from .rpc.transport import Outbox, Oversized, read_lines
from .runtime.context import ServerState
from .runtime.models import ModelManager
from .runtime.scheduler import ComputeScheduler
from .worker.process import worker_command

# After the last answer is queued, how long the sidecar waits for it (and for workers) to finish.
EXIT_GRACE_SECONDS = 2


async def serve(log_level: str, limits: Limits, spare_worker: bool = True) -> int:
    """Serve until `shutdown`, end of input, SIGTERM or SIGINT; return the exit status.
    `spare_worker`: keep one idle worker started ahead for the next load."""
    outbox = Outbox(claim_stdout())
    command = worker_command(log_level)
    async with anyio.create_task_group() as background:
        background.start_soon(outbox.run)
        backend = BackendProbe()

        async def physical_cores() -> int:  # the native default thread count
            return (await backend.info()).physicalCores

        server = ServerState(
            models=ModelManager(background, command, spare_worker),
            outbox=outbox,
            backend=backend,
            limits=limits,
            scheduler=ComputeScheduler(limits.maxRunning, physical_cores),
        )
        background.start_soon(_stop_on_signals, server)
        background.start_soon(server.backend.warm)  # collects the probe started before the imports
        background.start_soon(server.backend.recheck, outbox.first_written, server.notify)
        background.start_soon(_once_served, server, server.models.start_spare)
        background.start_soon(server.run_downloads)
        async with anyio.create_task_group() as requests:
            with anyio.CancelScope() as reading:
                background.start_soon(_cancel_when_stopping, server, reading)
                await _read_requests(server, requests)
        # Every request has been answered; write the answers out, then stop what is left.
        outbox.close()
        with anyio.move_on_after(EXIT_GRACE_SECONDS):  # a host that stopped reading can't hold us
            await outbox.written.wait()
        background.cancel_scope.cancel()
    return 0


async def _read_requests(server: ServerState, requests: anyio.abc.TaskGroup) -> None:
    async with read_lines(sys.stdin.buffer, server.limits.maxLineBytes) as lines:
        async for line in lines:
            received_at = time.monotonic()
            try:
                if isinstance(line, Oversized):
                    too_long = SidecarError(
                        "INVALID_REQUEST", f"The line is longer than the {line.limit}-byte limit", limit="maxLineBytes"
                    )
                    raise BadMessage(too_long)
                decoded = decode_line(line)
            except BadMessage as bad:
                server.outbox.put(encode(error_response(bad.request_id, bad.error)))
                continue
            except Exception:  # a decoder bug must not end the sidecar: answer it and go on
                traceback.print_exc(file=sys.stderr)
                server.outbox.put(encode(error_response(None, SidecarError("INTERNAL_ERROR", "Internal error"))))
                continue
            if isinstance(decoded, list):
                requests.start_soon(dispatch_batch, decoded, server, received_at)
            else:
                requests.start_soon(dispatch, decoded, server, received_at)
    # End of input: the host is done or gone; shut down as `shutdown` would.
    await server.stop()


async def _once_served(server: ServerState, start: Callable[[], Awaitable[None]]) -> None:
    """Start background work once the host has its first answer, so that it does not compete with
    the start-up the host waits for (a failure there only costs the speed-up it was for)."""
    await server.outbox.first_written.wait()
    try:
        await start()
    except OSError as error:
        sys.stderr.write(f"[sidecar] {error}\n")


async def _cancel_when_stopping(server: ServerState, reading: anyio.CancelScope) -> None:
    await server.stopping.wait()
    reading.cancel()


async def _stop_on_signals(server: ServerState) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            await server.stop()
