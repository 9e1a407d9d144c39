"""`convert`'s inputs checked before any native work, and what its output holds, told afterwards.

stable-diffusion.cpp's converter writes GGUF, or safetensors when the output's name ends so; a
safetensors file holds only float types (`f32`, `f16`, `bf16`), so a quantized type there is
refused here rather than after the whole model has been read. `tensorTypeRules` is the library's
`pattern=type,...` list (the first pattern found in a tensor's name gives its type); each pattern
must compile and each type be one the library writes.

The converter leaves some tensors at their stored type whatever is asked (`model.cpp`,
`tensor_should_be_converted`): those whose innermost dimension is not a whole number of the type's
blocks (every 3x3 conv: its innermost dimension is 3), biases, `.scale` vectors, and embeddings and
the input/output layers it keeps by name. `unquantized` sorts the output's tensors that are not of
the asked type by those reasons, read from the written file.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

from diffusion_sidecar_protocol.types import WeightType

from ..rpc.errors import invalid_params
from . import weight_files
from .weight_files import BLOCKS, Tensor

FLOAT_TYPES = ("f32", "f16", "bf16")
OUTPUT_SUFFIXES = (".gguf", ".safetensors")
WEIGHT_TYPES: tuple[str, ...] = WeightType.__args__  # type: ignore[attr-defined]
# Name parts of the tensors the library never converts (embeddings, and FLUX/MMDiT/UNet input and
# output layers), in the order it checks them.
KEPT_BY_NAME = (
    "img_in.", "txt_in.", "time_in.", "vector_in.", "guidance_in.", "final_layer.", "x_embedder.",
    "t_embedder.", "y_embedder.", "pos_embed", "context_embedder.", "time_embed.", "label_emb.", "embedding",
)  # fmt: skip
HEADER_ALLOWANCE = 1_000_000 + 512  # bytes per output file, plus per tensor below


def parse_rules(field: str, text: str) -> list[tuple[re.Pattern[str], str]]:
    """The rules as the library reads them, or INVALID_PARAMS naming `field` and the broken rule."""
    rules = []
    for item in text.split(","):
        if not item:
            continue
        pattern, equals, type_name = item.partition("=")  # the first `=`, as the library splits
        if not equals or not pattern:
            raise invalid_params(field, f"each rule is `pattern=type`; {item!r} is not")
        if type_name not in WEIGHT_TYPES:
            raise invalid_params(field, f"{item!r}: the type must be one of {', '.join(WEIGHT_TYPES)}")
        try:
            rules.append((re.compile(pattern), type_name))
        except re.error as error:
            raise invalid_params(field, f"{item!r}: the pattern is not a regular expression ({error})") from None
    return rules


def check_format(output: str, type_name: str, rules: list[tuple[re.Pattern[str], str]]) -> None:
    if Path(output).suffix.lower() != ".safetensors":
        return
    if type_name not in FLOAT_TYPES:
        raise invalid_params(
            "type", f"a .safetensors output holds only {', '.join(FLOAT_TYPES)}; write a .gguf for {type_name}"
        )
    if quantized := [rule for _, rule in rules if rule not in FLOAT_TYPES]:
        raise invalid_params(
            "tensorTypeRules", f"a .safetensors output holds only {', '.join(FLOAT_TYPES)}, not {quantized[0]}"
        )


def needed_bytes(inputs: list[str], type_name: str) -> int:
    """An upper bound of the output's size: each tensor at the larger of its stored size and its
    size at `type_name` (the converter may leave any tensor as stored). A file whose header this
    sidecar does not read (a pickled .ckpt) counts at its own size, twice that for `f32`."""
    total = HEADER_ALLOWANCE
    for path in inputs:
        try:
            tensors = weight_files.read_tensors(path)
        except (OSError, weight_files.UnreadableHeader):
            size = os.stat(path).st_size
            total += size * (2 if type_name == "f32" else 1)
            continue
        for tensor in tensors:
            stored = weight_files.size_at(tensor, tensor.type) if tensor.type in BLOCKS else tensor.elements * 8
            total += max(stored, weight_files.size_at(tensor, type_name)) + 512
    return total


def unquantized(tensors: list[Tensor], type_name: str, rules: list[tuple[re.Pattern[str], str]]) -> dict[str, int]:
    """The tensors not stored as `type_name`, counted by why the converter left them so."""
    elements = BLOCKS[type_name][0]
    reasons: Counter[str] = Counter()
    for tensor in tensors:
        if tensor.type == type_name:
            continue
        if any(pattern.search(tensor.name) for pattern, _ in rules):
            reasons["rule"] += 1
        elif tensor.shape and tensor.shape[0] % elements:
            reasons["shape"] += 1
        elif tensor.name.endswith(".bias"):
            reasons["bias"] += 1
        elif tensor.name.endswith(".scale"):
            reasons["scale"] += 1
        elif any(part in tensor.name for part in KEPT_BY_NAME):
            reasons["embedding"] += 1
        else:
            reasons["other"] += 1
    return dict(reasons.most_common())
