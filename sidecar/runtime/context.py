"""What a handler can reach: the server's shared state and its own request's details."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import msgspec
from diffusion_sidecar_protocol.types import Limits, RequestId

from ..backend.probe import BackendProbe
from ..rpc.errors import SidecarError
from ..rpc.jsonrpc import Notification, encode
from ..rpc.transport import Outbox
from ..worker import messages
from .models import LoadedModel, ModelManager, elapsed_ms
from .scheduler import ComputeScheduler

if TYPE_CHECKING:
    from ..sources.downloads import Downloads


# Methods that run native work in a worker of their own, on no loaded model: `cancel` finds them by
# request id alone, and shutdown cancels them.
MODEL_FREE_WORK = ("loadModel", "convert")


@dataclass(eq=False)
class ActiveRequest:
    """A request being handled: what `cancel` needs to find it and stop it."""

    method: str
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    model_id: str | None = None
    running: bool = False
    """True once it has left its model's queue and the compute device's line, and runs on the worker."""
    cancel_reason: SidecarError | None = None
    partial: dict[str, Any] = field(default_factory=dict)
    """What the request already made (finished images), returned in the cancel error's data."""

    def cancel(self, reason: SidecarError) -> None:
        if self.cancel_reason is None:
            self.cancel_reason = reason
            self.scope.cancel()


@dataclass
class ServerState:
    models: ModelManager
    outbox: Outbox
    backend: BackendProbe
    limits: Limits
    scheduler: ComputeScheduler
    active: dict[RequestId | None, ActiveRequest] = field(default_factory=dict)
    stopping: anyio.Event = field(default_factory=anyio.Event)
    """Set once the sidecar is shutting down: no new work, workers are stopped."""
    downloads_wanted: anyio.Event = field(default_factory=anyio.Event)

    @functools.cached_property
    def downloads(self) -> Downloads:
        """Sources' transfers (sidecar/sources), made on first use: a sidecar that is never given a
        URL never imports that package (about 10 ms at start-up)."""
        from ..sources.downloads import Downloads
        from ..sources.settings import Settings

        self.downloads_wanted.set()
        return Downloads(Settings.from_limits(self.limits))

    async def run_downloads(self) -> None:
        """Started with the server: runs the downloads' task group once they are first wanted."""
        await self.downloads_wanted.wait()
        await self.downloads.run()

    def cancel(self, *, request_id: RequestId | None = None, model_id: str | None = None, queued_only: bool = False) -> int:
        """Cancel the matching requests that can be cancelled; return how many were."""
        count = 0
        for key, request in list(self.active.items()):
            matches = key == request_id if model_id is None else request.model_id == model_id
            cancellable = request.model_id is not None or request.method in MODEL_FREE_WORK
            if matches and cancellable and request.cancel_reason is None:
                if queued_only and request.running:
                    continue
                request.cancel(SidecarError("CANCELLED", "Request cancelled", requestId=key))
                count += 1
        return count

    def notify(self, method: str, params: msgspec.Struct) -> None:
        self.outbox.put(encode(Notification(method=method, params=params)))

    async def stop(self) -> None:
        """Refuse new work, cancel what waits in queues, end every worker; all get an answer."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        for model_id in self.models.ids():
            self.cancel(model_id=model_id, queued_only=True)
        for key, request in list(self.active.items()):
            if request.method in MODEL_FREE_WORK:  # a half-loaded model or half-written file is of no use
                message = f"The sidecar is shutting down; the {request.method} was cancelled"
                request.cancel(SidecarError("CANCELLED", message, requestId=key))
        await self.models.stop_all(SidecarError("SHUTTING_DOWN", "The sidecar is shutting down"))


@dataclass
class RequestContext:
    server: ServerState
    request_id: RequestId | None
    active: ActiveRequest
    received_at: float = field(default_factory=time.monotonic)

    def notify(self, method: str, params: msgspec.Struct) -> None:
        self.server.notify(method, params)

    def elapsed_ms(self) -> float:
        return elapsed_ms(self.received_at)

    async def run_on(
        self, model: LoadedModel, job: messages.ToWorker, on_event: Callable[[messages.FromWorker], None]
    ) -> tuple[messages.FromWorker, float]:
        """Wait for the model's turn (its queue, then the compute device shared with every model),
        run `job` on its worker: the final reply and the ms it took (waits excluded). Cancelled
        while running, the worker is ended (nothing else interrupts the native library) and the
        model reloaded for the next request."""
        turn = self.server.scheduler.turn(model.demand, owner=model, label=self.request_id, after=model.gate.ticket())
        async with turn:
            self.active.running = True
            started = time.monotonic()
            try:
                outcome = await model.request(job, on_event)
            except anyio.get_cancelled_exc_class():
                self.server.models.abandon_running_request(model)
                raise
            return outcome, elapsed_ms(started)


P = TypeVar("P", bound=msgspec.Struct)


@dataclass(frozen=True)
class Method(Generic[P]):
    """One JSON-RPC method: its name, the type its params decode into, and its handler."""

    name: str
    params: type[P]
    handle: Callable[[P, RequestContext], Awaitable[Any]]
    allowed_while_stopping: bool = False
