"""`convert` end to end on a real sidecar (Python launcher) and the real native converter: GGUF at
f16, q8_0 and q4_0 of the synthetic SD1 and FLUX models, loaded and generating; refusals before any
work; a cancel leaves no file behind. The pictures are noise: the tests compare pixels and counts."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import anyio
import msgspec
import numpy as np
import pytest
from diffusion_sidecar_client import Sidecar, SidecarError
from diffusion_sidecar_protocol.types import ConvertResult
from PIL import Image

from sidecar.inputs import weight_files
from sidecar.inputs.output_paths import checked_output

pytestmark = pytest.mark.anyio

SMALL = {"prompt": "a lighthouse at dusk", "width": 64, "height": 64, "steps": 2, "seed": 11}
# Measured: the q8_0 picture differs from the f16 one by 2.96/255 per channel on average (64x64,
# 2 steps, seed 7; quantization error through a random-weight UNet). The bound leaves a margin;
# q4_0 differed by 15.9, so the bound still tells the types apart.
Q8_MEAN_DIFFERENCE_BOUND = 8.0


async def _convert(sidecar: Sidecar, ticks: list | None = None, **params) -> ConvertResult:
    def on_tick(method: str, tick: msgspec.Raw) -> None:
        if ticks is not None:
            ticks.append(msgspec.json.decode(tick))

    raw = await sidecar.request("convert", params, on_tick)
    return msgspec.json.decode(raw, type=ConvertResult)


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(BytesIO(png)).convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("converted")


@pytest.fixture(scope="module")
async def sd1_converted(sidecar: Sidecar, synthetic_model: str, out: Path) -> dict[str, tuple[ConvertResult, list]]:
    """The synthetic SD1 folder as one GGUF file at each type, with each conversion's ticks."""
    converted = {}
    for type_name in ("f16", "q8_0", "q4_0"):
        ticks: list = []
        result = await _convert(
            sidecar, ticks, modelPath=synthetic_model, outputPath=str(out / f"sd1-{type_name}.gguf"), type=type_name
        )
        converted[type_name] = (result, ticks)
    return converted


async def test_convert_writes_each_type_and_says_what_stayed_unquantized(sd1_converted, out: Path) -> None:
    f16, q8, q4 = (sd1_converted[name][0] for name in ("f16", "q8_0", "q4_0"))
    for result in (f16, q8, q4):
        path = Path(result.outputPath)
        assert result.outputBytes == path.stat().st_size and result.tensors == 802
        asked = path.stem.split("-")[1]
        assert sum(result.weightTypes.values()) == 802
        assert sum(result.unquantized.values()) == 802 - result.weightTypes.get(asked, 0)
        on_disk = weight_files.read_tensors(path)
        assert weight_files.type_counts(on_disk) == result.weightTypes
    assert f16.weightTypes == {"f16": 802} and f16.unquantized == {}
    assert q8.weightTypes["q8_0"] > 300 and q4.weightTypes["q4_0"] == q8.weightTypes["q8_0"]
    # Every 3x3 conv (innermost dimension 3) stays, and so do biases and the time embedding.
    assert q8.unquantized["shape"] > 100 and q8.unquantized["bias"] > 100 and q8.unquantized["embedding"] > 0
    assert "other" not in q8.unquantized
    assert q4.outputBytes < q8.outputBytes < f16.outputBytes
    assert sorted(path.name for path in out.iterdir()) == ["sd1-f16.gguf", "sd1-q4_0.gguf", "sd1-q8_0.gguf"]


async def test_progress_counts_tensors_read_then_one_write_tick(sd1_converted) -> None:
    _, ticks = sd1_converted["q8_0"]
    reads = [tick for tick in ticks if tick["phase"] == "read"]
    assert reads and [tick["done"] for tick in reads] == sorted(tick["done"] for tick in reads)
    assert {tick["total"] for tick in reads} == {802} and reads[-1]["done"] == 802
    assert (ticks[-1]["phase"], ticks[-1]["done"], ticks[-1]["total"]) == ("write", 802, 802)
    assert [tick["phase"] for tick in ticks].count("write") == 1


