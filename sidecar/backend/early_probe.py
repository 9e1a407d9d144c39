"""The backend probe: a short-lived process that loads the native library and reports on it.

`initialize` reports facts only a process that loads the native library can know; the front never
loads it. Started when `initialize` arrived, that process's own start (interpreter, imports, native
library: about 100 ms) came on top of the front's; started here, first thing in a serving
invocation, before the front imports anything heavy, the two overlap. Better still, its answer is
cached per build and machine (probe_cache.py): a launch that finds one starts no probe here, and
the backend checks the answer again in the background once the host has been answered. A
sub-command or --help/--version starts none.
"""

from __future__ import annotations

import subprocess
import sys

_NOT_SERVING = {"synth-model", "selftest", "worker", "probe", "-h", "--help", "--version"}
_started: subprocess.Popen[bytes] | None = None
_cached: bytes | None = None
_key: str | None = None


def spawn() -> subprocess.Popen[bytes]:
    from ..worker.command import probe_command

    return subprocess.Popen(probe_command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def start(argv: list[str]) -> None:
    """In a serving launch: take the answer cached for this build and machine, else start the probe."""
    global _started, _cached, _key
    if not _NOT_SERVING.isdisjoint(argv):
        return
    from . import probe_cache

    _key = probe_cache.key(format_version())
    if (_cached := probe_cache.read(_key)) is None:
        _started = spawn()


def format_version() -> str:
    """The probe answer's shape, from the message's own fields (msgspec: light enough to import here)."""
    from ..worker import messages

    return ",".join((*messages.ProbeResult.__struct_fields__, *messages.Device.__struct_fields__))


def cached() -> tuple[str | None, bytes | None]:
    """This launch's cache key and the answer stored under it (None: none, or not a serving launch)."""
    return _key, _cached


def take() -> subprocess.Popen[bytes] | None:
    """The process started here, once (the first probe takes it); None if none was started."""
    global _started
    process, _started = _started, None
    return process


def answer(process: subprocess.Popen[bytes]):
    """Blocking (run it in a thread): the probe's one reply, once it has ended.

    Raises WorkerExited if it died without one. Its log lines are passed on to stderr.
    """
    from ..worker import messages
    from ..worker.process import WorkerExited

    assert process.stdout is not None and process.stderr is not None
    output, errors = process.communicate()
    log = [line.decode("utf-8", "replace").rstrip() for line in errors.splitlines()]
    for line in filter(None, log):
        sys.stderr.write(f"[probe] {line}\n")
    header = output[: messages.HEADER.size]
    if process.returncode != 0 or len(header) != messages.HEADER.size:
        raise WorkerExited(process.returncode, log[-20:])
    (size,) = messages.HEADER.unpack(header)
    return messages.from_worker_decoder.decode(output[messages.HEADER.size : messages.HEADER.size + size])
