"""Keep stdout for protocol bytes only.

Native code (stable-diffusion.cpp, ggml) prints to file descriptor 1 whenever it likes. Before
anything native runs, the protocol takes a private duplicate of the real stdout, and fd 1 is
pointed at stderr, so a stray native print lands in the log instead of corrupting the stream.
Python's own `sys.stdout` follows fd 1 to stderr as well.
"""

from __future__ import annotations

import os
import sys
from typing import BinaryIO


def claim_stdout() -> BinaryIO:
    """Return a private binary file on the original stdout, and send fd 1 to stderr from now on."""
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(protocol_fd, "wb", buffering=0)


def write_all(sink: BinaryIO, data: bytes) -> None:
    """Write every byte: a single write to a pipe may take only part of a large message."""
    view = memoryview(data)
    while view:
        view = view[os.write(sink.fileno(), view) :]