async def test_converted_sd1_loads_at_every_type_and_q8_0_stays_close_to_f16(
    sidecar: Sidecar, sd1_converted, synthetic_model: str
) -> None:
    folder = await sidecar.load_model_result(synthetic_model)
    assert folder.weightTypes == {"f16": 802}
    pictures = {}
    for type_name, (result, _) in sd1_converted.items():
        loaded = await sidecar.load_model_result(result.outputPath)
        assert loaded.modelFamily == "SD 1.x Tiny UNet" and loaded.weightTypes == result.weightTypes
        (png,) = await sidecar.diffusion(modelId=loaded.modelId, **SMALL).outputs
        pictures[type_name] = _pixels(png)
        listed = {model.modelId: model for model in (await sidecar.list_models()).models}
        assert listed[loaded.modelId].weightTypes == result.weightTypes
        await sidecar.unload_model(loaded.modelId)
    (original,) = await sidecar.diffusion(modelId=folder.modelId, **SMALL).outputs
    # f16 to f16 changes no bit: the GGUF holds the folder's weights.
    assert np.array_equal(pictures["f16"], _pixels(original))
    q8_difference = np.abs(pictures["q8_0"] - pictures["f16"]).mean()
    q4_difference = np.abs(pictures["q4_0"] - pictures["f16"]).mean()
    assert 0 < q8_difference < Q8_MEAN_DIFFERENCE_BOUND < q4_difference


async def test_converted_flux_diffusion_models_load_with_their_companions(
    sidecar: Sidecar, synthetic_flux: Path, out: Path
) -> None:
    companions = {"clipLPath": str(synthetic_flux / "clip_l.safetensors"), "vaePath": str(synthetic_flux / "vae.safetensors")}
    for type_name in ("f16", "q8_0", "q4_0"):
        result = await _convert(
            sidecar, modelPath=str(synthetic_flux / "diffusion.safetensors"), outputPath=str(out / f"flux-{type_name}.gguf"), type=type_name
        )
        assert result.tensors == 52
        if type_name != "f16":  # the DiT's input, output and embedding layers stay, as do biases and norms
            assert result.weightTypes[type_name] == 13
            assert result.unquantized == {"bias": 23, "embedding": 10, "scale": 6}
        loaded = await sidecar.load_model_result(result.outputPath, companions)
        assert loaded.modelFamily == "Flux" and loaded.weightTypes.get(type_name, 0) >= 13
        (png,) = await sidecar.diffusion(modelId=loaded.modelId, **SMALL, cfg_scale=1).outputs
        assert Image.open(BytesIO(png)).size == (64, 64)
        await sidecar.unload_model(loaded.modelId)


async def test_a_safetensors_output_at_a_float_type(sidecar: Sidecar, synthetic_flux: Path, out: Path) -> None:
    source = synthetic_flux / "vae.safetensors"
    result = await _convert(sidecar, modelPath=str(source), outputPath=str(out / "vae-f32.safetensors"), type="f32")
    # Biases keep their stored type (f16 here) whatever the type asked, as the library rules.
    assert result.weightTypes == {"f32": 122, "f16": 122} and result.unquantized == {"bias": 122}
    assert len(weight_files.read_tensors(source)) == 244
    assert result.outputBytes > 1.9 * source.stat().st_size


@pytest.mark.parametrize(
    ("params", "field", "rule"),
    [
        ({"type": "q8_0", "outputPath": "{out}/x.safetensors"}, "type", "a .safetensors output holds only"),
        ({"type": "q8_0", "outputPath": "{out}/x.bin"}, "outputPath", "must end in one of: .gguf, .safetensors"),
        ({"type": "q8_0", "outputPath": "{out}/missing/x.gguf"}, "outputPath", "its folder must exist"),
        ({"type": "q8_0", "outputPath": "{out}/sd1-f16.gguf"}, "outputPath", "exists already"),
        ({"type": "q8_0", "outputPath": "{out}/x.gguf", "tensorTypeRules": "vae=q9"}, "tensorTypeRules", "the type must be one of"),
        ({"type": "q8_0", "outputPath": "{out}/x.gguf", "tensorTypeRules": "(=f16"}, "tensorTypeRules", "not a regular expression"),
        ({"type": "q8_0", "outputPath": "{out}/x.gguf", "tensorTypeRules": "f16"}, "tensorTypeRules", "each rule is `pattern=type`"),
        ({"type": "q7_0", "outputPath": "{out}/x.gguf"}, "type", "Invalid enum value"),
        ({"type": "q8_0", "outputPath": "{out}/x.gguf", "clipLPath": "/x"}, "clipLPath", "unknown field"),
    ],
    ids=["quantized-safetensors", "suffix", "no-folder", "exists", "rule-type", "rule-regex", "rule-form", "type", "unknown"],
)
async def test_bad_requests_are_refused_before_any_work(
    sidecar: Sidecar, sd1_converted, synthetic_model: str, out: Path, params: dict, field: str, rule: str
) -> None:
    params = {key: value.format(out=out) if isinstance(value, str) else value for key, value in params.items()}
    before = sorted(out.iterdir())
    ticks: list = []
    with pytest.raises(SidecarError) as raised:
        await _convert(sidecar, ticks, modelPath=synthetic_model, **params)
    assert raised.value.data["code"] == "INVALID_PARAMS" and raised.value.data["field"] == field
    assert rule in raised.value.data["rule"]
    assert ticks == [] and sorted(out.iterdir()) == before


