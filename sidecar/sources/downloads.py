"""Every download of this sidecar: one transfer per file, shared by the requests that want it.

A request attaches to the transfer of its file (starting it if there is none) and waits for it. A
cancelled request detaches; the transfer stops when no request is left, keeping its `.part` for a
resume. Transfers run in this object's own task group (`run`, started with the server), so a
request that leaves never takes a transfer another request still waits on down with it. The HTTP
client (httpx: about 75 ms to import, ssl included) is imported when the first download starts,
not at the sidecar's start: a host that never downloads never pays for it, nor does a cache hit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.from_thread
import anyio.to_thread
from diffusion_sidecar_protocol import __version__

from ..rpc.errors import SidecarError
from . import cache, hf
from .refs import Source
from .settings import Settings
from .state import Failure, FileState

if TYPE_CHECKING:
    from .transfer import Transfer

Listener = Callable[[FileState], None]


class Downloads:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._transfers: dict[Path, Transfer] = {}
        self._wanted = anyio.Event()
        self._ready = anyio.Event()
        self._tasks: anyio.abc.TaskGroup | None = None
        self._client: Any = None

    async def run(self) -> None:
        """Hold the HTTP client and the transfers' task group until cancelled (the server's end)."""
        await self._wanted.wait()
        import httpx

        _read_larger_pieces()

        timeout = httpx.Timeout(self.settings.stall_seconds, connect=min(30.0, max(self.settings.stall_seconds, 5.0)))
        # trust_env: HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY, SSL_CERT_FILE, SSL_CERT_DIR.
        async with (
            httpx.AsyncClient(
                timeout=timeout,
                follow_redirects=False,
                trust_env=True,
                headers={"User-Agent": f"diffusion-sidecar/{__version__}"},
            ) as client,
            anyio.create_task_group() as tasks,
        ):
            self._client, self._tasks = client, tasks
            self._ready.set()
            await anyio.sleep_forever()

    async def fetch_all(self, sources: Mapping[str, Source], listener: Callable[[str], Listener]) -> dict[str, Path]:
        """Every source's file, fetched together; the first failure cancels the others (each
        detaches) and is raised. `listener(field)` gets that file's states."""
        results: dict[str, Path] = {}
        failure: SidecarError | None = None

        async def one(field: str, source: Source) -> None:
            nonlocal failure
            try:
                results[field] = await self.fetch(source, listener(field))
            except SidecarError as error:
                failure = failure or error
                group.cancel_scope.cancel()

        async with anyio.create_task_group() as group:
            for field, source in sources.items():
                group.start_soon(one, field, source)
        if failure is not None:
            raise failure
        return results

    async def fetch(self, source: Source, listener: Listener) -> Path:
        """The source's file in the cache: found there (or in the Hugging Face cache) without any
        request, else downloaded, sharing the transfer with every other request for it."""
        entry = cache.entry_for(self.settings.models_dir, source)
        listener(FileState(phase="checking"))
        found = await self._cached(entry, source, listener)
        if found is not None:
            size = found.stat().st_size
            listener(FileState(phase="cached", done=size, total=size))
            return found
        self._wanted.set()
        await self._ready.wait()
        while (running := self._transfers.get(entry.path)) is not None and running.scope.cancel_called:
            await running.finished.wait()  # stopping, its last caller gone: let it close the .part first
        transfer = running or self._start(entry, source)
        transfer.callers += 1
        transfer.listeners.append(listener)
        listener(transfer.state)
        try:
            await transfer.finished.wait()
        finally:
            transfer.listeners.remove(listener)
            transfer.callers -= 1
            if transfer.callers == 0 and not transfer.finished.is_set():
                transfer.scope.cancel()
        if transfer.failure is not None:
            raise _error(source, transfer.failure)
        # The transfer may have been started by a request that expected less (no checksum, or another).
        assert transfer.path is not None
        if source.sha256 and source.sha256 != transfer.sha256:
            raise _error(source, Failure(
                "CHECKSUM_MISMATCH", f"The download's sha256 is {transfer.sha256}, not the {source.sha256} expected",
                algorithm="sha256", expected=source.sha256, got=transfer.sha256,
            ))  # fmt: skip
        size = transfer.state.done
        if source.size and source.size != size:
            raise _error(source, Failure(
                "CHECKSUM_MISMATCH", f"The download's size is {size}, not the {source.size} expected",
                algorithm="size", expected=source.size, got=size,
            ))  # fmt: skip
        return transfer.path

    async def _cached(self, entry: cache.Entry, source: Source, listener: Listener) -> Path | None:
        def verifying(done: int, total: int) -> None:
            anyio.from_thread.run_sync(listener, FileState(phase="verifying", done=done, total=total))

        found = await anyio.to_thread.run_sync(cache.cached, entry, source, verifying)
        if found is None and source.hf_file is not None and self.settings.hf_hub_cache is not None:
            found = await anyio.to_thread.run_sync(self._from_hf_cache, entry, source, verifying)
        if found is None and self.settings.offline:
            partial = entry.part.stat().st_size if entry.part.exists() else 0
            raise _error(source, Failure(
                "OFFLINE_NOT_CACHED",
                f"{source.given} is not in the cache and this sidecar is offline"
                + (f" ({partial} bytes of it were downloaded before)" if partial else ""),
                bytesDone=partial,
            ))  # fmt: skip
        return found

    def _from_hf_cache(self, entry: cache.Entry, source: Source, verifying: Callable[[int, int], None]) -> Path | None:
        assert source.hf_file is not None and self.settings.hf_hub_cache is not None
        found = hf.find_cached(self.settings.hf_hub_cache, source.hf_file)
        if found is None:
            return None
        sha256 = hf.blob_sha256(found)
        if source.sha256 and sha256 is None:
            size = found.stat().st_size
            sha256 = cache.hash_file(found, on_bytes=lambda done: verifying(done, size)).hexdigest()
        if source.sha256 and source.sha256 != sha256:
            return None  # another version than the one asked for: download it
        return cache.adopt(entry, found, sha256)

    def _start(self, entry: cache.Entry, source: Source) -> Transfer:
        from .transfer import Transfer

        assert self._tasks is not None and self._client is not None
        transfer = Transfer(source, entry, self.settings, self._client, self._ended)
        self._transfers[entry.path] = transfer
        self._tasks.start_soon(transfer.run)
        return transfer

    def _ended(self, transfer: Transfer) -> None:
        if self._transfers.get(transfer.entry.path) is transfer:
            del self._transfers[transfer.entry.path]

    def transfers(self) -> int:
        """Transfers under way (for tests and listings)."""
        return len(self._transfers)


READ_BYTES = 1 << 20


def _read_larger_pieces() -> None:
    """httpcore reads a body 64 KiB at a time, and each piece costs its trip through h11 and the
    event loop: 1 MiB pieces cut the sidecar's CPU per downloaded byte by about a fifth (`make
    bench` item `downloads`). A class attribute of httpcore's, pinned by the lock; without it (a
    later httpcore), downloads work as they are."""
    try:
        from httpcore._async.http11 import AsyncHTTP11Connection
    except ImportError:
        return
    if isinstance(getattr(AsyncHTTP11Connection, "READ_NUM_BYTES", None), int):
        AsyncHTTP11Connection.READ_NUM_BYTES = READ_BYTES


def _error(source: Source, failure: Failure) -> SidecarError:
    return SidecarError(
        failure.code, f"`{source.field}`: {failure.message}", field=source.field, url=source.given, **failure.data
    )
