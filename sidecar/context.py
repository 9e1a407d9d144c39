"""What a handler can reach: the server's shared state and its own request's details."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import anyio
import msgspec

from .backend import BackendProbe
from .errors import SidecarError
from .jsonrpc import Notification, encode
from .models import ModelManager, elapsed_ms
from .protocol import RequestId
from .transport import Outbox


@dataclass
class ServerState:
    models: ModelManager
    outbox: Outbox
    backend: BackendProbe
    stopping: anyio.Event = field(default_factory=anyio.Event)
    """Set once the sidecar is shutting down: no new work, workers are stopped."""

    async def stop(self) -> None:
        """Refuse new work and end every worker; requests still pending on them are answered."""
        self.stopping.set()
        await self.models.stop_all(SidecarError("SHUTTING_DOWN", "The sidecar is shutting down"))


@dataclass
class RequestContext:
    server: ServerState
    request_id: RequestId | None
    received_at: float = field(default_factory=time.monotonic)

    def notify(self, method: str, params: msgspec.Struct) -> None:
        self.server.outbox.put(encode(Notification(method=method, params=params)))

    def elapsed_ms(self) -> float:
        return elapsed_ms(self.received_at)


P = TypeVar("P", bound=msgspec.Struct)


@dataclass(frozen=True)
class Method(Generic[P]):
    """One JSON-RPC method: its name, the type its params decode into, and its handler."""

    name: str
    params: type[P]
    handle: Callable[[P, RequestContext], Awaitable[Any]]
