"""Checking the files a request names, off the event loop.

Every path a request gives (the model, its companion files, and later LoRA, upscaler and TAESD
files) goes through `checked_file`. The checks run in a worker thread: a path on a stalled network
mount blocks `stat` for as long as the mount is stalled, and the sidecar must keep answering
`initialize`, `cancel` and `shutdown` meanwhile. A cancelled check abandons its thread.

Only regular files (and diffusers folders where a model is expected) pass: opening a FIFO blocks
until someone writes to it, and a device or socket is never a model.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import anyio
import anyio.to_thread

from ..rpc.errors import SidecarError, invalid_params

MODEL_FILE_SUFFIXES = (".safetensors", ".ckpt", ".gguf", ".pt", ".pth")
DIFFUSERS_UNET = Path("unet") / "diffusion_pytorch_model.safetensors"

# Checks stuck on a stalled mount hold their threads; their own limiter keeps them from taking the
# threads that write to stdout.
_checks = anyio.CapacityLimiter(8)

_NOT_REGULAR = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


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
    path = Path(value).expanduser()
    kind = "an existing model file or diffusers folder" if allow_folder else "an existing file"
    if not value:
        raise invalid_params(field, f"must name {kind}", f"`{field}`: no such file: {value!r}")
    if root is not None:
        _check_inside(field, path, Path(root))
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise invalid_params(field, f"must name {kind}", f"`{field}`: no such file: {value!r}") from None
    except OSError as error:
        raise invalid_params(field, f"must be readable ({error.strerror})") from None
    if stat.S_ISDIR(mode):
        if not allow_folder:
            raise invalid_params(field, "must name a file, not a folder")
        if not _is_regular(path / DIFFUSERS_UNET):
            raise invalid_params(field, f"a model folder must be in the diffusers layout, with {DIFFUSERS_UNET}")
        return str(path.resolve())
    if not stat.S_ISREG(mode):
        what = _NOT_REGULAR.get(stat.S_IFMT(mode), "not a regular file")
        raise invalid_params(field, f"must name a regular file, not {what}")
    if path.suffix.lower() not in suffixes:
        raise invalid_params(field, f"must be one of: {', '.join(suffixes)}")
    _check_readable(field, path)
    return str(path.resolve())


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def _check_readable(field: str, path: Path) -> None:
    # O_NONBLOCK: should the file have been swapped for a FIFO since the stat, the open still returns.
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        raise invalid_params(field, f"must be readable ({error.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise invalid_params(field, "must name a regular file")
        if not os.read(descriptor, 8):
            raise invalid_params(field, "must not be empty")
    except OSError as error:
        raise invalid_params(field, f"must be readable ({error.strerror})") from None
    finally:
        os.close(descriptor)


def _check_inside(field: str, path: Path, root: Path) -> None:
    # Resolving follows every symlink and `..`, so what is checked is what would be opened.
    resolved, allowed = path.resolve(), root.resolve()
    if not resolved.is_relative_to(allowed):
        raise SidecarError(
            "PATH_NOT_ALLOWED",
            f"`{field}` resolves outside the models folder this sidecar may read ({allowed})",
            field=field,
            rule=f"must resolve inside {allowed}",
        )
