"""Limits set by flags: reported by `initialize`, each refused before work starts, naming itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import RawSidecar, worker_pids

pytestmark = pytest.mark.anyio

FLAGS = ["--max-steps", "5", "--max-pixels", "8192", "--max-batch-count", "2", "--max-queue", "1"]
FLAGS += ["--max-models", "1", "--max-line-bytes", "4000", "--max-prompt-bytes", "100"]
SMALL = {"prompt": "a field", "width": 64, "height": 64, "steps": 1}


@pytest.fixture(scope="module")
async def sidecar(python_command: list[str], synthetic_model: str):
    raw = await RawSidecar.start(*FLAGS, command=python_command)
    raw.model_id = (await raw.call("loadModel", {"modelPath": synthetic_model}))["result"]["modelId"]
    yield raw
    await raw.stop()


def _exceeded(response: dict, limit: str, field: str | None = None) -> None:
    error = response["error"]
    assert error["code"] == -32007 and error["data"]["code"] == "LIMIT_EXCEEDED", response
    assert error["data"]["limit"] == limit and limit in error["message"]
    if field:
        assert error["data"]["field"] == field


async def test_initialize_reports_the_limits(sidecar: RawSidecar) -> None:
    limits = (await sidecar.call("initialize"))["result"]["limits"]
    assert (limits["maxSteps"], limits["maxPixels"], limits["maxBatchCount"]) == (5, 8192, 2)
    assert (limits["maxQueue"], limits["maxModels"], limits["maxLineBytes"]) == (1, 1, 4000)
    assert limits["modelsRoot"] is None
    assert limits["maxPromptBytes"] == 100


@pytest.mark.parametrize(
    ("params", "limit", "field"),
    [
        ({"steps": 6}, "maxSteps", "steps"),
        ({"width": 128, "height": 128}, "maxPixels", "width"),
        ({"batch_count": 3}, "maxBatchCount", "batch_count"),
        ({"prompt": "x" * 101}, "maxPromptBytes", "prompt"),
        ({"negative_prompt": "\u00e9" * 51}, "maxPromptBytes", "negative_prompt"),  # 51 characters, 102 bytes
    ],
)
async def test_generation_limits(sidecar: RawSidecar, params: dict, limit: str, field: str) -> None:
    _exceeded(await sidecar.call("diffusion", {"modelId": sidecar.model_id, **SMALL, **params}), limit, field)


async def test_prompt_at_the_byte_limit_is_accepted(sidecar: RawSidecar) -> None:
    params = {"modelId": sidecar.model_id, **SMALL, "prompt": "x" * 100, "negative_prompt": "\u00e9" * 50}
    assert "result" in await sidecar.call("diffusion", params)


async def test_max_models(sidecar: RawSidecar, synthetic_model: str) -> None:
    _exceeded(await sidecar.call("loadModel", {"modelPath": synthetic_model, "modelConfig": {"threads": 1}}), "maxModels")
    # The model already loaded is still found: an identical load is no new model.
    assert (await sidecar.call("loadModel", {"modelPath": synthetic_model}))["result"]["alreadyLoaded"] is True


async def test_queue_bound(sidecar: RawSidecar) -> None:
    running = await sidecar.send("diffusion", {"modelId": sidecar.model_id, **SMALL, "steps": 5})
    await sidecar.wait_for(lambda m: m.get("method") == "diffusion/progress" and m["params"]["requestId"] == running)
    queued = await sidecar.send("diffusion", {"modelId": sidecar.model_id, **SMALL})
    full = (await sidecar.call("diffusion", {"modelId": sidecar.model_id, **SMALL}))["error"]
    assert full["code"] == -32006 and full["data"]["code"] == "QUEUE_FULL" and full["data"]["max"] == 1
    assert sidecar.responses_to(running) == [] and sidecar.responses_to(queued) == []
    assert "result" in await sidecar.response(running) and "result" in await sidecar.response(queued)


async def test_overlong_line_is_refused_without_stopping_the_sidecar(sidecar: RawSidecar) -> None:
    before = len(sidecar.messages)
    prompt = "x" * 5000
    await sidecar.send_line(b'{"jsonrpc":"2.0","id":"long","method":"diffusion","params":{"prompt":"%s"}}' % prompt.encode())
    answer = await sidecar.call("cancel", {"requestId": "nothing"})
    assert answer["result"] == {"cancelled": 0}
    refused = sidecar.messages[before]
    assert refused["id"] is None and refused["error"]["code"] == -32600
    assert refused["error"]["data"]["limit"] == "maxLineBytes"


async def test_models_root_refuses_paths_that_resolve_outside(
    python_command: list[str], synthetic_model: str, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    root.mkdir()
    (root / "escape").symlink_to(synthetic_model)
    (root / "inside.gguf").write_bytes(b"GGUF" + bytes(64))
    raw = await RawSidecar.start("--models-root", str(root), command=python_command)
    try:
        for path in (synthetic_model, str(root / "escape"), str(root / ".." / "models" / ".." / "x.gguf")):
            error = (await raw.call("loadModel", {"modelPath": path}))["error"]
            assert error["code"] == -32008 and error["data"]["code"] == "PATH_NOT_ALLOWED", path
            assert error["data"]["field"] == "modelPath"
        companion = {"modelPath": str(root / "inside.gguf"), "modelConfig": {"vaePath": synthetic_model + "/vae/x.safetensors"}}
        assert (await raw.call("loadModel", companion))["error"]["data"]["field"] == "modelConfig.vaePath"
        assert worker_pids(raw.process.pid) == set()
        # A file inside the root passes the check (and then fails as the corrupt file it is).
        inside = (await raw.call("loadModel", {"modelPath": str(root / "inside.gguf")}))["error"]
        assert inside["data"]["code"] == "MODEL_LOAD_FAILED"
    finally:
        await raw.stop()
