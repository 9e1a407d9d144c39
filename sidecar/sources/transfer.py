"""One file downloaded into its cache entry, once, whoever asked for it.

A download goes to `<name>.part`. A `.part` left by an interrupted download is resumed with
`Range` and `If-Range` (the validator it came with): only a 206 that starts where the file stops
continues it; a 200 (the file changed, or the server ignores ranges) starts it over. Bytes are
hashed as they are written, so the SHA-256 (the request's, else the one Hugging Face publishes in
`X-Linked-Etag`) is checked at the end without reading the file again, before the rename gives it
its name; a mismatch deletes it. A connection that stalls (no byte for `stall_seconds`) or breaks
is retried from where it stopped, up to STALL_RETRIES times in a row without a new byte.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urljoin, urlsplit

import anyio
import anyio.from_thread
import anyio.to_thread
import httpx

from . import cache, hf
from .refs import Source, origin, public
from .settings import MAX_REDIRECTS, STALL_RETRIES, Settings
from .state import Failure, FileState

WRITE_BATCH = 1 << 20
"""Bytes gathered before one write-and-hash in a thread: the event loop never waits on the disk."""
SYNC_BYTES = 64 << 20
"""The `.part` is synced to the disk every this many bytes, while the download goes on: the sync
the rename waits for then has little left to write (on a fast link, most of its time otherwise)."""
PUBLISH_SECONDS = 0.05
"""How often a download's byte count is published (listeners throttle further, to ~10 a second)."""
WRITE_QUEUE = 8
"""Batches that may wait for the writer: reading goes on while it writes, within 8 MiB."""
REDIRECTS = (301, 302, 303, 307, 308)
RETRIED_STATUSES = (502, 503, 504)
"""Gateways and overloaded servers: worth another try, unlike a 500, whose next answer is the same."""
LOCK_POLL_SECONDS = 0.5
SPEED_WINDOW_SECONDS = 1.0
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class _Retry(Exception):
    def __init__(self, reason: str, *, stalled: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.stalled = reason, stalled


@dataclass
class _Published:
    """What the source's own host says about the file (Hugging Face: on its redirect to the CDN)."""

    sha256: str | None = None
    size: int | None = None

    def read(self, headers: httpx.Headers) -> None:
        self.sha256 = self.sha256 or hf.published_sha256(headers.get("x-linked-etag"))
        if self.size is None and (linked := headers.get("x-linked-size", "")).isdigit():
            self.size = int(linked)


class _Speed:
    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque()

    def update(self, done: int) -> float:
        now = time.monotonic()
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[1][0] >= SPEED_WINDOW_SECONDS:
            self._samples.popleft()
        (first_time, first_done) = self._samples[0]
        return (done - first_done) / (now - first_time) if now > first_time else 0.0


class Transfer:
    def __init__(
        self,
        source: Source,
        entry: cache.Entry,
        settings: Settings,
        client: httpx.AsyncClient,
        on_end: Callable[[Transfer], None],
    ) -> None:
        self.source, self.entry, self.settings, self.client = source, entry, settings, client
        self._on_end = on_end
        self.state = FileState()
        self.listeners: list[Callable[[FileState], None]] = []
        self.callers = 0
        self.scope = anyio.CancelScope()
        self.finished = anyio.Event()
        self.path: Path | None = None
        self.sha256: str | None = None
        self.failure: Failure | None = None
        self._received = 0
        """Bytes read from the network by this transfer, over every attempt."""
        self._hashed: tuple[int, Any] | None = None
        """The hash of the `.part` as written so far, kept between attempts so a retry does not reread it."""
        self._speed = _Speed()

    # --- state -------------------------------------------------------------------------------

    def publish(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)
        for listener in list(self.listeners):
            listener(self.state)

    async def run(self) -> None:
        try:
            with self.scope:
                await self._locked()
        except Failure as failure:
            self.failure = failure
        except Exception as error:  # a bug of ours: logged, and the callers get an answer
            traceback.print_exc(file=sys.stderr)
            self.failure = Failure("DOWNLOAD_FAILED", "The download failed (an internal error)", reason=repr(error))
        finally:
            if self.path is None and self.failure is None:
                self.failure = Failure("CANCELLED", "The download was cancelled")
            self.finished.set()
            self._on_end(self)

    async def _locked(self) -> None:
        with anyio.CancelScope(shield=True):  # a lock opened must be closed
            lock = await anyio.to_thread.run_sync(cache.FolderLock, self.entry)
        try:
            while not await anyio.to_thread.run_sync(lock.try_acquire):
                await anyio.sleep(LOCK_POLL_SECONDS)  # another sidecar downloads it: wait for its end
            found = await anyio.to_thread.run_sync(cache.cached, self.entry, self.source, self._verifying)
            if found is not None:  # that other sidecar finished it
                size = found.stat().st_size
                self.path, self.sha256 = found, self.entry.read().complete.sha256  # type: ignore[union-attr]
                self.publish(phase="cached", done=size, total=size, speed=0.0)
                return
            await self._download()
        finally:
            lock.close()

    def _verifying(self, done: int, total: int) -> None:
        """Hashing progress, from the thread that hashes: listeners run on the event loop only."""
        anyio.from_thread.run_sync(lambda: self.publish(phase="verifying", done=done, total=total))

    # --- attempts ----------------------------------------------------------------------------

    async def _download(self) -> None:
        failures = 0
        while True:
            received = self._received
            try:
                await self._attempt()
                return
            except _Retry as retry:
                failures = 0 if self._received > received else failures + 1
                url = public(self.source.url)
                if failures > STALL_RETRIES:
                    data = {"attempts": failures, "bytesDone": self.state.done}
                    if retry.stalled:
                        raise Failure(
                            "DOWNLOAD_STALLED",
                            f"No data came for {self.settings.stall_seconds:g} s, {failures} times in a row",
                            stallSeconds=self.settings.stall_seconds,
                            **data,
                        ) from None
                    raise Failure(
                        "DOWNLOAD_FAILED",
                        f"The download failed: {retry.reason}",
                        status=None,
                        reason=retry.reason,
                        **data,
                    ) from None
                print(
                    f"download {url}: {retry.reason}; retrying from byte {self.state.done}", file=sys.stderr, flush=True
                )
                await anyio.sleep(min(0.25 * 2 ** (failures - 1), 4.0))

    async def _attempt(self) -> None:
        offset, validator, hasher = await anyio.to_thread.run_sync(self._resume_point)
        self.publish(phase="checking", done=offset, speed=0.0)
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers.update({"Range": f"bytes={offset}-", "If-Range": validator})
        response, published = await self._open(headers)
        try:
            start, total = await self._start(response, offset)
            if start == 0:
                hasher, self._hashed = hashlib.sha256(), None
            validator = _validator(response.headers)
            expected_size = self.source.size or published.size
            if expected_size is not None and total is not None and total != expected_size:
                await anyio.to_thread.run_sync(self._discard)
                raise Failure(
                    "CHECKSUM_MISMATCH",
                    f"The server's file is {total} bytes, not the {expected_size} expected",
                    algorithm="size", expected=expected_size, got=total,
                )  # fmt: skip
            self._check_limit(total)
            await anyio.to_thread.run_sync(self._check_disk, (total or expected_size or 0) - start)
            await anyio.to_thread.run_sync(self._record_partial, validator, total, start)
            self.publish(phase="downloading", done=start, total=total, resumed_from=start)
            await self._receive(response, start, hasher)
        finally:
            with anyio.CancelScope(shield=True):  # a cancelled transfer must still hang up
                await response.aclose()
        done = self.state.done
        if total is not None and done != total:
            raise _Retry(f"the body ended after {done} of {total} bytes")
        await self._verify(hasher, published, response.headers)

    def _resume_point(self) -> tuple[int, str | None, Any]:
        """Bytes already in the `.part` that a resume can continue, their validator and their hash."""
        part = self.entry.part
        partial = self.entry.read().partial
        size = part.stat().st_size if part.exists() else 0
        if not size or partial is None or partial.validator is None:
            part.unlink(missing_ok=True)
            return 0, None, hashlib.sha256()
        if self._hashed is not None and self._hashed[0] == size:
            return size, partial.validator, self._hashed[1].copy()
        self._verifying(0, size)
        return size, partial.validator, cache.hash_file(part, size, lambda done: self._verifying(done, size))

    async def _open(self, headers: dict[str, str]) -> tuple[httpx.Response, _Published]:
        """GET the source, following redirects by hand: credentials go only to their own origin, and
        what the source's host publishes about the file is read before the redirect leaves it."""
        url, published = self.source.url, _Published()
        for _ in range(MAX_REDIRECTS + 1):
            request = self.client.build_request("GET", url, headers={**headers, **self.source.headers_for(url)})
            try:
                response = await self.client.send(request, stream=True)
            except httpx.TimeoutException:
                raise _Retry("no answer from the server", stalled=True) from None
            except httpx.TransportError as error:
                raise _Retry(_describe(error)) from None
            if origin(url) == origin(self.source.url):
                published.read(response.headers)
            if response.status_code not in REDIRECTS:
                return response, published
            location = response.headers.get("location")
            await response.aclose()
            if not location:
                raise Failure("DOWNLOAD_FAILED", "The server redirected to nowhere", status=response.status_code)
            url = urljoin(url, location)
            scheme = urlsplit(url).scheme.lower()
            if scheme != "https" and not (scheme == "http" and self.settings.allow_http):
                raise Failure(
                    "DOWNLOAD_FAILED",
                    f"The server redirected to a {scheme}:// URL; only https:// is followed",
                    status=response.status_code,
                )  # fmt: skip
        raise Failure(
            "TOO_MANY_REDIRECTS",
            f"More than {MAX_REDIRECTS} redirects",
            max=MAX_REDIRECTS,
        )

    async def _start(self, response: httpx.Response, offset: int) -> tuple[int, int | None]:
        """Where this response's body starts in the file, and the file's whole size if known."""
        status = response.status_code
        if status == 206 and offset:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", ""))
            if match is None or int(match[1]) != offset:
                await anyio.to_thread.run_sync(self._discard)
                raise _Retry("the server's partial answer did not start where the download stopped")
            return offset, None if match[3] == "*" else int(match[3])
        if status == 200:
            length = response.headers.get("content-length", "")
            encoded = response.headers.get("content-encoding", "identity").lower() != "identity"
            return 0, int(length) if length.isdigit() and not encoded else None
        if status == 416 and offset:
            await anyio.to_thread.run_sync(self._discard)
            raise _Retry("the server refused the range of the interrupted download; starting over")
        if status in RETRIED_STATUSES:
            raise _Retry(f"HTTP {status} {response.reason_phrase}")
        url, given = str(response.request.url), self.source.given
        if status in (401, 403):
            sent = bool(self.source.headers_for(url))
            advice = (
                "the credentials sent were refused" if sent else "send credentials (HF_TOKEN, or the source's headers)"
            )
            raise Failure(
                "AUTH_REQUIRED",
                f"{given}: HTTP {status} {response.reason_phrase}; {advice}",
                status=status, host=urlsplit(url).hostname, sentCredentials=sent,
            )  # fmt: skip
        raise Failure(
            "DOWNLOAD_FAILED",
            f"{given}: HTTP {status} {response.reason_phrase}",
            status=status, reason=response.reason_phrase,
        )  # fmt: skip

    def _check_limit(self, size: int | None) -> None:
        if size is not None and size > self.settings.max_bytes:
            raise Failure(
                "LIMIT_EXCEEDED",
                f"The file is {size} bytes, over this sidecar's maxDownloadBytes limit of {self.settings.max_bytes}",
                limit="maxDownloadBytes", max=self.settings.max_bytes, value=size,
            )  # fmt: skip

    def _check_disk(self, needed: int) -> None:
        free = shutil.disk_usage(self.entry.folder).free
        if needed > free:
            raise Failure(
                "INSUFFICIENT_DISK",
                f"The download needs {needed} bytes and {free} are free in {self.settings.cache_dir}",
                needed=needed, free=free, path=str(self.settings.cache_dir),
            )  # fmt: skip

    def _record_partial(self, validator: str | None, total: int | None, start: int) -> None:
        record = self.entry.read()
        record.partial = cache.Partial(validator=validator, total=total)
        self.entry.write(record)
        if start == 0:
            self.entry.part.unlink(missing_ok=True)

    async def _receive(self, response: httpx.Response, start: int, hasher: Any) -> None:
        """Stream the body to the `.part`. A writer task writes and hashes in a thread, batch by
        batch, while the next bytes arrive (WRITE_QUEUE batches at most wait for it). Progress
        counts bytes as they arrive; whatever arrived is written before this returns, however it
        ends (a cut, a stall, a cancel), so the `.part` holds every byte counted."""
        file: BinaryIO = await anyio.to_thread.run_sync(open, self.entry.part, "ab" if start else "wb")
        send, receive = anyio.create_memory_object_stream[list[bytes]](WRITE_QUEUE)
        written, write_error, ended = start, None, None

        async def write() -> None:
            nonlocal written, write_error
            with anyio.CancelScope(shield=True):  # a cancel still writes what was received
                async for batch in receive:
                    if write_error is None:
                        try:
                            await anyio.to_thread.run_sync(_write, file, hasher, batch)
                        except (Failure, OSError) as error:
                            write_error = error
                            continue
                        written += sum(map(len, batch))
                        self._hashed = (written, hasher)

        received, reading = start, anyio.Event()

        async def report() -> None:
            """The bytes received, every PUBLISH_SECONDS while they change: not once per chunk read
            (thousands a second), and still up to date when the data stops coming."""
            published = None
            while not reading.is_set():
                if received != published:
                    published = received
                    self.publish(done=received, speed=self._speed.update(received))
                with anyio.move_on_after(PUBLISH_SECONDS):
                    await reading.wait()
            self.publish(done=received, speed=self._speed.update(received))

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(write)
                group.start_soon(report)
                batch: list[bytes] = []
                batched = 0
                try:
                    async for chunk in response.aiter_bytes():
                        batch.append(chunk)
                        batched += len(chunk)
                        received += len(chunk)
                        self._received += len(chunk)
                        self._check_limit(received)
                        if batched >= WRITE_BATCH:
                            await send.send(batch)
                            batch, batched = [], 0
                        if write_error is not None:
                            break
                except httpx.TimeoutException:
                    ended = _Retry(f"no data for {self.settings.stall_seconds:g} s", stalled=True)
                except httpx.TransportError as error:
                    ended = _Retry(_describe(error))
                except Failure as failure:
                    ended = failure
                finally:
                    reading.set()
                    with anyio.CancelScope(shield=True):
                        if batch:
                            await send.send(batch)
                        await send.aclose()
        finally:
            await anyio.to_thread.run_sync(file.close)
        if write_error is not None:
            raise write_error
        if ended is not None:
            raise ended

    async def _verify(self, hasher: Any, published: _Published, headers: httpx.Headers) -> None:
        done = self.state.done
        self.publish(phase="verifying", speed=0.0)
        expected_size, expected_sha256 = self.source.size or published.size, self.source.sha256 or published.sha256
        digest = hasher.hexdigest()
        for algorithm, expected, got in (("size", expected_size, done), ("sha256", expected_sha256, digest)):
            if expected is not None and expected != got:
                await anyio.to_thread.run_sync(self._discard)
                raise Failure(
                    "CHECKSUM_MISMATCH",
                    f"The download's {algorithm} is {got}, not the {expected} expected; it was deleted",
                    algorithm=algorithm, expected=expected, got=got,
                )  # fmt: skip
        await anyio.to_thread.run_sync(self._finish, digest, done, headers)
        self.path, self.sha256 = self.entry.path, digest
        self.publish(phase="done", done=done, total=done)
        print(f"download {public(self.source.url)}: {done} bytes, sha256 {digest}", file=sys.stderr, flush=True)

    def _finish(self, digest: str, size: int, headers: httpx.Headers) -> None:
        with open(self.entry.part, "rb+") as file:
            os.fsync(file.fileno())  # the record below must never describe bytes still in the page cache only
        self.entry.part.replace(self.entry.path)
        stat = self.entry.path.stat()
        record = self.entry.read()
        record.partial = None
        record.complete = cache.Complete(
            size=size, mtimeNs=stat.st_mtime_ns, sha256=digest,
            etag=headers.get("etag"), lastModified=headers.get("last-modified"),
        )  # fmt: skip
        self.entry.write(record)

    def _discard(self) -> None:
        self._hashed = None
        self.entry.part.unlink(missing_ok=True)
        record = self.entry.read()
        if record.partial is not None:
            record.partial = None
            self.entry.write(record)


def _write(file: BinaryIO, hasher: Any, chunks: list[bytes]) -> None:
    try:
        file.writelines(chunks)
        file.flush()
        if file.tell() // SYNC_BYTES != (file.tell() - sum(map(len, chunks))) // SYNC_BYTES:
            os.fdatasync(file.fileno())
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise Failure(
                "INSUFFICIENT_DISK",
                "The disk filled up during the download",
                needed=None,
                free=0,
                path=str(Path(file.name).parent),
            ) from None
        raise
    for chunk in chunks:
        hasher.update(chunk)


def _validator(headers: httpx.Headers) -> str | None:
    """What `If-Range` may carry: a strong ETag, else the Last-Modified date (weak ETags may not)."""
    etag = headers.get("etag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("last-modified")


def _describe(error: httpx.TransportError) -> str:
    """The network error in words, without the URL (its query may hold credentials)."""
    text = str(error) or type(error).__name__
    return re.sub(r"\w+://\S+", "<url>", text)
