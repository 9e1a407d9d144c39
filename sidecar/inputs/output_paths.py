"""Checking a path the sidecar is asked to write, before any work: the "checked for writing" rule.

`convert` writes a file the host names. It is refused up front (INVALID_PARAMS naming the field, or
PATH_NOT_ALLOWED) rather than after minutes of native work: when the file exists and the host did
not say `overwrite`, when it is one of the request's own inputs, when its folder is missing or not
writable, when it resolves outside `--models-root` (the folder a host confines the sidecar's model
files to, for writing as for reading), or when the disk lacks room for it. Blocking file system
calls: run `checked_output` off the event loop.

The file itself is written under a temporary name beside it and renamed once complete (`partial_path`,
`publish`), so a cancelled or failed write never leaves a partial file under the name asked for.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from pathlib import Path

from ..rpc.errors import SidecarError, invalid_params

MB = 1_000_000


def checked_output(
    field: str,
    value: str,
    root: str | None,
    *,
    suffixes: tuple[str, ...],
    overwrite: bool,
    inputs: list[str],
    needed_bytes: int,
) -> str:
    """The absolute path to write, or an error naming `field` and the rule it breaks."""
    if not value:
        raise invalid_params(field, "must name the file to write")
    path = Path(value).expanduser()
    if path.suffix.lower() not in suffixes:
        raise invalid_params(field, f"must end in one of: {', '.join(suffixes)} (the format follows the name)")
    folder = path.parent
    try:
        resolved_folder = folder.resolve(strict=True)
    except OSError:
        raise invalid_params(field, f"its folder must exist ({str(folder)!r} does not)") from None
    if not resolved_folder.is_dir():
        raise invalid_params(field, f"its folder must be a folder ({str(folder)!r} is not)")
    target = resolved_folder / path.name
    if root is not None:
        allowed = Path(root).resolve()
        # Resolved like any path the sidecar reads: a symlink at the name is followed too.
        if not target.resolve().is_relative_to(allowed):
            raise SidecarError(
                "PATH_NOT_ALLOWED",
                f"`{field}` resolves outside the models folder this sidecar may write ({allowed})",
                field=field,
                rule=f"must resolve inside {allowed}",
            )
    if any(target.resolve() == Path(source).resolve() for source in inputs):
        raise invalid_params(field, "must not be one of the files it is made from")
    try:
        mode = target.lstat().st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None:
        if not stat.S_ISREG(mode):
            raise invalid_params(field, "exists and is not a regular file")
        if not overwrite:
            raise invalid_params(field, "exists already; set `overwrite: true` to replace it")
    if not os.access(resolved_folder, os.W_OK | os.X_OK):
        raise invalid_params(field, f"its folder must be writable ({resolved_folder} is not)")
    free = shutil.disk_usage(resolved_folder).free
    if free < needed_bytes:
        raise invalid_params(
            field,
            f"needs about {needed_bytes / MB:.0f} MB free on its disk, which has {free / MB:.0f} MB",
        )
    return str(target)


def partial_path(target: str) -> str:
    """A hidden name beside `target` to write it under first; it keeps the suffix (writers choose
    the format by it) and a random part (two writes of one name never share a partial file)."""
    path = Path(target)
    return str(path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial{path.suffix}"))


def publish(field: str, partial: str, target: str, *, overwrite: bool) -> None:
    """Give the complete file its name. Without `overwrite`, a file that appeared at the name since
    the check is kept, and the write fails instead (a hard link never replaces)."""
    if overwrite:
        os.replace(partial, target)
        return
    try:
        os.link(partial, target)
    except FileExistsError:
        raise invalid_params(field, "exists already; set `overwrite: true` to replace it") from None
    except OSError:  # a file system without hard links: the rename, with the check just before it
        if os.path.lexists(target):
            raise invalid_params(field, "exists already; set `overwrite: true` to replace it") from None
        os.replace(partial, target)
    finally:
        discard(partial)


def discard(partial: str) -> None:
    try:
        os.unlink(partial)
    except FileNotFoundError:
        pass
