"""Drive a real sidecar process at the protocol level, checking every byte it writes to stdout."""

from __future__ import annotations

import asyncio
import hashlib
import os
import select
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from diffusion_sidecar_client import default_command

LINE_LIMIT = 1 << 30


class RawSidecar:
    """A sidecar process spoken to line by line. Every stdout line must be a JSON-RPC 2.0 object."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.messages: list[dict[str, Any]] = []
        """Every message received; the members of a batch response each count as one."""
        self.lines: list[Any] = []
        """Every stdout line, decoded: an object, or a list for a batch response."""
        self._next_id = 1000
        self._arrived = asyncio.Condition()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def start(
        cls, *flags: str, command: Sequence[str] | None = None, stderr_path: Path | None = None
    ) -> RawSidecar:
        stderr = open(stderr_path, "wb") if stderr_path else None
        process = await asyncio.create_subprocess_exec(
            *(command or default_command()),
            *flags,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            limit=LINE_LIMIT,
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            assert line.endswith(b"\n"), f"unterminated stdout line: {line[:200]!r}"
            decoded = msgspec.json.decode(line)  # raises on anything that is not JSON
            batch = decoded if isinstance(decoded, list) else [decoded]
            for message in batch:
                assert isinstance(message, dict) and message.get("jsonrpc") == "2.0", f"not JSON-RPC: {line[:200]!r}"
            async with self._arrived:
                self.lines.append(decoded)
                self.messages.extend(batch)
                self._arrived.notify_all()

    async def send_line(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data if data.endswith(b"\n") else data + b"\n")
        await self.process.stdin.drain()

    async def send(self, method: str, params: Any = None, *, request_id: Any = None) -> Any:
        """Send a request and return its id (a fresh integer unless one is given)."""
        if request_id is None:
            self._next_id += 1
            request_id = self._next_id
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        await self.send_line(msgspec.json.encode(message))
        return request_id

    async def wait_for(self, predicate, timeout: float = 120) -> dict[str, Any]:
        """The first message (in arrival order) that satisfies `predicate`, waiting if need be."""
        async with asyncio.timeout(timeout):
            async with self._arrived:
                while True:
                    for message in self.messages:
                        if predicate(message):
                            return message
                    if self._reader.done():
                        self._reader.result()
                        raise AssertionError("the sidecar closed stdout without that message")
                    await self._arrived.wait()

    async def response(self, request_id: Any, timeout: float = 120) -> dict[str, Any]:
        return await self.wait_for(lambda m: "method" not in m and m.get("id") == request_id, timeout)

    async def call(self, method: str, params: Any = None, timeout: float = 120) -> dict[str, Any]:
        return await self.response(await self.send(method, params), timeout)

    def responses_to(self, request_id: Any) -> list[dict[str, Any]]:
        return [m for m in self.messages if "method" not in m and m.get("id") == request_id]

    def notifications(self, method: str, request_id: Any) -> list[dict[str, Any]]:
        return [m["params"] for m in self.messages if m.get("method") == method and m["params"]["requestId"] == request_id]

    async def close_stdin(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    async def exit_status(self, timeout: float = 30) -> int:
        async with asyncio.timeout(timeout):
            status = await self.process.wait()
            await self._reader
        return status

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        await asyncio.gather(self._reader, return_exceptions=True)


def _parents() -> dict[int, int]:
    """Every process's parent id, read from /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            # The command name (2nd field) may hold spaces; the parent id follows its closing ')'.
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def child_pids(pid: int) -> set[int]:
    """Processes whose parent is `pid`."""
    return {child for child, parent in _parents().items() if parent == pid}


def descendant_pids(pid: int) -> set[int]:
    """Processes below `pid`, however deep."""
    parents = _parents()
    found: set[int] = set()
    generation = {pid}
    while generation:
        generation = {child for child, parent in parents.items() if parent in generation}
        found |= generation
    return found


def worker_pids(pid: int) -> set[int]:
    """The live worker processes of the sidecar started as `pid`, with either launcher."""
    workers = set()
    for descendant in descendant_pids(pid):
        try:
            argv = Path(f"/proc/{descendant}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"worker" in argv[1:]:  # an exited, unreaped process has no command line
            workers.add(descendant)
    return workers


def wait_gone(pid: int, timeout: float) -> bool:
    """Whether process `pid` (any process, not only a child) ends within `timeout` seconds."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([handle], [], [], timeout)  # readable once it has exited
        return bool(readable)
    finally:
        os.close(handle)


def kill(pid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    os.kill(pid, sig)


def model_hash(path: str | Path) -> str:
    """A1111's `Model hash` of a file, computed here independently of the sidecar: SHA-256, first 10 digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()[:10]
