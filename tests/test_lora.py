"""LoRAs per request, end to end: a real sidecar, the synthetic model and synthetic LoRA files.

The synthetic pictures are noise: the tests compare pixels between requests, never to a picture.
"""

from __future__ import annotations

import hashlib
import shutil
from io import BytesIO
from pathlib import Path

import pytest
from diffusion_sidecar_client import Sidecar, SidecarError
from PIL import Image

from sidecar.synth.kinds import write

pytestmark = pytest.mark.anyio

SMALL = {"prompt": "a lighthouse at dusk", "width": 64, "height": 64, "steps": 1, "seed": 7}


@pytest.fixture(scope="module")
def lora_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """Two LoRA files: the synthetic one, and a copy under another name (same tensors)."""
    folder = tmp_path_factory.mktemp("loras")
    first = write("lora", folder / "style-a.safetensors")
    second = folder / "style-b.safetensors"
    shutil.copyfile(first, second)
    return str(first), str(second)


@pytest.fixture(scope="module")
async def model_id(sidecar: Sidecar, synthetic_model: str) -> str:
    return await sidecar.load_model(synthetic_model)


@pytest.fixture(scope="module")
def made() -> dict[str, bytes]:
    """PNGs already made in this module, by request: the machine is slow, generations are shared."""
    return {}


async def _png(sidecar: Sidecar, model_id: str, made: dict[str, bytes] | None = None, **params) -> bytes:
    key = repr(sorted(params.items()))
    if made is not None and key in made:
        return made[key]
    call = sidecar.diffusion(modelId=model_id, **{**SMALL, **params})
    (png,) = await call.outputs
    if made is not None:
        made[key] = png
    return png


def _pixels(png: bytes) -> bytes:
    return Image.open(BytesIO(png)).tobytes()


def _parameters(png: bytes) -> str:
    return Image.open(BytesIO(png)).text["parameters"]


def _addnet_hash(path: str) -> str:
    """kohya's / A1111's LoRA hash, written out here independently of the sidecar's code."""
    data = Path(path).read_bytes()
    header_size = int.from_bytes(data[:8], "little")
    return hashlib.sha256(data[8 + header_size :]).hexdigest()[:12]


async def test_requests_with_loras_leave_no_trace_on_later_requests(
    sidecar: Sidecar, synthetic_model: str, model_id: str, lora_files: tuple[str, str]
) -> None:
    """After a LoRA request, requests without it or with another weight give a fresh model's bytes."""
    lora, _ = lora_files
    await sidecar.unload_model(model_id)  # whatever ran on it before: start from a fresh load
    assert await sidecar.load_model(synthetic_model) == model_id
    fresh_plain = await _png(sidecar, model_id)
    fresh_half = await _png(sidecar, model_id, lora=[{"path": lora, "weight": 0.5}])  # the first LoRA it sees
    await _png(sidecar, model_id, lora=lora)
    assert await _png(sidecar, model_id) == fresh_plain
    assert await _png(sidecar, model_id, lora=[{"path": lora, "weight": 0.5}]) == fresh_half


async def test_a_lora_changes_the_picture_and_its_weight_matters(
    sidecar: Sidecar, model_id: str, made: dict[str, bytes], lora_files: tuple[str, str]
) -> None:
    lora, _ = lora_files
    plain = _pixels(await _png(sidecar, model_id, made))
    full = _pixels(await _png(sidecar, model_id, made, lora=lora))
    half = _pixels(await _png(sidecar, model_id, made, lora=[{"path": lora, "weight": 0.5}]))
    zero = _pixels(await _png(sidecar, model_id, made, lora=[{"path": lora, "weight": 0}]))
    assert full != plain and half not in (plain, full)
    assert zero == plain
    changed = sum(a != b for a, b in zip(plain, full)) / len(plain)
    assert changed > 0.5, f"only {changed:.0%} of the channel values changed"


async def test_two_loras_apply_together(
    sidecar: Sidecar, model_id: str, made: dict[str, bytes], lora_files: tuple[str, str]
) -> None:
    first, second = lora_files
    one = _pixels(await _png(sidecar, model_id, made, lora=first))
    both = _pixels(await _png(sidecar, model_id, made, lora=[{"path": first}, {"path": second}]))
    swapped = _pixels(await _png(sidecar, model_id, made, lora=[{"path": second}, {"path": first}]))
    assert both != one and both == swapped


async def test_png_names_each_lora_with_a1111_hash_and_prompt_tag(
    sidecar: Sidecar, model_id: str, made: dict[str, bytes], lora_files: tuple[str, str]
) -> None:
    first, second = lora_files
    png = await _png(sidecar, model_id, made, lora=[{"path": first, "weight": 0.5}, {"path": second, "weight": -1}])
    prompt, settings = _parameters(png).split("\n")
    assert prompt == "a lighthouse at dusk <lora:style-a:0.5> <lora:style-b:-1>"
    digest = _addnet_hash(first)
    assert settings.endswith(f', Lora hashes: "style-a: {digest}, style-b: {digest}"')
    plain = await _png(sidecar, model_id, made)
    assert "Lora hashes" not in _parameters(plain) and "<lora:" not in _parameters(plain)


async def _refused(sidecar: Sidecar, model_id: str, lora: object) -> SidecarError:
    call = sidecar.diffusion(modelId=model_id, lora=lora, **SMALL)
    with pytest.raises(SidecarError) as raised:
        await call.outputs
    assert [tick async for tick in call.progress_stream] == []  # refused before any work
    return raised.value


async def test_bad_lora_files_are_refused_before_work(
    sidecar: Sidecar, model_id: str, synthetic_model: str, lora_files: tuple[str, str], tmp_path: Path
) -> None:
    lora, _ = lora_files
    missing = await _refused(sidecar, model_id, str(tmp_path / "gone.safetensors"))
    assert missing.data["code"] == "INVALID_PARAMS" and missing.data["field"] == "lora"
    folder = await _refused(sidecar, model_id, [{"path": lora}, {"path": str(tmp_path)}])
    assert folder.data["field"] == "lora[1].path"
    text = tmp_path / "notes.txt"
    text.write_text("not a LoRA")
    assert "must be one of" in (await _refused(sidecar, model_id, str(text))).data["rule"]
    not_a_lora = await _refused(
        sidecar, model_id, str(Path(synthetic_model) / "vae/diffusion_pytorch_model.safetensors")
    )
    assert "must be a LoRA file" in not_a_lora.data["rule"]
    twice = await _refused(sidecar, model_id, [{"path": lora}, {"path": lora, "weight": 0.5}])
    assert twice.data["field"] == "lora[1].path" and "already in the list" in twice.data["rule"]
    weight = await _refused(sidecar, model_id, [{"path": lora, "weight": 11}])
    assert weight.data["field"] == "lora[0].weight"


async def test_loras_outside_the_models_root_or_past_the_limit_are_refused(
    python_command: list[str], synthetic_model: str, lora_files: tuple[str, str]
) -> None:
    outside, _ = lora_files
    root = str(Path(synthetic_model).parent)
    async with await Sidecar.start([*python_command, "--models-root", root, "--max-loras", "1"]) as client:
        assert (await client.initialize()).limits.maxLoras == 1
        model_id = await client.load_model(synthetic_model)
        not_allowed = await _refused(client, model_id, outside)
        assert not_allowed.data["code"] == "PATH_NOT_ALLOWED" and not_allowed.data["field"] == "lora"
        too_many = await _refused(client, model_id, [{"path": outside}, {"path": outside}])
        assert too_many.data["code"] == "LIMIT_EXCEEDED" and too_many.data["limit"] == "maxLoras"
