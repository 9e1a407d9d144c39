"""Write a synthetic-weights model that stable-diffusion.cpp loads and runs.

The architecture is real (an SD1.x tiny-UNet pipeline in the diffusers folder layout, about 530M
parameters in fp16); the weights are random. Its pictures are noise: it exists so that tests and
the demo exercise the real native backend end to end without downloading any weights.

The output is deterministic: every tensor is drawn from a generator seeded by the tensor's own
name, so the same manifest always gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np

# Written beside the weights so that anyone who opens the folder knows what it is.
MODEL_CARD = {
    "_class_name": "StableDiffusionPipeline",
    "_synthetic": (
        "Random weights written by `diffusion-sidecar synth-model`. The architecture is a real "
        "SD1.x tiny UNet, but every picture it makes is noise."
    ),
}


def _manifest_text() -> str:
    return resources.files("sidecar.synth").joinpath("manifest.json").read_text()


def load_manifest() -> dict[str, list[tuple[str, list[int]]]]:
    files = json.loads(_manifest_text())["files"]
    return {path: [(name, shape) for name, shape in tensors] for path, tensors in files.items()}


def default_cache_dir() -> Path:
    """Where tests and the demo keep the model: $DIFFUSION_SIDECAR_CACHE, else the user cache.

    The folder name carries the manifest's digest, so a changed architecture is written anew.
    """
    base = os.environ.get("DIFFUSION_SIDECAR_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "diffusion-sidecar"
    )
    digest = hashlib.sha256(_manifest_text().encode()).hexdigest()[:12]
    return Path(base) / f"synthetic-model-{digest}"


def tensor_values(name: str, shape: list[int]) -> np.ndarray:
    """Fan-in scaled normal weights, unit norm weights, zero biases, as fp16."""
    if name.endswith(".bias"):
        return np.zeros(shape, dtype=np.float16)
    if len(shape) == 1:  # every 1-D weight in this architecture is a norm's scale
        return np.ones(shape, dtype=np.float16)
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    rng = np.random.Generator(np.random.PCG64(seed))
    fan_in = math.prod(shape[1:])
    values = rng.standard_normal(shape, dtype=np.float32) / np.float32(math.sqrt(fan_in))
    return values.astype(np.float16)


def write_safetensors(
    path: Path,
    tensors: list[tuple[str, list[int]]],
    values: Callable[[str, list[int]], np.ndarray] = tensor_values,
) -> None:
    """The safetensors layout: u64 header size, JSON header, then the raw tensor bytes in order.

    `values` gives each tensor's fp16 values from its name and shape, one tensor at a time.
    """
    header: dict[str, object] = {"__metadata__": {"format": "pt", "synthetic": "random weights"}}
    offset = 0
    for name, shape in tensors:
        size = math.prod(shape) * 2
        header[name] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    header_bytes += b" " * (-len(header_bytes) % 8)  # the format asks for 8-byte alignment
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as f:
        f.write(len(header_bytes).to_bytes(8, "little"))
        f.write(header_bytes)
        for name, shape in tensors:
            f.write(values(name, shape).tobytes())
    os.replace(partial, path)


def write_synthetic_model(directory: str | os.PathLike[str]) -> Path:
    """Write the model into `directory` (created if needed) and return its path.

    Files already complete are kept, so a cache directory can be reused; a file is only ever
    visible under its final name once fully written.
    """
    root = Path(directory).resolve()
    for relative, tensors in load_manifest().items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            write_safetensors(target, tensors)
    (root / "model_index.json").write_text(json.dumps(MODEL_CARD, indent=2) + "\n")
    return root
