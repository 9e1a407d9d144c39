"""Models as users have them: a single-file checkpoint in the original layout, and the model hash
PNGs carry, end to end on a real sidecar (Python launcher) and the real backend. The pictures are
noise: the tests compare bytes."""

from __future__ import annotations

import hashlib
import json
from io import BytesIO
from pathlib import Path

import pytest
from diffusion_sidecar_client import Sidecar
from PIL import Image
from sd_parsers import ParserManager

from sidecar.inputs import model_hash as hashing
from sidecar.synth.sd1 import load_manifest
from sidecar.synth.sd1_single import tensors
from tests.harness import model_hash

pytestmark = pytest.mark.anyio

SMALL = {"prompt": "a lighthouse at dusk", "width": 64, "height": 64, "steps": 2, "seed": 11}


def _header(path: str | Path) -> dict:
    with open(path, "rb") as file:
        header = json.loads(file.read(int.from_bytes(file.read(8), "little")))
    header.pop("__metadata__", None)
    return header


def _pixels(png: bytes) -> bytes:
    return Image.open(BytesIO(png)).tobytes()


@pytest.fixture(scope="module")
async def folder_model(sidecar: Sidecar, synthetic_model: str):
    return await sidecar.load_model_result(synthetic_model)


@pytest.fixture(scope="module")
async def single_model(sidecar: Sidecar, synthetic_sd1_single: str):
    return await sidecar.load_model_result(synthetic_sd1_single)


def test_the_single_file_holds_the_folders_tensors_under_original_names(synthetic_sd1_single: str) -> None:
    header = _header(synthetic_sd1_single)
    folder = sum(len(listed) for listed in load_manifest().values())
    assert len(header) == folder == 802
    prefixes = {name.split(".")[0] for name in header}
    assert prefixes == {"model", "first_stage_model", "cond_stage_model"}
    assert header["model.diffusion_model.input_blocks.1.0.in_layers.2.weight"]["shape"] == [320, 320, 3, 3]
    assert header["model.diffusion_model.output_blocks.2.1.conv.weight"]["shape"] == [1280, 1280, 3, 3]
    # The original VAE's attention projections are 1x1 convolutions (diffusers: linear layers).
    assert header["first_stage_model.decoder.mid.attn_1.q.weight"]["shape"] == [512, 512, 1, 1]
    assert "cond_stage_model.transformer.text_model.final_layer_norm.weight" in header
    assert not any("down_blocks" in name or "resnets" in name for name in header)
    assert len({folder_name for _, _, folder_name, _ in tensors()}) == 802


async def test_a_picture_from_the_single_file_is_the_folders_byte_for_byte(
    sidecar: Sidecar, folder_model, single_model
) -> None:
    assert single_model.modelFamily == folder_model.modelFamily == "SD 1.x Tiny UNet"
    (from_folder,) = await sidecar.diffusion(modelId=folder_model.modelId, **SMALL).outputs
    (from_file,) = await sidecar.diffusion(modelId=single_model.modelId, **SMALL).outputs
    assert _pixels(from_file) == _pixels(from_folder)


def _parameters(png: bytes) -> str:
    return Image.open(BytesIO(png)).text["parameters"]


async def test_pngs_carry_a1111s_model_hash_of_the_file_and_the_files_stem(
    sidecar: Sidecar, single_model, synthetic_sd1_single: str
) -> None:
    (png,) = await sidecar.diffusion(modelId=single_model.modelId, **SMALL).outputs
    settings = _parameters(png).splitlines()[-1]
    assert f"Model hash: {model_hash(synthetic_sd1_single)}, Model: synthetic-sd1" in settings
    # sd-parsers, which A1111-style tools use, reads both back.
    info = ParserManager().parse(Image.open(BytesIO(png)))
    (model,) = info.models
    assert (model.name, model.hash) == ("synthetic-sd1", model_hash(synthetic_sd1_single))


async def test_a_folders_hash_is_its_unets_and_hashing_can_be_turned_off(
    sidecar: Sidecar, folder_model, synthetic_model: str
) -> None:
    (png,) = await sidecar.diffusion(modelId=folder_model.modelId, **SMALL).outputs
    unet = Path(synthetic_model) / "unet" / "diffusion_pytorch_model.safetensors"
    assert f"Model hash: {model_hash(unet)}, Model: {Path(synthetic_model).name}" in _parameters(png)
    unhashed = await sidecar.load_model(synthetic_model, {"hash": False})
    (png,) = await sidecar.diffusion(modelId=unhashed, **SMALL).outputs
    assert "Model hash" not in _parameters(png) and f"Model: {Path(synthetic_model).name}" in _parameters(png)
    await sidecar.unload_model(unhashed)


def test_the_hash_is_read_once_per_file_version(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"first version")
    reads: list[str] = []
    first = hashing._hash_of(str(path), lambda: reads.append("chunk"))
    assert first == hashlib.sha256(b"first version").hexdigest()[:10] and reads == ["chunk"]
    assert hashing._hash_of(str(path), lambda: reads.append("chunk")) == first and reads == ["chunk"]
    path.write_bytes(b"second version, longer")
    assert hashing._hash_of(str(path)) == hashlib.sha256(b"second version, longer").hexdigest()[:10]
