"""What a weights file holds, read from its header alone: each tensor's name, weight type and shape.

Safetensors (a JSON header) and GGUF (a binary header: key/value metadata, then the tensor table)
are read here; a diffusers folder is its weight files together. Nothing here reads tensor data, so
a header costs a few kilobytes of reading whatever the file's size. Blocking file reads: call these
off the event loop.

Shapes are in ggml's order, innermost dimension first (a PyTorch `[out, in, 3, 3]` conv weight is
`[3, 3, in, out]`): the order in which stable-diffusion.cpp decides what it can quantize.
"""

from __future__ import annotations

import json
import math
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..worker.native_files import DIFFUSERS_PARTS, DIFFUSERS_UNET, open_regular

MAX_HEADER_BYTES = 100_000_000  # safetensors caps its header at 100 MB; GGUF tables stay far below
GGUF_MAGIC = b"GGUF"

# ggml's type ids (also stable-diffusion.cpp's `sd_type_t`) -> (name, elements per block, bytes per block).
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("f32", 1, 4), 1: ("f16", 1, 2), 2: ("q4_0", 32, 18), 3: ("q4_1", 32, 20), 6: ("q5_0", 32, 22),
    7: ("q5_1", 32, 24), 8: ("q8_0", 32, 34), 9: ("q8_1", 32, 36), 10: ("q2_K", 256, 84),
    11: ("q3_K", 256, 110), 12: ("q4_K", 256, 144), 13: ("q5_K", 256, 176), 14: ("q6_K", 256, 210),
    15: ("q8_K", 256, 292), 24: ("i8", 1, 1), 25: ("i16", 1, 2), 26: ("i32", 1, 4), 27: ("i64", 1, 8),
    28: ("f64", 1, 8), 30: ("bf16", 1, 2),
}  # fmt: skip
BLOCKS = {name: (elements, size) for name, elements, size in GGML_TYPES.values()}
SAFETENSORS_TYPES = {
    "F64": "f64", "F32": "f32", "F16": "f16", "BF16": "bf16", "I64": "i64", "I32": "i32", "I16": "i16",
    "I8": "i8", "U8": "u8", "BOOL": "bool",
}  # fmt: skip
class UnreadableHeader(Exception):
    """Not a weights file whose header this module reads; the message says why."""


@dataclass(frozen=True)
class Tensor:
    name: str
    type: str
    """ggml's name for its weight type (`f16`, `q8_0`, ...)."""
    shape: tuple[int, ...]
    """ggml order: innermost dimension first."""

    @property
    def elements(self) -> int:
        return math.prod(self.shape)


def read_tensors(path: str | Path) -> list[Tensor]:
    """Every tensor of a safetensors or GGUF file, or of a diffusers folder's weight files."""
    path = Path(path)
    if path.is_dir():
        files = [path / relative for relative in (DIFFUSERS_UNET, *DIFFUSERS_PARTS) if (path / relative).is_file()]
        return [tensor for file in files for tensor in read_tensors(file)]
    with open_regular(str(path)) as file:
        if file.read(4) == GGUF_MAGIC:
            return _gguf(file)
        file.seek(0)
        return _safetensors(file)


def type_counts(tensors: list[Tensor]) -> dict[str, int]:
    """Tensors per weight type, most common first."""
    return dict(Counter(tensor.type for tensor in tensors).most_common())


def size_at(tensor: Tensor, type_name: str) -> int:
    """Bytes `tensor` takes stored as `type_name` (rounded up to whole blocks)."""
    elements, size = BLOCKS[type_name]
    rows = tensor.elements // tensor.shape[0] if tensor.shape else 1
    return rows * math.ceil((tensor.shape[0] if tensor.shape else 1) / elements) * size


def _safetensors(file: BinaryIO) -> list[Tensor]:
    size = int.from_bytes(file.read(8), "little")
    if not 2 <= size <= MAX_HEADER_BYTES:
        raise UnreadableHeader("not a safetensors file (its header size is not valid)")
    try:
        header = json.loads(file.read(size))
    except (ValueError, RecursionError):
        raise UnreadableHeader("not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise UnreadableHeader("not a safetensors file (its header is not an object)")
    tensors = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape = SAFETENSORS_TYPES.get(entry["dtype"], entry["dtype"].lower()), entry["shape"]
        except (TypeError, KeyError, AttributeError):
            raise UnreadableHeader(f"not a safetensors file (tensor {name!r} has no dtype and shape)") from None
        tensors.append(Tensor(name, dtype, tuple(reversed(shape))))
    return tensors


class _Reader:
    """Little-endian GGUF fields, with the end of the file caught as an unreadable header."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file

    def read(self, fmt: str) -> int | float:
        size = struct.calcsize(fmt)
        data = self._file.read(size)
        if len(data) != size:
            raise UnreadableHeader("not a GGUF file (its header ends early)")
        return struct.unpack("<" + fmt, data)[0]

    def string(self) -> str:
        length = int(self.read("Q"))
        if length > MAX_HEADER_BYTES:
            raise UnreadableHeader("not a GGUF file (a string in its header is too long)")
        data = self._file.read(length)
        if len(data) != length:
            raise UnreadableHeader("not a GGUF file (its header ends early)")
        return data.decode("utf-8", "replace")

    def skip_value(self, kind: int) -> None:
        scalars = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
        if kind in scalars:
            self.read(scalars[kind])
        elif kind == 8:
            self.string()
        elif kind == 9:
            item_kind, count = int(self.read("I")), int(self.read("Q"))
            if count > MAX_HEADER_BYTES:
                raise UnreadableHeader("not a GGUF file (an array in its header is too long)")
            for _ in range(count):
                self.skip_value(item_kind)
        else:
            raise UnreadableHeader(f"not a GGUF file (unknown metadata value type {kind})")


def _gguf(file: BinaryIO) -> list[Tensor]:
    reader = _Reader(file)
    version = reader.read("I")
    if version not in (2, 3):
        raise UnreadableHeader(f"a GGUF version this sidecar does not read ({version})")
    tensor_count, metadata_count = int(reader.read("Q")), int(reader.read("Q"))
    if tensor_count > 1_000_000 or metadata_count > 1_000_000:
        raise UnreadableHeader("not a GGUF file (its counts are not plausible)")
    for _ in range(metadata_count):
        reader.string()
        reader.skip_value(int(reader.read("I")))
    tensors = []
    for _ in range(tensor_count):
        name = reader.string()
        dimensions = int(reader.read("I"))
        if dimensions > 8:
            raise UnreadableHeader(f"not a GGUF file (tensor {name!r} has {dimensions} dimensions)")
        shape = tuple(int(reader.read("Q")) for _ in range(dimensions))
        type_id = int(reader.read("I"))
        reader.read("Q")  # the tensor's data offset
        type_name = GGML_TYPES[type_id][0] if type_id in GGML_TYPES else f"type{type_id}"
        tensors.append(Tensor(name, type_name, shape))
    return tensors
