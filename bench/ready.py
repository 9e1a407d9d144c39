"""Start-up, for each launcher a host may ship (the Python entry point, the frozen binary):
- time to ready: process spawned -> `initialize` answered (it includes the backend probe worker);
- worker start: `loadModel` of a corrupt file sent -> its MODEL_LOAD_FAILED answer: a new worker
  starts, loads the native library, and is refused at once, so this is the worker's start-up;
- model load: `loadModel` of the synthetic model sent -> loaded, through a new worker each time.
Also the frozen binary's size. Run: make binary && .venv/bin/python bench/ready.py
(writes bench/results/ready.json)
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from common import summary, synthetic_model, write_result

from diffusion_sidecar_client import Sidecar, SidecarError

BINARY = Path(__file__).resolve().parent.parent / "dist" / "diffusion-sidecar"
LAUNCHES = 10
LOADS = 5
LAUNCHERS: dict[str, tuple[list[str], dict[str, str]]] = {
    "python": ([sys.executable, "-m", "sidecar"], {}),
    "frozen": ([str(BINARY)], {}),
    # Where the binary unpacks itself matters: a tmpfs skips the disk's bookkeeping.
    "frozen, TMPDIR=/dev/shm": ([str(BINARY)], {"TMPDIR": "/dev/shm"}),
}


async def _start(command: list[str], env: dict[str, str]) -> Sidecar:
    return await Sidecar.start(command, env=env, stderr=asyncio.subprocess.DEVNULL)


async def time_to_ready(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    sidecar = await _start(command, env)
    await sidecar.initialize()
    ready_ms = (time.perf_counter() - started) * 1000
    await sidecar.close()
    return ready_ms


async def worker_starts(command: list[str], env: dict[str, str], corrupt: Path) -> list[float]:
    times = []
    async with await _start(command, env) as sidecar:
        await sidecar.initialize()  # the front is up and its probe done: only the worker is timed
        for _ in range(LOADS):
            sent = time.perf_counter()
            try:
                await sidecar.load_model(str(corrupt))
            except SidecarError as refused:
                assert refused.data_code == "MODEL_LOAD_FAILED", refused.data
            else:
                raise AssertionError("the corrupt model loaded")
            times.append((time.perf_counter() - sent) * 1000)
    return times


async def model_loads(command: list[str], env: dict[str, str], model: str) -> list[float]:
    times = []
    async with await _start(command, env) as sidecar:
        await sidecar.initialize()
        for _ in range(LOADS):
            sent = time.perf_counter()
            model_id = await sidecar.load_model(model)
            times.append((time.perf_counter() - sent) * 1000)
            await sidecar.unload_model(model_id)  # the next load starts a new worker
    return times


async def main() -> None:
    if not BINARY.exists():
        sys.exit(f"{BINARY} is missing: run `make binary` first")
    model = synthetic_model()
    ready, workers, loads = {}, {}, {}
    with tempfile.TemporaryDirectory() as folder:
        corrupt = Path(folder) / "corrupt.gguf"
        corrupt.write_bytes(b"GGUF" + bytes(4096))
        launches: dict[str, list[float]] = {name: [] for name in LAUNCHERS}
        for round_ in range(LAUNCHES + 1):  # launchers take turns, so a slow spell hits all alike
            for name, (command, env) in LAUNCHERS.items():
                ready_ms = await time_to_ready(command, env)
                if round_:  # the first round warms the page cache
                    launches[name].append(ready_ms)
        for name, (command, env) in LAUNCHERS.items():
            ready[name] = summary(launches[name])
            workers[name] = summary(await worker_starts(command, env, corrupt))
            loads[name] = summary(await model_loads(command, env, model))
            print(f"{name}: ready {ready[name]['median']} ms, worker {workers[name]['median']} ms", file=sys.stderr)
    path = write_result(
        "ready",
        {
            "unit": "ms",
            "machine": {"cpus": os.cpu_count(), "tmpdir": tempfile.gettempdir()},
            "binary": {"path": "dist/diffusion-sidecar", "megabytes": round(BINARY.stat().st_size / 1e6, 1)},
            "time_to_ready": {"target_ms_frozen": 300, **ready},
            "worker_start": workers,
            "model_load": loads,
        },
    )
    print(path)


if __name__ == "__main__":
    asyncio.run(main())
