"""The front's handle on one worker process: start it, send it requests, notice when it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import deque
from collections.abc import Callable

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from . import messages
from .command import worker_command as worker_command  # where the front has always found it

STDERR_TAIL_LINES = 20
STOP_GRACE_SECONDS = 2.0


class WorkerExited(Exception):
    """The worker process ended while the front was waiting on it."""

    def __init__(self, returncode: int | None, stderr_tail: list[str]) -> None:
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        super().__init__(self.describe())

    @property
    def signal_name(self) -> str | None:
        if self.returncode is None or self.returncode >= 0:
            return None
        try:
            return signal.Signals(-self.returncode).name
        except ValueError:
            return f"signal {-self.returncode}"

    def details(self) -> dict[str, object]:
        """What an error's `data` says about the exit."""
        return {"exitCode": self.returncode, "signal": self.signal_name, "stderr": self.stderr_tail}

    def describe(self) -> str:
        how = f"killed by {self.signal_name}" if self.signal_name else f"exited with code {self.returncode}"
        return f"worker process {how}"


class WorkerProcess:
    def __init__(self, process: anyio.abc.Process, label: str) -> None:
        self._process = process
        self.label = label
        """Prefixes its log lines: the model it serves (a spare worker is renamed when taken)."""
        assert process.stdout is not None and process.stdin is not None
        self._frames = BufferedByteReceiveStream(process.stdout)
        self._stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._stderr_done = anyio.Event()
        self.ended_on_purpose = False
        """True once the front has stopped or killed it: its death is no crash."""
        self.crashed = False
        """True once the front has seen it die by itself and dealt with it (once, however noticed)."""

    @classmethod
    async def start(
        cls, command: list[str], label: str, task_group: anyio.abc.TaskGroup, environment: dict[str, str] | None = None
    ) -> WorkerProcess:
        """`environment`: added to the sidecar's own (a model's device is chosen through it)."""
        # A native abort (GGML_ASSERT) first tries to attach gdb for a backtrace: slow, noisy, useless here.
        environment = {**os.environ, "GGML_NO_BACKTRACE": "1", **(environment or {})}
        process = await anyio.open_process(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment
        )
        worker = cls(process, label)
        task_group.start_soon(worker._relay_stderr)
        return worker

    @property
    def pid(self) -> int:
        return self._process.pid

    async def request(
        self, message: messages.ToWorker, on_event: Callable[[messages.FromWorker], None]
    ) -> messages.FromWorker:
        """Send one request; pass each event to `on_event` and return the message that ends it.

        Raises WorkerExited if the process dies first.
        """
        try:
            await self._process.stdin.send(messages.frame(message))  # type: ignore[union-attr]
            while not isinstance(reply := await self._receive(), messages.FINAL):
                on_event(reply)
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise await self.wait() from None
        return reply

    async def _receive(self) -> messages.FromWorker:
        (size,) = messages.HEADER.unpack(await self._frames.receive_exactly(messages.HEADER.size))
        return messages.from_worker_decoder.decode(await self._frames.receive_exactly(size))

    async def wait(self) -> WorkerExited:
        """Return once the process has ended, however it ended, with why it ended."""
        returncode = await self._process.wait()
        with anyio.move_on_after(STOP_GRACE_SECONDS):  # the last stderr lines say why it died
            await self._stderr_done.wait()
        return WorkerExited(returncode, list(self._stderr_tail))

    async def stop(self) -> None:
        """End the worker: closing its pipe ends it at once; kill it if it lingers."""
        self.ended_on_purpose = True
        with anyio.CancelScope(shield=True):
            await self._process.stdin.aclose()  # type: ignore[union-attr]
            with anyio.move_on_after(STOP_GRACE_SECONDS):
                await self._process.wait()
                return
            self.kill()
            await self._process.wait()

    @property
    def alive(self) -> bool:
        return self._process.returncode is None

    def kill(self) -> None:
        self.ended_on_purpose = True
        if self._process.returncode is None:
            self._process.kill()

    async def _relay_stderr(self) -> None:
        """Pass the worker's log to ours, line by line, and keep the last lines for crash reports."""
        pending = b""
        try:
            async for chunk in self._process.stderr:  # type: ignore[union-attr]
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._log(line)
            if pending:
                self._log(pending)
        finally:
            self._stderr_done.set()

    def _log(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip()
        if not line:  # native code's stray blank stdout lines end up here; they say nothing
            return
        self._stderr_tail.append(line)
        sys.stderr.write(f"[{self.label}] {line}\n")
        sys.stderr.flush()
