"""2. Warm throughput: 10 images through one sidecar against 10 fresh processes that each load
the model and generate one image (bench/naive_host.py: what a naive host does).

The sidecar's side counts everything from its spawn: start, `initialize`, the one model load,
then each image saved to a file, as the naive side saves each. Images of the two sides alternate,
so a slow spell of the machine falls on both.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from diffusion_sidecar_client import Sidecar

from .common import Row, direct_job, interleaved, ms_since, physical_cores, summary

TITLE = "throughput"
JOB = direct_job(128, 128)
IMAGES = 10


async def measure(model: str) -> dict:
    threads = physical_cores()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)

        async def naive_process() -> float:
            started = time.perf_counter()
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.naive_host", model, str(out / "naive.png"), json.dumps(JOB), str(threads),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            if await process.wait():
                raise RuntimeError(f"the naive host failed (exit status {process.returncode})")
            return ms_since(started)

        started = time.perf_counter()
        async with await Sidecar.start(stderr=asyncio.subprocess.DEVNULL) as sidecar:
            await sidecar.initialize()
            model_id = await sidecar.load_model(model, {"threads": threads})
            setup_ms = ms_since(started)

            async def sidecar_image() -> float:
                started = time.perf_counter()
                (png,) = await sidecar.diffusion(modelId=model_id, **JOB).outputs
                (out / "sidecar.png").write_bytes(png)
                return ms_since(started)

            times = await interleaved(IMAGES, {"sidecar": sidecar_image, "naive": naive_process}, warm_up=0)
    sidecar_total = setup_ms + sum(times["sidecar"])
    naive_total = sum(times["naive"])
    return {
        "unit": "ms",
        "job": JOB,
        "threads": threads,
        "images": IMAGES,
        "sidecar": {"setup_ms": round(setup_ms, 1), "per_image": summary(times["sidecar"]), "total_ms": round(sidecar_total, 1)},
        "naive": {"per_image": summary(times["naive"]), "total_ms": round(naive_total, 1)},
        "speedup": round(naive_total / sidecar_total, 3),
        "warm_speedup": round(summary(times["naive"])["median"] / summary(times["sidecar"])["median"], 3),
    }


def rows(result: dict) -> list[Row]:
    job, naive, sidecar = result["job"], result["naive"], result["sidecar"]
    return [
        Row(
            f"{result['images']} images, {job['width']}x{job['height']} {job['steps']} steps: a fresh process "
            "each / one sidecar (its start and load included)",
            f"{result['speedup']:.2f}x ({naive['total_ms'] / 1000:.1f} s / {sidecar['total_ms'] / 1000:.1f} s)",
        ),
        Row(
            "per image once warm: fresh process / sidecar",
            f"{result['warm_speedup']:.2f}x ({naive['per_image']['median']:.0f} ms / "
            f"{sidecar['per_image']['median']:.0f} ms)",
        ),
    ]
