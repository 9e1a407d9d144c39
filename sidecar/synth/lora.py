"""Write a synthetic kohya-format LoRA for the synthetic SD1 model (`synth-model --kind lora`).

Rank 4 over every attention projection, `proj_in`/`proj_out` and feed-forward layer of the UNet
and every attention and MLP layer of the CLIP text encoder: 180 modules, 540 tensors, about 1.6M
parameters. Both factors are random (a trained LoRA starts with `lora_up` at zero; this one must
change pictures visibly from the first use), sized so that the weight delta is as large as the
base weight it patches. Deterministic: each tensor is seeded by its own name, like the model's.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from .sd1 import load_manifest, write_safetensors

RANK = 4
UNET_FILE = "unet/diffusion_pytorch_model.safetensors"
TEXT_ENCODER_FILE = "text_encoder/model.safetensors"
UNET_LAYERS = (".attn1.", ".attn2.", ".proj_in.", ".proj_out.", ".ff.")
TEXT_ENCODER_LAYERS = (".self_attn.", ".mlp.")


def _kohya_name(prefix: str, weight_name: str) -> str:
    """kohya's module name: the weight's module path with underscores for dots."""
    return prefix + weight_name.removesuffix(".weight").replace(".", "_")


def lora_tensors() -> list[tuple[str, list[int]]]:
    """Name and shape of every tensor, in file order: down, up and alpha per patched layer."""
    manifest = load_manifest()
    targets = [
        ("lora_unet_", name, shape)
        for name, shape in manifest[UNET_FILE]
        if name.endswith(".weight") and len(shape) >= 2 and any(layer in name for layer in UNET_LAYERS)
    ] + [
        ("lora_te_", name, shape)
        for name, shape in manifest[TEXT_ENCODER_FILE]
        if name.endswith(".weight") and any(layer in name for layer in TEXT_ENCODER_LAYERS)
    ]
    tensors = []
    for prefix, name, shape in targets:
        module = _kohya_name(prefix, name)
        out_features, in_features, kernel = shape[0], shape[1], shape[2:]  # kernel: [1, 1] for 1x1 convs
        tensors.append((f"{module}.lora_down.weight", [RANK, in_features, *kernel]))
        tensors.append((f"{module}.lora_up.weight", [out_features, RANK, *kernel]))
        tensors.append((f"{module}.alpha", []))
    return tensors


def lora_values(name: str, shape: list[int]) -> np.ndarray:
    """alpha = rank (scale 1); each factor a unit normal scaled by its fan-in, so up @ down has the
    variance of a fan-in scaled weight."""
    if name.endswith(".alpha"):
        return np.array(RANK, dtype=np.float16)
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    rng = np.random.Generator(np.random.PCG64(seed))
    fan_in = int(np.prod(shape[1:]))
    return (rng.standard_normal(shape, dtype=np.float32) / np.float32(np.sqrt(fan_in))).astype(np.float16)


def write_synthetic_lora(path: str | os.PathLike[str]) -> Path:
    """Write the LoRA file at `path` (its folder is created if needed) and return its path."""
    target = Path(path).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(target, lora_tensors(), lora_values)
    return target
