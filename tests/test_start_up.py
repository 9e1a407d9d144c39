"""Start-up at the native limit: the backend probe's answer cached per build and machine, and a
spare worker, started once the host has its first answer, that the next load takes.

Each test gets its own cache folder (DIFFUSION_SIDECAR_CACHE), so the first launch in it probes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import anyio
import pytest

from tests.harness import RawSidecar, kill, wait_gone, worker_pids

pytestmark = pytest.mark.anyio


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DIFFUSION_SIDECAR_CACHE", str(tmp_path))
    monkeypatch.setenv("DIFFUSION_SIDECAR_SPARE_WORKER", "1")  # conftest turns it off for the other files
    monkeypatch.delenv("DIFFUSION_SIDECAR_CPU_VARIANT", raising=False)
    return tmp_path


async def _backend(command: list[str], *flags: str) -> tuple[dict, RawSidecar]:
    sidecar = await RawSidecar.start(*flags, command=command)
    return (await sidecar.call("initialize"))["result"]["backend"], sidecar


async def _until(condition, timeout: float = 30):
    """Wait for a state of other processes that no message announces (a worker appearing)."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, "timed out"
        await anyio.sleep(0.02)
    return found


def _two_or_none(workers: set[int]) -> set[int] | None:
    return workers if len(workers) == 2 else None


def _stored(cache: Path) -> Path:
    (answer,) = (cache / "probe").glob("*.json")
    return answer


async def test_the_second_launch_answers_from_the_cache_and_checks_it_quietly(
    sidecar_command: list[str], cache: Path
) -> None:
    first, sidecar = await _backend(sidecar_command)
    await sidecar.stop()
    assert first["fromCache"] is False
    cached, sidecar = await _backend(sidecar_command)
    assert cached["fromCache"] is True and {**cached, "fromCache": False} == {**first, "devices": cached["devices"]}
    # Once the background check has run, `initialize` serves its fresh answer; a change would have
    # been told first (the notification is queued before the answer is replaced).
    while (await sidecar.call("initialize"))["result"]["backend"]["fromCache"]:
        await anyio.sleep(0.05)
    assert [m for m in sidecar.messages if m.get("method") == "backend/changed"] == []
    await sidecar.stop()


async def test_a_changed_backend_is_told_by_a_notification_not_by_a_slow_initialize(
    python_command: list[str], cache: Path
) -> None:
    _, sidecar = await _backend(python_command)
    await sidecar.stop()
    stored = _stored(cache)
    answer = json.loads(stored.read_bytes())
    real_cores = answer["physical_cores"]
    stored.write_text(json.dumps({**answer, "physical_cores": real_cores + 97}))
    cached, sidecar = await _backend(python_command)
    assert cached["fromCache"] is True and cached["physicalCores"] == real_cores + 97
    changed = await sidecar.wait_for(lambda m: m.get("method") == "backend/changed")
    assert changed["params"]["requestId"] is None
    assert changed["params"]["backend"]["physicalCores"] == real_cores
    assert changed["params"]["backend"]["fromCache"] is False
    fresh = (await sidecar.call("initialize"))["result"]["backend"]
    assert fresh == changed["params"]["backend"]
    await sidecar.stop()
    assert json.loads(stored.read_bytes())["physical_cores"] == real_cores


async def test_a_corrupt_cache_is_probed_past_and_rewritten(python_command: list[str], cache: Path) -> None:
    _, sidecar = await _backend(python_command)
    await sidecar.stop()
    stored = _stored(cache)
    stored.write_bytes(b"\x00not json{")
    backend, sidecar = await _backend(python_command)
    assert backend["fromCache"] is False and backend["physicalCores"] >= 1
    await sidecar.stop()
    assert json.loads(stored.read_bytes())["physical_cores"] == backend["physicalCores"]


async def test_what_changes_the_answer_changes_the_key(
    python_command: list[str], cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, sidecar = await _backend(python_command)
    await sidecar.stop()
    monkeypatch.setenv("GGML_VK_VISIBLE_DEVICES", "")
    backend, sidecar = await _backend(python_command)
    await sidecar.stop()
    assert backend["fromCache"] is False
    assert len(list((cache / "probe").glob("*.json"))) == 2


async def test_the_first_load_takes_the_spare_worker_and_a_new_one_waits(
    sidecar_command: list[str], synthetic_model: str, cache: Path
) -> None:
    _, sidecar = await _backend(sidecar_command)
    (spare,) = await _until(lambda: worker_pids(sidecar.process.pid))
    loaded = await sidecar.call("loadModel", {"modelPath": synthetic_model})
    assert "result" in loaded
    workers = await _until(lambda: _two_or_none(worker_pids(sidecar.process.pid)))
    assert spare in workers  # the spare now holds the model; the other one is the next spare
    kill(sidecar.process.pid)  # SIGKILL: neither the model's worker nor the spare may outlive it
    assert all(wait_gone(pid, timeout=10) for pid in workers)


async def test_a_host_can_turn_the_spare_worker_off(python_command: list[str], synthetic_model: str, cache: Path) -> None:
    _, sidecar = await _backend(python_command, "--no-spare-worker")
    assert worker_pids(sidecar.process.pid) == set()
    assert "result" in await sidecar.call("loadModel", {"modelPath": synthetic_model})
    assert len(worker_pids(sidecar.process.pid)) == 1
    await sidecar.stop()


async def test_a_load_on_another_device_starts_its_own_worker_and_leaves_the_spare(
    python_command: list[str], synthetic_model: str, cache: Path
) -> None:
    _, sidecar = await _backend(python_command)
    (spare,) = await _until(lambda: worker_pids(sidecar.process.pid))
    loaded = await sidecar.call("loadModel", {"modelPath": synthetic_model, "modelConfig": {"device": "CPU"}})
    assert loaded["result"]["device"] == "CPU"
    assert spare in worker_pids(sidecar.process.pid) and len(worker_pids(sidecar.process.pid)) == 2
    await sidecar.stop()
