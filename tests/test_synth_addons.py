"""The synthetic add-on files (`--kind lora`, `--kind esrgan`) and how the front recognises them."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
import zipfile
from pathlib import Path

from sidecar.inputs.loras import _short_hash
from sidecar.inputs.upscalers import is_esrgan_file
from sidecar.synth.kinds import write


def _header(path: Path) -> dict:
    with open(path, "rb") as file:
        header = json.loads(file.read(int.from_bytes(file.read(8), "little")))
    header.pop("__metadata__")
    return header


def test_lora_is_kohya_rank_4_over_unet_and_text_encoder_and_deterministic(tmp_path: Path) -> None:
    path = write("lora", tmp_path / "a.safetensors")
    header = _header(path)
    assert len(header) == 540 and path.stat().st_size < 3.5e6
    modules = {name.split(".")[0] for name in header}  # kohya module names hold no dots
    assert (
        sum(m.startswith("lora_unet_") for m in modules) == 108 and sum(m.startswith("lora_te_") for m in modules) == 72
    )
    assert header["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"]["shape"] == [4, 320, 1, 1]
    assert header["lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight"]["shape"] == [3072, 4]
    assert sum(math.prod(entry["shape"]) for entry in header.values()) == 1579188
    again = subprocess.run(
        [sys.executable, "-m", "sidecar", "synth-model", "--kind", "lora", str(tmp_path / "b.safetensors")],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert Path(again).read_bytes() == path.read_bytes()


def test_esrgan_is_rrdbnet_x4_with_one_block(tmp_path: Path) -> None:
    header = _header(write("esrgan", tmp_path / "x4.safetensors"))
    assert {"conv_first.weight", "conv_up1.weight", "conv_up2.weight", "conv_last.weight"} <= header.keys()
    assert {name.split(".")[1] for name in header if name.startswith("body.")} == {"0"}
    assert 860_000 < sum(math.prod(entry["shape"]) for entry in header.values()) < 880_000


def test_esrgan_files_are_told_apart_from_other_files(tmp_path: Path, synthetic_model: str) -> None:
    esrgan = write("esrgan", tmp_path / "x4.safetensors")
    assert is_esrgan_file(str(esrgan))
    # The same names in a PyTorch zip checkpoint's pickle, as a .pth file holds them.
    with zipfile.ZipFile(tmp_path / "x4.pth", "w") as archive:
        archive.writestr("x4/data.pkl", b"\x80\x02}q\x00X\x11\x00\x00\x00conv_first.weightq\x01")
    assert is_esrgan_file(str(tmp_path / "x4.pth"))
    assert not is_esrgan_file(str(write("lora", tmp_path / "lora.safetensors")))
    assert not is_esrgan_file(str(Path(synthetic_model) / "unet/diffusion_pytorch_model.safetensors"))
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 64)
    assert not is_esrgan_file(str(tmp_path / "junk.safetensors"))


def test_lora_hash_is_the_sha256_of_what_follows_the_header(tmp_path: Path) -> None:
    path = write("lora", tmp_path / "a.safetensors")
    data = path.read_bytes()
    payload = data[8 + int.from_bytes(data[:8], "little") :]
    stat = path.stat()
    assert _short_hash(str(path), stat.st_size, stat.st_mtime_ns) == hashlib.sha256(payload).hexdigest()[:12]
