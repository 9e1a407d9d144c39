"""3. Start-up, for each launcher a host may ship (the Python entry point, the frozen binary):
- time to ready: process spawned -> `initialize` answered (it includes the backend probe worker);
  for the binary also its first launch, which unpacks it into the cache;
- worker start: `loadModel` of a corrupt file sent -> its MODEL_LOAD_FAILED answer: a new worker
  starts, loads the native library, and is refused at once, so this is the worker's start-up;
- model load: `loadModel` of the synthetic model sent -> loaded, through a new worker each time,
  against a direct load of the same model in this process (the binding's class, library already
  imported), interleaved.
Also the frozen binary's size. The binary must be built first (`make bench` does).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

from diffusion_sidecar_client import Sidecar, SidecarError

from .common import Row, direct_model, interleaved, ms_since, physical_cores, round_ratios, summary

TITLE = "ready"
BINARY = Path(__file__).resolve().parent.parent / "dist" / "diffusion-sidecar"
LAUNCHES = 10
LOADS = 5
TARGET_MS_FROZEN = 200


def _bare_interpreter():
    """A bare `python -c pass`: the floor under any Python process's start."""

    async def launch() -> float:
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
        await process.wait()
        return ms_since(started)

    return launch


def launchers() -> dict[str, tuple[list[str], dict[str, str]]]:
    return {
        "python": ([sys.executable, "-m", "sidecar"], {}),
        "frozen": ([str(BINARY)], {}),
    }


async def _start(command: list[str], env: dict[str, str]) -> Sidecar:
    return await Sidecar.start(command, env=env, stderr=asyncio.subprocess.DEVNULL)


def _time_to_ready(command: list[str], env: dict[str, str]):
    async def launch() -> float:
        started = time.perf_counter()
        sidecar = await _start(command, env)  # returns once its `initialize` (the handshake) is answered
        ready_ms = ms_since(started)
        await sidecar.close()
        return ready_ms

    return launch


def _first_launch():
    """The binary's first launch on a machine (or after an upgrade): it unpacks itself first."""

    async def launch() -> float:
        with tempfile.TemporaryDirectory() as cache:
            return await _time_to_ready([str(BINARY)], {"DIFFUSION_SIDECAR_CACHE": cache})()

    return launch


def _worker_start(sidecar: Sidecar, corrupt: Path):
    async def refused_load() -> float:
        started = time.perf_counter()
        try:
            await sidecar.load_model(str(corrupt))
        except SidecarError as refused:
            assert refused.data_code == "MODEL_LOAD_FAILED", refused.data
        else:
            raise AssertionError("the corrupt model loaded")
        return ms_since(started)

    return refused_load


def _sidecar_load(sidecar: Sidecar, model: str, threads: int):
    async def load() -> float:
        started = time.perf_counter()
        model_id = await sidecar.load_model(model, {"threads": threads})
        elapsed = ms_since(started)
        await sidecar.unload_model(model_id)  # the next load starts a new worker
        return elapsed

    return load


def _direct_load(model: str, threads: int):
    async def load() -> float:
        started = time.perf_counter()
        loaded = direct_model(model, threads)
        elapsed = ms_since(started)
        loaded.close()
        return elapsed

    return load


async def measure(model: str) -> dict:
    if not BINARY.exists():
        raise FileNotFoundError(f"{BINARY} is missing: run `make binary` first")
    threads = physical_cores()
    # The launches share the user's cache: after the first, the backend probe's answer comes from it.
    contenders = {name: _time_to_ready(*how) for name, how in launchers().items()}
    ready = await interleaved(LAUNCHES, {**contenders, "bare interpreter (python -c pass)": _bare_interpreter()})
    # Apart, after: each first launch writes 100 MB, whose write-back would slow the launches after it.
    ready["frozen, first launch (unpacks into an empty cache)"] = [await _first_launch()() for _ in range(LAUNCHES)]
    with tempfile.TemporaryDirectory() as folder:
        corrupt = Path(folder) / "corrupt.gguf"
        corrupt.write_bytes(b"GGUF" + bytes(4096))
        async with AsyncExitStack() as stack:
            sidecars = {name: await stack.enter_async_context(await _start(*how)) for name, how in launchers().items()}
            for sidecar in sidecars.values():
                await sidecar.initialize()  # the front is up and its probe done: only workers are timed
            workers = await interleaved(LOADS, {name: _worker_start(s, corrupt) for name, s in sidecars.items()})
            loads = await interleaved(
                LOADS,
                {"direct, in process": _direct_load(model, threads)}
                | {name: _sidecar_load(s, model, threads) for name, s in sidecars.items()},
            )
    direct_ms = summary(loads["direct, in process"])["median"]
    return {
        "unit": "ms",
        "binary": {"path": "dist/diffusion-sidecar", "megabytes": round(BINARY.stat().st_size / 1e6, 1)},
        "time_to_ready": {name: summary(times) for name, times in ready.items()},
        "ready_ratios": {
            "frozen / python": round(round_ratios(ready["frozen"], ready["python"])["median"], 3),
            "frozen / bare interpreter": round(
                round_ratios(ready["frozen"], ready["bare interpreter (python -c pass)"])["median"], 3
            ),
        },
        "target_ms_frozen": TARGET_MS_FROZEN,
        "worker_start": {name: summary(times) for name, times in workers.items()},
        "model_load": {name: summary(times) for name, times in loads.items()},
        "model_load_ratio_to_direct": {
            name: round(summary(times)["median"] / direct_ms, 3) for name, times in loads.items() if name in workers
        },
    }


def rows(result: dict) -> list[Row]:
    ready, workers, loads = result["time_to_ready"], result["worker_start"], result["model_load"]
    direct = loads["direct, in process"]["median"]
    table = [
        Row(
            f"time to ready (spawn -> initialize answered), {name}",
            f"{ready[name]['median']:.0f} ms",
            f"<= {result['target_ms_frozen']} ms" if name == "frozen" else "",
        )
        for name in ready
    ]
    table += [
        Row(
            f"worker start + model load / direct load ({direct:.0f} ms), {name}",
            f"{result['model_load_ratio_to_direct'][name]:.2f} ({loads[name]['median']:.0f} ms; worker start "
            f"{workers[name]['median']:.0f} ms)",
            "<= 1.1",
        )
        for name in workers
    ]
    table += [Row(f"time to ready, {name}", f"{ratio:.2f}", "<= 1.0" if "python" in name else "<= 4")
              for name, ratio in result["ready_ratios"].items()]  # fmt: skip
    table.append(Row("frozen binary size", f"{result['binary']['megabytes']} MB"))
    return table
