"""`diffusion`'s `lora`: the files checked before any work, and named as A1111 names them.

LoRAs apply to one request only. Models load with `lora_apply_mode` at_runtime unless the host
sets it (`DEFAULT_LORA_APPLY_MODE` in handlers/load_model.py): the LoRA is computed beside the untouched weights, so a request without it gets exactly
a fresh model's pixels. The native default for unquantized weights (`auto` = immediately) patches
the weights in place and subtracts the LoRA afterwards, which in f16 does not restore them (after
one LoRA a fifth of the pixels differ). What at_runtime costs per step: `make bench` item `lora`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from typing import BinaryIO

import anyio
import msgspec
from diffusion_sidecar_protocol.types import LoraSpec

from ..rpc.errors import invalid_params, limit_exceeded
from ..runtime.context import RequestContext
from ..worker import messages
from ..worker.native_files import open_regular
from .file_sources import checked_files

# A safetensors header longer than this is not a LoRA's (the format itself caps it at 100 MB).
MAX_HEADER_BYTES = 100 * 1024 * 1024
# Tensor-name parts of the LoRA layouts stable-diffusion.cpp reads: kohya, peft/diffusers, LoHa, LoKr.
LORA_TENSOR_MARKERS = ("lora_down", "lora_up", "lora.down", "lora.up", "lora_A", "lora_B", "hada_w1", "lokr_w1")
SHORT_HASH_LENGTH = 12  # A1111's `shorthash`


def requested(lora: str | list[LoraSpec] | msgspec.UnsetType) -> list[tuple[str, LoraSpec]]:
    """Each requested LoRA with the field that names its path (for errors)."""
    if lora is msgspec.UNSET:
        return []
    if isinstance(lora, str):
        return [("lora", LoraSpec(path=lora))]
    return [(f"lora[{index}].path", spec) for index, spec in enumerate(lora)]


async def resolve(
    lora: str | list[LoraSpec] | msgspec.UnsetType, max_loras: int, root: str | None, ctx: RequestContext
) -> list[messages.Lora]:
    """The request's LoRAs, checked like model files (sources downloaded); file system work runs off
    the event loop."""
    specs = requested(lora)
    if len(specs) > max_loras:
        raise limit_exceeded("lora", "maxLoras", max_loras, len(specs))
    paths = await checked_files(ctx, {field: ("lora", spec.path) for field, spec in specs}, root)
    loras: list[messages.Lora] = []
    for field, spec in specs:
        path = paths[field]
        if any(lora.path == path for lora in loras):
            raise invalid_params(field, "names a file already in the list (give it one weight instead)")
        short_hash = await anyio.to_thread.run_sync(_identified, field, path)
        name = os.path.splitext(os.path.basename(path))[0].replace(":", "").replace(",", "")
        loras.append(messages.Lora(path=path, weight=spec.weight, name=name, short_hash=short_hash, field=field))
    return loras


def _identified(field: str, path: str) -> str:
    """The LoRA's short hash, or an error naming `field` when the file cannot be a LoRA."""
    try:
        stat = os.stat(path)
        return _short_hash(path, stat.st_size, stat.st_mtime_ns)
    except NotALora as error:
        raise invalid_params(field, str(error)) from None
    except OSError as error:  # changed since it was checked
        raise invalid_params(field, f"must be readable ({error.strerror})") from None


class NotALora(Exception):
    """The file cannot be a LoRA; the message is the rule it breaks."""


@functools.lru_cache(maxsize=256)
def _short_hash(path: str, size: int, mtime_ns: int) -> str:
    """A1111's LoRA hash: for safetensors the sha256 of everything after the header (kohya's
    "addnet" hash, unchanged by metadata edits), else of the whole file; its first 12 digits.

    Cached by file identity (size, mtime): a host reuses a few LoRAs over many requests. A
    safetensors file whose header names no LoRA tensor is refused here, before the native library
    would silently generate without it.
    """
    digest = hashlib.sha256()
    with open_regular(path) as file:
        if path.lower().endswith(".safetensors"):
            _check_lora_header(file, size)
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:SHORT_HASH_LENGTH]


def _check_lora_header(file: BinaryIO, size: int) -> None:
    header_size = int.from_bytes(file.read(8), "little")
    if not 2 <= header_size <= min(MAX_HEADER_BYTES, size - 8):
        raise NotALora("must be a safetensors file (its header size is not valid)")
    try:
        header = json.loads(file.read(header_size))
    except (ValueError, RecursionError):
        raise NotALora("must be a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict) or not any(marker in name for name in header for marker in LORA_TENSOR_MARKERS):
        raise NotALora("must be a LoRA file (kohya, peft, LoHa or LoKr tensors); this one has none")
