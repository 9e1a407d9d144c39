"""Checking the files a request names, off the event loop.

Every path a request gives (the model, its companion files, LoRAs) goes through `checked_file`,
and with it every file the native library will open because of it (a diffusers folder's parts:
`worker/native_files.py`, which the worker uses to check them all again right before its native
calls). The checks run in a worker thread: a path on a stalled network mount blocks `stat` for as
long as the mount is stalled, and the sidecar must keep answering `initialize`, `cancel` and
`shutdown` meanwhile. A cancelled check abandons its thread.

Only regular files (and diffusers folders where a model is expected) pass: opening a FIFO blocks
until someone writes to it, and a device or socket is never a model.
"""

from __future__ import annotations

import os

import anyio
import anyio.to_thread

from ..rpc.errors import invalid_params
from ..worker import native_files
from ..worker.native_files import NativeFile
from .c_strings import refuse_nul

MODEL_FILE_SUFFIXES = (".safetensors", ".ckpt", ".gguf", ".pt", ".pth")

# Checks stuck on a stalled mount hold their threads; their own limiter keeps them from taking the
# threads that write to stdout.
_checks = anyio.CapacityLimiter(8)


async def checked_file(
    field: str,
    value: str,
    root: str | None,
    *,
    allow_folder: bool = False,
    suffixes: tuple[str, ...] = MODEL_FILE_SUFFIXES,
) -> str:
    """The absolute path of a file the worker will be able to open, or an error naming `field`.

    With `allow_folder`, a diffusers model folder passes too.
    """
    return await anyio.to_thread.run_sync(
        _check, field, value, root, allow_folder, suffixes, abandon_on_cancel=True, limiter=_checks
    )


def _check(field: str, value: str, root: str | None, allow_folder: bool, suffixes: tuple[str, ...]) -> str:
    refuse_nul(field, value)
    kind = "an existing model file or diffusers folder" if allow_folder else "an existing file"
    given = NativeFile(field, os.path.expanduser(value), missing=f"must name {kind}")
    if not value:  # the current folder, to `realpath`
        raise native_files.refused(given, f"must name {kind}", message=f"no such file: {value!r}")
    real = native_files.resolved(given, root)
    if allow_folder and os.path.isdir(real):
        native_files.check_all(native_files.opened_for(field, real), root)
        return real
    real = native_files.check(given, root) or real
    # The name given decides: a symlink may point at a blob without a suffix (the Hugging Face cache).
    if os.path.splitext(given.path)[1].lower() not in suffixes:
        raise invalid_params(field, f"must be one of: {', '.join(suffixes)}")
    return real


