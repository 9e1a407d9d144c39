"""6. Memory: the front process's RSS (the process that serves: the pid the host spawned, with
either launcher) and the model worker's RSS, now and at its peak, against the model's size on disk.
Sampled after a load and one generation, for each launcher.
"""

from __future__ import annotations

import asyncio

from diffusion_sidecar_client import Sidecar
from tests.harness import worker_pids

from .common import Row, model_megabytes, status_mb
from .ready import launchers

TITLE = "memory"
JOB = {"prompt": "memory", "width": 256, "height": 256, "steps": 1, "seed": 42}
TARGET_FRONT_MB = 40


async def _sample(command: list[str], env: dict[str, str], model: str) -> dict:
    # No spare worker: the model's worker is then the only one, the one measured.
    no_spare = {**env, "DIFFUSION_SIDECAR_SPARE_WORKER": "0"}
    async with await Sidecar.start(command, env=no_spare, stderr=asyncio.subprocess.DEVNULL) as sidecar:
        model_id = await sidecar.load_model(model)
        await sidecar.diffusion(modelId=model_id, **JOB).outputs
        (worker,) = worker_pids(sidecar.pid)
        return {
            "front_mb": status_mb(sidecar.pid),
            "worker_mb": status_mb(worker),
            "worker_peak_mb": status_mb(worker, "VmHWM"),
        }


async def measure(model: str) -> dict:
    by_launcher = {}
    for name, (command, env) in launchers().items():
        by_launcher[name] = await _sample(command, env, model)
    return {
        "unit": "MB",
        "job": JOB,
        "model_mb": model_megabytes(model),
        "target_front_mb": TARGET_FRONT_MB,
        **by_launcher,
    }


def rows(result: dict) -> list[Row]:
    table = []
    for name in ("python", "frozen"):
        figures = result[name]
        table.append(Row(f"front process RSS, {name}", f"{figures['front_mb']:.1f} MB", f"<= {result['target_front_mb']} MB"))
    python = result["python"]
    table.append(
        Row(
            f"worker RSS / model on disk ({result['model_mb']:.0f} MB), after a "
            f"{result['job']['width']}x{result['job']['height']} generation",
            f"{python['worker_mb'] / result['model_mb']:.2f} ({python['worker_mb']:.0f} MB; peak {python['worker_peak_mb']:.0f} MB)",
        )
    )
    return table
