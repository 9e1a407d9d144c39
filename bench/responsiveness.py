"""9. Responsiveness: `initialize` sent -> answered (p50/p99) while the sidecar is idle, while a
model loads (and unloads, over and over), and while generations run. Nothing the sidecar does for
other requests may hold its event loop: the target is p99 <= 20 ms in every phase.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from diffusion_sidecar_client import Sidecar

from .common import Row, summary

TITLE = "responsiveness"
SAMPLES = 200
GAP_S = 0.01
JOB = {"prompt": "busy", "width": 64, "height": 64, "steps": 4}
TARGET_MS = 20


async def _latencies(sidecar: Sidecar) -> list[float]:
    figures = []
    for _ in range(SAMPLES):
        sent = time.perf_counter()
        await sidecar.initialize()
        figures.append((time.perf_counter() - sent) * 1000)
        await asyncio.sleep(GAP_S)
    return figures


async def _keep_loading(sidecar: Sidecar, model: str) -> None:
    while True:  # a second copy of the model (other options make it another model), loaded and unloaded
        model_id = await sidecar.load_model(model, {"threads": 1})
        await sidecar.unload_model(model_id)


async def _keep_generating(sidecar: Sidecar, model_id: str) -> None:
    while True:
        await sidecar.diffusion(modelId=model_id, **JOB).outputs


async def _while(background, sidecar: Sidecar) -> list[float]:
    task = asyncio.ensure_future(background)
    try:
        return await _latencies(sidecar)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def measure(model: str) -> dict:
    async with await Sidecar.start(stderr=asyncio.subprocess.DEVNULL) as sidecar:
        model_id = await sidecar.load_model(model)
        latency = {
            "idle": summary(await _latencies(sidecar)),
            "loading": summary(await _while(_keep_loading(sidecar, model), sidecar)),
            "generating": summary(await _while(_keep_generating(sidecar, model_id), sidecar)),
        }
    return {"unit": "ms", "samples": SAMPLES, "job": JOB, "latency": latency, "target_ms": TARGET_MS}


def rows(result: dict) -> list[Row]:
    cells = "; ".join(
        f"{phase} p50 {figures['median']:.1f} p99 {figures['p99']:.1f}" for phase, figures in result["latency"].items()
    )
    worst = max(figures["p99"] for figures in result["latency"].values())
    what = f"initialize latency (ms), {result['samples']} per phase"
    return [Row(what, f"{cells}; worst p99 {worst:.1f}", f"p99 <= {result['target_ms']} ms")]
