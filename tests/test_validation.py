"""Bad input through a real sidecar process: each rule gets INVALID_PARAMS naming the field.

No model is needed: every check here happens before any work starts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import RawSidecar, worker_pids

pytestmark = pytest.mark.anyio

BASE = {"modelId": "not-loaded", "prompt": "a cat"}

DIFFUSION_CASES = [
    ({"prompt": "a cat"}, "modelId", "missing required field"),
    ({"modelId": "m"}, "prompt", "missing required field"),
    ({**BASE, "prompt": None}, "prompt", "Expected `str`"),
    ({**BASE, "negative_prompt": 3}, "negative_prompt", "Expected `str`"),
    ({**BASE, "width": 500}, "width", "multiple of 8"),
    ({**BASE, "width": 0}, "width", ">= 8"),
    ({**BASE, "width": 16384}, "width", "<= 8192"),
    ({**BASE, "width": 512.5}, "width", "Expected `int`"),
    ({**BASE, "height": -8}, "height", ">= 8"),
    ({**BASE, "height": "512"}, "height", "Expected `int`"),
    ({**BASE, "steps": 0}, "steps", ">= 1"),
    ({**BASE, "cfg_scale": -1}, "cfg_scale", ">= 0"),
    ({**BASE, "cfg_scale": "7"}, "cfg_scale", "Expected `float`"),
    ({**BASE, "guidance": -0.5}, "guidance", ">= 0"),
    ({**BASE, "sampling_method": "euler_b"}, "sampling_method", "Invalid enum value"),
    ({**BASE, "scheduler": "linear"}, "scheduler", "Invalid enum value"),
    ({**BASE, "seed": -2}, "seed", ">= -1"),
    ({**BASE, "seed": 2**53}, "seed", "<= 9007199254740991"),
    ({**BASE, "seed": 1.5}, "seed", "Expected `int`"),
    ({**BASE, "batch_count": 0}, "batch_count", ">= 1"),
    ({**BASE, "vae_tiling": "yes"}, "vae_tiling", "Expected `bool`"),
    ({**BASE, "cache_preset": "turbo"}, "cache_preset", "Invalid enum value"),
    ({**BASE, "stepz": 4}, "stepz", "unknown field"),
]

LOAD_CONFIG_CASES = [
    ({"threads": 0}, "modelConfig.threads", ">= 1"),
    ({"threads": "4"}, "modelConfig.threads", "Expected `int`"),
    ({"type": "q9_9"}, "modelConfig.type", "Invalid enum value"),
    ({"prediction": "x0"}, "modelConfig.prediction", "Invalid enum value"),
    ({"rng": "gpu"}, "modelConfig.rng", "Invalid enum value"),
    ({"sampler_rng": 1}, "modelConfig.sampler_rng", "Expected `str`"),
    ({"clip_on_cpu": 1}, "modelConfig.clip_on_cpu", "Expected `bool`"),
    ({"vae_on_cpu": "true"}, "modelConfig.vae_on_cpu", "Expected `bool`"),
    ({"vae_tiling": None}, "modelConfig.vae_tiling", "Expected `bool`"),
    ({"offload_to_cpu": 0}, "modelConfig.offload_to_cpu", "Expected `bool`"),
    ({"flash_attn": []}, "modelConfig.flash_attn", "Expected `bool`"),
    ({"diffusion_fa": {}}, "modelConfig.diffusion_fa", "Expected `bool`"),
    ({"lora_apply_mode": "later"}, "modelConfig.lora_apply_mode", "Invalid enum value"),
    ({"vaePath": 5}, "modelConfig.vaePath", "Expected `str | object`"),  # a path or a source
    ({"gpu_layers": 99}, "modelConfig.gpu_layers", "unknown field"),
    ({"device": 0}, "modelConfig.device", "Expected `str`"),
    ({"device": "gpu"}, "modelConfig.device", "one of the devices `initialize` lists: CPU"),
    ({"max_vram": -1}, "modelConfig.max_vram", "Expected `float` >= 0"),
]


@pytest.fixture(scope="module")
async def sidecar(python_command: list[str]):
    process = await RawSidecar.start(command=python_command)
    yield process
    await process.stop()
    # However bad the input was, every request was answered exactly once.
    ids = [m["id"] for m in process.messages if "method" not in m and m["id"] is not None]
    assert len(ids) == len(set(ids))


def _assert_invalid(response: dict, field: str, rule_part: str) -> None:
    error = response["error"]
    assert error["code"] == -32602, response
    assert error["data"]["code"] == "INVALID_PARAMS"
    assert error["data"]["field"] == field
    assert rule_part in error["data"]["rule"]
    assert field.split(".")[-1] in error["message"]


@pytest.mark.parametrize(("params", "field", "rule_part"), DIFFUSION_CASES)
async def test_diffusion_params(sidecar: RawSidecar, params: dict, field: str, rule_part: str) -> None:
    _assert_invalid(await sidecar.call("diffusion", params), field, rule_part)


@pytest.mark.parametrize(("config", "field", "rule_part"), LOAD_CONFIG_CASES)
async def test_model_config(sidecar: RawSidecar, synthetic_model: str, config: dict, field: str, rule_part: str) -> None:
    response = await sidecar.call("loadModel", {"modelPath": synthetic_model, "modelConfig": config})
    _assert_invalid(response, field, rule_part)


def _files(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "empty.safetensors").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a model")
    (tmp_path / "folder").mkdir()
    return {name: str(tmp_path / name) for name in ("empty.safetensors", "notes.txt", "folder", "missing.gguf")}


async def test_model_files_are_checked_before_any_process_starts(
    sidecar: RawSidecar, synthetic_model: str, tmp_path: Path
) -> None:
    files = _files(tmp_path)
    cases = [
        ({"modelPath": files["missing.gguf"]}, "modelPath", "must name an existing model file or diffusers folder"),
        ({"modelPath": ""}, "modelPath", "must name an existing"),
        ({"modelPath": files["empty.safetensors"]}, "modelPath", "must not be empty"),
        ({"modelPath": files["notes.txt"]}, "modelPath", "must be one of"),
        ({"modelPath": files["folder"]}, "modelPath", "diffusers layout"),
        (
            {"modelPath": synthetic_model, "modelConfig": {"vaePath": files["missing.gguf"]}},
            "modelConfig.vaePath",
            "must name an existing file",
        ),
        (
            {"modelPath": synthetic_model, "modelConfig": {"t5xxlPath": files["folder"]}},
            "modelConfig.t5xxlPath",
            "must name a file, not a folder",
        ),
        ({"modelPath": 7}, "modelPath", "Expected `str | object`"),
        ({}, "modelPath", "missing required field"),
    ]
    for params, field, rule_part in cases:
        _assert_invalid(await sidecar.call("loadModel", params), field, rule_part)
    assert worker_pids(sidecar.process.pid) == set()


@pytest.mark.parametrize("method", ["unloadModel", "shutdown", "initialize"])
async def test_params_must_be_an_object_by_name(sidecar: RawSidecar, method: str) -> None:
    response = await sidecar.call(method, ["positional"])
    assert response["error"]["code"] == -32602
    assert "Expected `object`" in response["error"]["data"]["rule"]


async def test_unknown_method_and_malformed_lines_keep_the_sidecar_serving(sidecar: RawSidecar) -> None:
    missing = await sidecar.call("paint", {})
    assert missing["error"]["code"] == -32601 and missing["error"]["data"]["code"] == "METHOD_NOT_FOUND"
    before = len(sidecar.messages)
    await sidecar.send_line(b'{"jsonrpc": "2.0", "id": 77, "method": "diffusion", "params": {')
    await sidecar.send_line(b'{"jsonrpc": "2.0", "method": "someNotification", "params": {}}')
    await sidecar.send_line(b'{"jsonrpc": "2.0", "id": 78, "method": 5}')
    answered = await sidecar.call("unloadModel", {"modelId": "nothing"})
    assert answered["error"]["data"]["code"] == "MODEL_NOT_LOADED"
    new = sidecar.messages[before:]
    assert [m["error"]["code"] for m in new] == [-32700, -32600, -32001]
    assert new[0]["id"] is None and new[1]["id"] == 78

