"""The synthetic-weights model: deterministic bytes, the initialisation the issue asks for."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np

from sidecar.synth.sd1 import load_manifest, tensor_values, write_safetensors


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def test_rewriting_a_file_gives_the_same_bytes(synthetic_model: str, tmp_path: Path) -> None:
    relative = "vae/diffusion_pytorch_model.safetensors"
    write_safetensors(tmp_path / "vae.safetensors", load_manifest()[relative])
    assert _sha256(tmp_path / "vae.safetensors") == _sha256(Path(synthetic_model) / relative)


def test_files_hold_every_manifest_tensor_in_fp16(synthetic_model: str) -> None:
    for relative, tensors in load_manifest().items():
        path = Path(synthetic_model) / relative
        with open(path, "rb") as file:
            header_size = int.from_bytes(file.read(8), "little")
            header = json.loads(file.read(header_size))
        header.pop("__metadata__")
        assert [(name, entry["shape"]) for name, entry in header.items()] == tensors
        assert {entry["dtype"] for entry in header.values()} == {"F16"}
        data_size = max(entry["data_offsets"][1] for entry in header.values())
        assert path.stat().st_size == 8 + header_size + data_size


def test_text_encoder_names_carry_the_prefix_stable_diffusion_cpp_expects() -> None:
    names = [name for name, _ in load_manifest()["text_encoder/model.safetensors"]]
    assert names and all(name.startswith("text_model.") for name in names)


def test_initialisation_is_fan_in_scaled_with_unit_norms_and_zero_biases() -> None:
    weight = tensor_values("down_blocks.0.resnets.0.conv1.weight", [320, 320, 3, 3]).astype(np.float32)
    assert abs(weight.std() * math.sqrt(320 * 9) - 1) < 0.02
    assert abs(weight.mean()) < 1e-3
    assert np.all(tensor_values("down_blocks.0.resnets.0.norm1.weight", [320]) == 1)
    assert np.all(tensor_values("down_blocks.0.resnets.0.conv1.bias", [320]) == 0)
    again = tensor_values("down_blocks.0.resnets.0.conv1.weight", [320, 320, 3, 3])
    other = tensor_values("down_blocks.0.resnets.0.conv2.weight", [320, 320, 3, 3])
    assert np.array_equal(weight.astype(np.float16), again) and not np.array_equal(again, other)


def test_synth_model_command_prints_the_model_path(synthetic_model: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sidecar", "synth-model", synthetic_model], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == synthetic_model
    assert "noise" in json.loads((Path(synthetic_model) / "model_index.json").read_text())["_synthetic"]


def test_without_a_path_each_kind_goes_where_the_tests_keep_it(synthetic_model: str, synthetic_flux: Path) -> None:
    """What the Node tests rely on to share the Python tests' cached models rather than write copies."""
    for kind, expected in (("sd1", synthetic_model), ("flux", str(synthetic_flux))):
        done = subprocess.run(
            [sys.executable, "-m", "sidecar", "synth-model", "--kind", kind], capture_output=True, text=True, check=True
        )
        assert done.stdout.strip() == expected
    refused = subprocess.run(
        [sys.executable, "-m", "sidecar", "synth-model", "--kind", "lora"], capture_output=True, text=True
    )
    assert refused.returncode == 2 and "needs PATH" in refused.stderr


