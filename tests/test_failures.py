"""When things go wrong: corrupt files, dead workers, a host that leaves. The sidecar stays up,
every request gets exactly one answer, and no process is left behind.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from diffusion_sidecar_client import Sidecar, SidecarExited

from sidecar.runtime.models import CRASH_LIMIT
from tests.harness import RawSidecar, descendant_pids, kill, wait_gone, worker_pids

pytestmark = pytest.mark.anyio

SMALL = {"prompt": "a windmill", "width": 64, "height": 64}


@pytest.fixture
async def raw(sidecar_command: list[str], tmp_path: Path):
    sidecar = await RawSidecar.start(command=sidecar_command, stderr_path=tmp_path / "sidecar.stderr")
    yield sidecar
    await sidecar.stop()
    ids = [m["id"] for m in sidecar.messages if "method" not in m and m["id"] is not None]
    assert len(ids) == len(set(ids)), "a request was answered twice"


async def _load(raw: RawSidecar, model_path: str, config: dict | None = None) -> str:
    response = await raw.call("loadModel", {"modelPath": model_path, "modelConfig": config or {}})
    return response["result"]["modelId"]


async def _start_generation(raw: RawSidecar, model_id: str, steps: int = 20) -> int:
    """Send a long generation and return its id once its first step has ticked."""
    request_id = await raw.send("diffusion", {"modelId": model_id, **SMALL, "steps": steps})
    await raw.wait_for(lambda m: m.get("method") == "diffusion/progress" and m["params"]["requestId"] == request_id)
    return request_id


def _corrupt_files(model: str, folder: Path) -> dict[str, Path]:
    unet = Path(model) / "unet" / "diffusion_pytorch_model.safetensors"
    garbage = folder / "garbage.safetensors"
    garbage.write_bytes(bytes(range(256)) * 64)
    truncated = folder / "truncated.safetensors"
    with open(unet, "rb") as source:
        truncated.write_bytes(source.read(4 << 20))
    bad_gguf = folder / "bad.gguf"
    bad_gguf.write_bytes(b"GGUF" + bytes(4096))
    diffusers = folder / "diffusers"  # intact text encoder and VAE, truncated UNet
    (diffusers / "unet").mkdir(parents=True)
    for part in ("vae", "text_encoder"):
        (diffusers / part).symlink_to(Path(model) / part)
    (diffusers / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(truncated.read_bytes())
    return {"garbage": garbage, "truncated": truncated, "bad_gguf": bad_gguf, "truncated_diffusers": diffusers}


async def test_corrupt_model_files_fail_the_load_and_the_sidecar_keeps_serving(
    raw: RawSidecar, synthetic_model: str, tmp_path: Path
) -> None:
    for name, path in _corrupt_files(synthetic_model, tmp_path).items():
        response = await raw.call("loadModel", {"modelPath": str(path)})
        error = response.get("error")
        assert error and error["code"] == -32002, (name, response)
        assert error["data"]["code"] == "MODEL_LOAD_FAILED" and error["data"]["reason"], name
    assert worker_pids(raw.process.pid) == set(), "a failed load left its worker running"
    assert "serverName" in (await raw.call("initialize"))["result"]
    # A good model still loads in the same sidecar.
    assert await _load(raw, synthetic_model)


async def test_worker_killed_mid_load(raw: RawSidecar, synthetic_model: str) -> None:
    request_id = await raw.send("loadModel", {"modelPath": synthetic_model})
    await raw.wait_for(lambda m: m.get("method") == "loadModel/progress")
    (worker,) = worker_pids(raw.process.pid)
    kill(worker)
    error = (await raw.response(request_id))["error"]
    assert error["data"]["code"] == "MODEL_LOAD_FAILED" and error["data"]["signal"] == "SIGKILL"
    assert await _load(raw, synthetic_model)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
async def test_worker_killed_mid_generation_comes_back_in_a_fresh_worker(
    raw: RawSidecar, synthetic_model: str, sig: signal.Signals
) -> None:
    model_id = await _load(raw, synthetic_model)
    (worker,) = worker_pids(raw.process.pid)
    request_id = await _start_generation(raw, model_id)
    queued = await raw.send("diffusion", {"modelId": model_id, **SMALL, "steps": 1, "seed": 3})
    kill(worker, sig)
    error = (await raw.response(request_id))["error"]
    assert error["code"] == -32003 and error["data"]["code"] == "WORKER_CRASHED"
    assert error["data"]["signal"] == sig.name and error["data"]["modelId"] == model_id
    assert error["data"]["modelReloading"] is True and isinstance(error["data"]["stderr"], list)
    # The request queued behind the crash runs on the fresh worker, without a new loadModel.
    assert len((await raw.response(queued))["result"]["outputs"]) == 1
    (fresh,) = worker_pids(raw.process.pid)
    assert fresh != worker
    again = await raw.call("loadModel", {"modelPath": synthetic_model})
    assert again["result"]["alreadyLoaded"] is True


async def test_worker_that_dies_between_requests_is_replaced(raw: RawSidecar, synthetic_model: str) -> None:
    model_id = await _load(raw, synthetic_model)
    (worker,) = worker_pids(raw.process.pid)
    kill(worker)
    # With no request to notice it, the sidecar starts a fresh worker by itself.
    async with asyncio.timeout(60):
        while not worker_pids(raw.process.pid) - {worker}:
            await asyncio.sleep(0.05)  # polling a condition, not waiting for a time
    assert len((await raw.call("diffusion", {"modelId": model_id, **SMALL, "steps": 1}))["result"]["outputs"]) == 1


async def test_crash_loop_unloads_the_model_and_says_why(raw: RawSidecar, synthetic_model: str) -> None:
    model_id = await _load(raw, synthetic_model)
    errors = []
    for _ in range(CRASH_LIMIT):
        (worker,) = worker_pids(raw.process.pid)
        request_id = await _start_generation(raw, model_id)
        kill(worker)
        errors.append((await raw.response(request_id))["error"])
    assert [error["data"]["modelReloading"] for error in errors] == [True] * (CRASH_LIMIT - 1) + [False]
    assert "unloaded" in errors[-1]["message"]
    gone = (await raw.call("diffusion", {"modelId": model_id, **SMALL, "steps": 1}))["error"]
    assert gone["code"] == -32001 and gone["data"]["code"] == "MODEL_NOT_LOADED"
    assert gone["data"]["reason"] == "crashLoop" and gone["data"]["crashes"] == CRASH_LIMIT
    assert gone["data"]["lastCrash"]["signal"] == "SIGKILL"
    assert worker_pids(raw.process.pid) == set()
    # Loading it again clears the verdict.
    assert (await raw.call("loadModel", {"modelPath": synthetic_model}))["result"]["alreadyLoaded"] is False
    assert "result" in await raw.call("diffusion", {"modelId": model_id, **SMALL, "steps": 1})


async def test_stdin_closed_mid_generation_exits_cleanly_without_orphans(raw: RawSidecar, synthetic_model: str) -> None:
    model_id = await _load(raw, synthetic_model)
    workers = worker_pids(raw.process.pid)
    request_id = await _start_generation(raw, model_id)
    await raw.close_stdin()
    assert await raw.exit_status(timeout=2) == 0
    assert [r["error"]["data"]["code"] for r in raw.responses_to(request_id)] == ["SHUTTING_DOWN"]
    assert all(wait_gone(pid, timeout=2) for pid in workers)


async def test_shutdown_answers_pending_work_then_exits_zero(raw: RawSidecar, synthetic_model: str) -> None:
    model_id = await _load(raw, synthetic_model)
    workers = worker_pids(raw.process.pid)
    running = await _start_generation(raw, model_id)
    shutdown = await raw.send("shutdown")
    assert (await raw.response(shutdown))["result"] is None
    assert (await raw.response(running))["error"]["data"]["code"] == "SHUTTING_DOWN"
    assert await raw.exit_status(timeout=10) == 0
    assert all(wait_gone(pid, timeout=5) for pid in workers)


async def test_workers_exit_by_themselves_when_the_sidecar_is_killed(raw: RawSidecar, synthetic_model: str) -> None:
    await _load(raw, synthetic_model)
    await _load(raw, synthetic_model, {"threads": 1})
    assert len(worker_pids(raw.process.pid)) == 2
    below = descendant_pids(raw.process.pid)  # the workers, and the frozen binary's serving process
    kill(raw.process.pid)
    assert all(wait_gone(pid, timeout=2) for pid in below)


async def test_stdout_is_protocol_only_and_native_logs_go_to_stderr(
    raw: RawSidecar, synthetic_model: str, tmp_path: Path
) -> None:
    model_id = await _load(raw, synthetic_model)
    await raw.call("diffusion", {"modelId": model_id, **SMALL, "steps": 1})
    await raw.call("shutdown")
    assert await raw.exit_status() == 0
    # RawSidecar checked that each stdout line was one JSON-RPC object; the native library's own
    # output (which it prints to stdout) must have gone to stderr instead.
    stderr = (tmp_path / "sidecar.stderr").read_text()
    assert "[native]" in stderr and "generate_image completed" in stderr


async def test_client_calls_fail_at_once_when_the_sidecar_dies(
    sidecar_command: list[str], synthetic_model: str
) -> None:
    sidecar = await Sidecar.start(sidecar_command)
    model_id = await sidecar.load_model(synthetic_model)
    call = sidecar.diffusion(modelId=model_id, **SMALL, steps=20)
    await anext(call.progress_stream)
    kill(sidecar.pid)
    with pytest.raises(SidecarExited):
        await asyncio.wait_for(call.outputs, timeout=10)
    with pytest.raises(SidecarExited):
        await call.stats
    with pytest.raises(SidecarExited):
        await sidecar.initialize()


async def test_workers_skip_the_native_debugger_on_abort(raw: RawSidecar, synthetic_model: str) -> None:
    await _load(raw, synthetic_model)
    (worker,) = worker_pids(raw.process.pid)
    environment = Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")
    assert b"GGML_NO_BACKTRACE=1" in environment
