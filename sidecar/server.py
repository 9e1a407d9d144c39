"""The serve loop: stdin -> decode -> dispatch -> handler -> worker -> encode -> stdout."""

from __future__ import annotations

import sys

import anyio
import anyio.abc

from .backend import BackendProbe
from .context import RequestContext, ServerState
from .dispatch import dispatch
from .jsonrpc import BadMessage, decode_message, encode, error_response
from .models import ModelManager
from .stdio_guard import claim_stdout
from .transport import Outbox, read_lines
from .worker.process import worker_command

# After the last answer is queued, how long the sidecar waits for it (and for workers) to finish.
EXIT_GRACE_SECONDS = 5


async def serve(log_level: str) -> int:
    """Serve until `shutdown` or end of input; return the exit status."""
    outbox = Outbox(claim_stdout())
    command = worker_command(log_level)
    async with anyio.create_task_group() as background:
        background.start_soon(outbox.run)
        server = ServerState(
            models=ModelManager(background, command), outbox=outbox, backend=BackendProbe(background, command)
        )
        async with anyio.create_task_group() as requests:
            with anyio.CancelScope() as reading:
                background.start_soon(_cancel_when_stopping, server, reading)
                await _read_requests(server, requests)
        # Every request has been answered; what is left is to write the answers out.
        outbox.close()
        background.cancel_scope.deadline = anyio.current_time() + EXIT_GRACE_SECONDS
    return 0


async def _read_requests(server: ServerState, requests: anyio.abc.TaskGroup) -> None:
    async with read_lines(sys.stdin.buffer) as lines:
        async for line in lines:
            try:
                message = decode_message(line)
            except BadMessage as bad:
                server.outbox.put(encode(error_response(bad.request_id, bad.error)))
                continue
            request_id = None if message.is_notification else message.id
            requests.start_soon(dispatch, message, RequestContext(server, request_id))
    # End of input: the host is done or gone; shut down as `shutdown` would.
    await server.stop()


async def _cancel_when_stopping(server: ServerState, reading: anyio.CancelScope) -> None:
    await server.stopping.wait()
    reading.cancel()