def test_flux_kind_writes_its_three_files_deterministically(
    synthetic_flux: Path, synthetic_model: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sidecar", "synth-model", "--kind", "flux", str(tmp_path / "flux")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == str(tmp_path / "flux")
    for name in ("diffusion.safetensors", "clip_l.safetensors", "vae.safetensors"):
        assert _sha256(tmp_path / "flux" / name) == _sha256(synthetic_flux / name), name
    # CLIP-L is the SD1 model's text encoder, tensor for tensor.
    clip_l = _sha256(synthetic_flux / "clip_l.safetensors")
    assert clip_l == _sha256(Path(synthetic_model) / "text_encoder" / "model.safetensors")
    with open(synthetic_flux / "diffusion.safetensors", "rb") as file:
        header = json.loads(file.read(int.from_bytes(file.read(8), "little")))
    header.pop("__metadata__")
    assert 1.5e6 < sum(math.prod(entry["shape"]) for entry in header.values()) < 1.7e6


def test_taesd_kind_writes_the_tae_layout_deterministically(tmp_path: Path) -> None:
    from sidecar.synth.taesd import taesd_tensors

    paths = []
    for name in ("a", "b"):
        done = subprocess.run(
            [sys.executable, "-m", "sidecar", "synth-model", "--kind", "taesd", str(tmp_path / name / "taesd.safetensors")],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        paths.append(Path(done.stdout.strip()))
    assert _sha256(paths[0]) == _sha256(paths[1])
    tensors = dict(taesd_tensors())
    assert sum(math.prod(shape) for shape in tensors.values()) == 2_445_063  # TAESD's 2.45M
    # What stable-diffusion.cpp's tae.hpp builds for 4 latent channels and 64 features.
    assert tensors["decoder.layers.0.weight"] == [64, 4, 3, 3]
    assert tensors["decoder.layers.18.weight"] == [3, 64, 3, 3]
    assert tensors["encoder.layers.14.weight"] == [4, 64, 3, 3]
    assert "decoder.layers.6.bias" not in tensors and "decoder.layers.2.conv.4.weight" in tensors
def test_the_esrgan_kind_has_the_names_and_size_stable_diffusion_cpp_reads(tmp_path: Path) -> None:
    written = subprocess.run(
        [sys.executable, "-m", "sidecar", "synth-model", "--kind", "esrgan", str(tmp_path / "up.safetensors")],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    with open(written, "rb") as file:
        header = json.loads(file.read(int.from_bytes(file.read(8), "little")))
    header.pop("__metadata__")
    names = set(header)
    assert {"conv_first.weight", "conv_body.weight", "conv_up1.weight", "conv_up2.weight", "conv_hr.weight",
            "conv_last.weight"} <= names  # fmt: skip
    assert {f"body.0.rdb{d}.conv{c}.weight" for d in (1, 2, 3) for c in range(1, 6)} <= names
    assert not any(name.startswith("body.1.") for name in names)  # one RRDB block
    assert header["conv_last.weight"]["shape"] == [3, 64, 3, 3]
    assert header["body.0.rdb1.conv5.weight"]["shape"] == [64, 64 + 4 * 32, 3, 3]
    parameters = sum(math.prod(entry["shape"]) for entry in header.values())
    assert 850_000 < parameters < 900_000


def _parameters(tensors: list[tuple[str, list[int]]], prefix: str = "") -> int:
    return sum(math.prod(shape) for name, shape in tensors if name.startswith(prefix))


def test_full_size_kinds_have_the_sizes_and_names_the_library_builds_and_detects() -> None:
    from sidecar.synth import sd1_full, sdxl

    sd1, controlnet, vega = sd1_full.tensors(), sd1_full.controlnet_tensors(), sdxl.tensors()
    # SD1.5's published UNet (859.52M) and ControlNet (361.28M) sizes; Vega's UNet 745M, OpenCLIP-G's 694.7M.
    assert _parameters(sd1, "model.diffusion_model.") == 859_520_964
    assert 361.2e6 < _parameters(controlnet) < 361.3e6
    assert 745.2e6 < _parameters(vega, "model.diffusion_model.") < 745.3e6
    assert 694.6e6 < _parameters(vega, "conditioner.embedders.1.") < 694.8e6
    sd1_names, vega_names = dict(sd1), dict(vega)
    # What `get_sd_version` looks for: a middle attention makes SD1 full-size (not Tiny UNet); its
    # absence, with no second transformer block in output_blocks.3, makes SDXL "Vega".
    assert "model.diffusion_model.middle_block.1.proj_in.weight" in sd1_names
    assert not any(".middle_block.1." in name for name in vega_names)
    assert not any(".output_blocks.3.1.transformer_blocks.1." in name for name in vega_names)
    assert vega_names["model.diffusion_model.label_emb.0.0.weight"] == [1280, 2816]
    assert vega_names["model.diffusion_model.input_blocks.4.1.proj_in.weight"] == [640, 640]  # SDXL: linear
    assert sd1_names["model.diffusion_model.input_blocks.1.1.proj_in.weight"] == [320, 320, 1, 1]
    assert {name.split(".")[0] for name, _ in controlnet} == {"control_model"}
    assert dict(controlnet)["control_model.zero_convs.11.0.weight"] == [1280, 1280, 1, 1]


def test_full_size_values_are_fan_in_scaled_and_deterministic() -> None:
    from sidecar.synth.ldm_unet import values

    weight = values("model.diffusion_model.input_blocks.1.0.in_layers.2.weight", [320, 320, 3, 3]).astype(np.float32)
    # One exponent per tensor: the spread lands within a factor of sqrt(2) of the fan-in scale.
    assert 0.7 < weight.std() * math.sqrt(320 * 9) < 1.42
    assert abs(weight.mean()) < 1e-3 and len(np.unique(np.abs(weight))) > 1000
    again = values("model.diffusion_model.input_blocks.1.0.in_layers.2.weight", [320, 320, 3, 3])
    other = values("model.diffusion_model.input_blocks.2.0.in_layers.2.weight", [320, 320, 3, 3])
    assert np.array_equal(weight.astype(np.float16), again) and not np.array_equal(again, other)
    assert np.all(values("conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_bias", [3840]) == 0)
    assert np.all(values("model.diffusion_model.out.0.weight", [320]) == 1)
    hint = values("control_model.input_hint_block.2.weight", [16, 16, 3, 3]).astype(np.float32)
    assert 1.4 < hint.std() * math.sqrt(16 * 9) < 2.84  # doubled: a control image survives the SiLUs


def test_the_controlnet_kind_rewrites_its_cached_file_byte_for_byte(synthetic_controlnet: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sidecar", "synth-model", "--kind", "controlnet", str(tmp_path / "cn.safetensors")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert _sha256(Path(done.stdout.strip())) == _sha256(Path(synthetic_controlnet))
