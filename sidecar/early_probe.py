"""The backend probe worker, started first thing so that it starts while the front imports.

`initialize` reports facts only a process that loads the native library can know; the front never
loads it, so it asks a short-lived worker. Started when `initialize` arrives, that worker's own
start (interpreter, imports, native library: about 100 ms) came on top of the front's; started
here, before the front imports anything heavy, the two overlap. Only a serving invocation starts
one: a sub-command or --help/--version needs no probe.
"""

from __future__ import annotations

import subprocess
import sys

_NOT_SERVING = {"synth-model", "selftest", "worker", "-h", "--help", "--version"}
_started: subprocess.Popen[bytes] | None = None


def start(argv: list[str]) -> None:
    global _started
    if _NOT_SERVING.isdisjoint(argv):
        from .worker.command import worker_command

        # The probe logs nothing at any level, so the level is the default's.
        _started = subprocess.Popen(
            worker_command("info"), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )


def take() -> subprocess.Popen[bytes] | None:
    """The worker started here, once (the first probe takes it); None if none was started."""
    global _started
    process, _started = _started, None
    return process


def ask(process: subprocess.Popen[bytes]):
    """Blocking (run it in a thread): send the probe request, return the reply, end the worker.

    Raises WorkerExited if the worker died first. Its log lines are passed on to stderr.
    """
    from .worker import messages
    from .worker.process import WorkerExited

    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    try:
        process.stdin.write(messages.frame(messages.Probe()))
        process.stdin.flush()
        header = process.stdout.read(messages.HEADER.size)
        (size,) = messages.HEADER.unpack(header) if len(header) == messages.HEADER.size else (None,)
        payload = process.stdout.read(size) if size is not None else b""
        reply = messages.from_worker_decoder.decode(payload) if size is not None and len(payload) == size else None
    except BrokenPipeError:
        reply = None
    finally:
        process.stdin.close()  # ends the worker
    log = [line.decode("utf-8", "replace").rstrip() for line in process.stderr.read().splitlines()]
    for line in filter(None, log):
        sys.stderr.write(f"[probe] {line}\n")
    returncode = process.wait()
    if reply is None:
        raise WorkerExited(returncode, log[-20:])
    return reply