async def test_overwrite_replaces_and_the_output_may_not_be_an_input(
    sidecar: Sidecar, synthetic_flux: Path, tmp_path: Path
) -> None:
    source = str(synthetic_flux / "diffusion.safetensors")
    target = tmp_path / "flux.gguf"
    target.write_bytes(b"an older file")
    result = await _convert(sidecar, modelPath=source, outputPath=str(target), type="q8_0", overwrite=True)
    assert result.outputBytes == target.stat().st_size > 100_000
    with pytest.raises(SidecarError) as raised:
        await _convert(sidecar, modelPath=str(target), outputPath=str(target), type="q4_0", overwrite=True)
    assert raised.value.data["field"] == "outputPath" and "made from" in raised.value.data["rule"]
    assert [path.name for path in tmp_path.iterdir()] == ["flux.gguf"]


def test_no_room_on_the_disk_and_outside_the_models_root_are_refused(tmp_path: Path) -> None:
    def check(root: str | None, needed: int) -> str:
        return checked_output(
            "outputPath", str(tmp_path / "x.gguf"), root, suffixes=(".gguf",), overwrite=False, inputs=[], needed_bytes=needed
        )

    with pytest.raises(Exception) as raised:
        check(None, 1 << 62)
    assert raised.value.data["field"] == "outputPath" and "MB free on its disk" in raised.value.data["rule"]
    elsewhere = tmp_path / "models"
    elsewhere.mkdir()
    with pytest.raises(Exception) as raised:
        check(str(elsewhere), 1)
    assert raised.value.data["code"] == "PATH_NOT_ALLOWED"
    assert check(str(tmp_path), 1) == str(tmp_path.resolve() / "x.gguf")


async def test_outside_the_models_root_through_a_sidecar(synthetic_flux: Path, tmp_path: Path) -> None:
    import sys

    models = synthetic_flux.parent
    async with await Sidecar.start([sys.executable, "-m", "sidecar", "--models-root", str(models)]) as sidecar:
        with pytest.raises(SidecarError) as raised:
            await _convert(
                sidecar, modelPath=str(synthetic_flux / "diffusion.safetensors"), outputPath=str(tmp_path / "x.gguf"), type="q8_0"
            )
    assert raised.value.data["code"] == "PATH_NOT_ALLOWED" and raised.value.data["field"] == "outputPath"
    assert list(tmp_path.iterdir()) == []


async def test_a_cancelled_conversion_leaves_no_file(sidecar: Sidecar, synthetic_model: str, tmp_path: Path) -> None:
    converting = anyio.Event()
    ids: list = []

    def on_tick(method: str, tick: msgspec.Raw) -> None:
        ids.append(msgspec.json.decode(tick)["requestId"])
        converting.set()

    params = {"modelPath": synthetic_model, "outputPath": str(tmp_path / "x.gguf"), "type": "q4_0"}
    errors: list[SidecarError] = []

    async def convert() -> None:
        with pytest.raises(SidecarError) as raised:
            await sidecar.request("convert", params, on_tick)
        errors.append(raised.value)

    async with anyio.create_task_group() as group:
        group.start_soon(convert)
        await converting.wait()
        assert await sidecar.cancel(request_id=ids[0]) == 1
    assert errors[0].data["code"] == "CANCELLED"
    # Neither the file nor its partial: the worker was ended before its file was removed.
    assert list(tmp_path.iterdir()) == []
    assert [model for model in (await sidecar.list_models()).models if model.state == "loading"] == []
