"""The model's hash for each PNG's `Model hash`, as A1111 writes it, so tools that read the parameters
(sd-parsers, model sites, A1111's PNG info) can find the model again.

A1111's value is the first 10 hex digits of the SHA-256 of the checkpoint file. What is hashed here:
- a single file (`.safetensors`, `.ckpt`, `.gguf`): the whole file, exactly as A1111 does;
- a diffusers folder: its UNet's weights file (`unet/diffusion_pytorch_model.safetensors`), the file
  that makes it this model;
- a standalone diffusion model with separate text encoders and VAE (FLUX): the diffusion model file,
  `modelPath`, as Forge does (the companions are not part of the hash).

Hashing reads the whole file: about a second per GB here. It runs in a thread, at the same time as
the model loads (the load reads the same file, so one of them mostly finds it in the page cache),
once per file: cached by path, size and modification time. `modelConfig.hash: false` turns it off
for files too large to be worth it; the PNG then has `Model` without `Model hash`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Awaitable, Callable
from typing import TypeVar
from pathlib import Path

import anyio
import anyio.from_thread
import anyio.to_thread

from ..rpc.errors import SidecarError
from ..runtime.models import ModelSettings
from ..worker.native_files import DIFFUSERS_UNET, open_regular

T = TypeVar("T")
LENGTH = 10  # A1111's `model_hash`: sha256, first 10 digits
# One buffer, read into again and again: a fresh 4 MiB `bytes` per read would raise glibc's mmap
# threshold, and the freed chunks would stay in the front's resident memory.
CHUNK = 1 << 20


def hashed_file(model_path: str) -> str:
    """The file whose hash stands for the model at `model_path`."""
    return str(Path(model_path) / DIFFUSERS_UNET) if os.path.isdir(model_path) else model_path


async def while_loading(settings: ModelSettings, model_path: str | None, loading: Awaitable[T]) -> T:
    """Await `loading` while the model's hash is read into `settings` (nothing read when `model_path`
    is None). A load that fails or is cancelled stops the hashing, and ends with its own error."""
    failure: SidecarError | None = None
    async with anyio.create_task_group() as group:
        if model_path is not None:
            group.start_soon(_fill_in, settings, model_path)
        try:
            result = await loading
        except SidecarError as error:  # raised here, not from the group: it would wrap it
            failure = error
            group.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return result


async def _fill_in(settings: ModelSettings, model_path: str) -> None:
    try:
        settings.model_hash = await anyio.to_thread.run_sync(
            _hash_of, hashed_file(model_path), anyio.from_thread.check_cancelled
        )
    except OSError:  # unreadable now: the PNG goes without a hash rather than the load failing
        settings.model_hash = None


# By file identity (path, size, modification time): a host loads the same files again and again
# (other options, a restart of its UI), and a 12 GB model takes seconds to hash.
_known: dict[tuple[str, int, int], str] = {}


def _hash_of(path: str, check_cancelled: Callable[[], None] = lambda: None) -> str:
    stat = os.stat(path)
    key = (path, stat.st_size, stat.st_mtime_ns)
    if key not in _known:
        _known[key] = _sha256_prefix(path, check_cancelled)
    return _known[key]


def _sha256_prefix(path: str, check_cancelled: Callable[[], None]) -> str:
    digest = hashlib.sha256()
    buffer = memoryview(bytearray(CHUNK))
    with open_regular(path) as file:
        while count := file.readinto(buffer):
            digest.update(buffer[:count])
            check_cancelled()
    return digest.hexdigest()[:LENGTH]
