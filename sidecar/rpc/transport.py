"""Newline-delimited messages over stdin and the private protocol stdout.

Blocking reads and writes run in threads, which works for pipes, files and terminals on every
platform. The reader is a daemon thread of its own, so a sidecar that is shutting down never
waits for a line that will not come. All output goes through one writer task, so messages from
concurrent handlers never interleave and leave in the order they were queued.
"""

from __future__ import annotations

import math
import threading
from typing import BinaryIO

import anyio
import anyio.from_thread
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .stdio_guard import write_all

# Lines read ahead of the dispatcher; past that the reader waits, which pushes back on the host.
READ_AHEAD_LINES = 8
SKIP_CHUNK_BYTES = 1 << 20


class Oversized:
    """Stands for a line longer than the limit; its bytes were skipped, never held in memory."""

    def __init__(self, limit: int) -> None:
        self.limit = limit


def read_lines(source: BinaryIO, max_bytes: int) -> MemoryObjectReceiveStream[bytes | Oversized]:
    """Stdin's non-blank lines, stripped, until end of input. Call from the event loop."""
    send, receive = anyio.create_memory_object_stream[bytes | Oversized](READ_AHEAD_LINES)
    token = anyio.lowlevel.current_token()

    def pump() -> None:
        try:
            while line := source.readline(max_bytes + 1):
                if len(line) > max_bytes and not line.endswith(b"\n"):
                    _skip_rest_of_line(source)
                    anyio.from_thread.run(send.send, Oversized(max_bytes), token=token)
                elif line := line.strip():
                    anyio.from_thread.run(send.send, line, token=token)
            anyio.from_thread.run_sync(send.close, token=token)
        except (RuntimeError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the event loop or the reader is gone: the sidecar is exiting

    threading.Thread(target=pump, name="stdin-reader", daemon=True).start()
    return receive


def _skip_rest_of_line(source: BinaryIO) -> None:
    while (chunk := source.readline(SKIP_CHUNK_BYTES)) and not chunk.endswith(b"\n"):
        pass


class Outbox:
    """The single way out to the host: queue encoded messages, a task writes them in order."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        send, receive = anyio.create_memory_object_stream[bytes](math.inf)
        self._send: MemoryObjectSendStream[bytes] = send
        self._receive: MemoryObjectReceiveStream[bytes] = receive
        self.host_gone = False
        self.written = anyio.Event()
        """Set once everything queued before `close` has been written (or the host is gone)."""
        self.first_written = anyio.Event()
        """Set once the host has its first message: background work that would compete with the
        host's first answer (`initialize`, as clients send it first) waits for it."""

    def put(self, data: bytes) -> None:
        self._send.send_nowait(data)

    def close(self) -> None:
        """No more messages; `run` returns once everything queued is written."""
        self._send.close()

    async def run(self) -> None:
        async with self._receive:
            async for data in self._receive:
                if not self.host_gone:
                    await anyio.to_thread.run_sync(self._write, data)
                self.first_written.set()
        self.first_written.set()
        self.written.set()

    def _write(self, data: bytes) -> None:
        try:
            write_all(self._sink, data)
        except (BrokenPipeError, ConnectionResetError):
            self.host_gone = True  # the host stopped reading; keep draining so nothing blocks
