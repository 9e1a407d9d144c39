"""8. Cancel latency: `cancel` sent -> the cancelled request's answer received, at each point of a
generation: waiting in the queue, first step, mid sampling, VAE decode, and a whole model's
requests at once. (Soak memory is bench/soak.py, run on its own: see its report.)
"""

from __future__ import annotations

import asyncio
import time

from diffusion_sidecar_client import Sidecar, SidecarError

from .common import Row, summary

TITLE = "cancel"
REPEATS = 5
JOB = {"prompt": "cancel me", "width": 64, "height": 64, "steps": 6}
POINTS = ["queued", "first step", "mid sampling", "vae decode", "by model"]
TARGET_MS = 100


async def _answer_time(call) -> float:
    try:
        await call.outputs
    except SidecarError as error:
        assert error.data_code == "CANCELLED", error.data
        return time.perf_counter()
    raise AssertionError("the request finished before the cancel")


async def _ticks_until(call, step: int) -> None:
    async for tick in call.progress_stream:
        if tick.step >= step:
            return


async def _cancel_latency(sidecar: Sidecar, model_id: str, point: str) -> float:
    blocker = None
    if point == "queued":  # waiting behind another request on the same model
        blocker = sidecar.diffusion(modelId=model_id, **JOB)
        await _ticks_until(blocker, 1)
    call = sidecar.diffusion(modelId=model_id, **JOB)
    answered = asyncio.ensure_future(_answer_time(call))
    if point == "first step":
        await _ticks_until(call, 1)
    elif point == "mid sampling":
        await _ticks_until(call, 3)
    elif point == "vae decode":  # after the last sampling step, while the VAE decodes
        await _ticks_until(call, JOB["steps"])
    sent = time.perf_counter()
    await (sidecar.cancel(model_id=model_id) if point == "by model" else call.cancel())
    latency_ms = (await answered - sent) * 1000
    if blocker is not None:
        await blocker.cancel()
        await asyncio.gather(blocker.outputs, return_exceptions=True)
    return latency_ms


async def measure(model: str) -> dict:
    latency = {}
    async with await Sidecar.start(stderr=asyncio.subprocess.DEVNULL) as sidecar:
        model_id = await sidecar.load_model(model)
        for point in POINTS:
            latency[point] = summary([await _cancel_latency(sidecar, model_id, point) for _ in range(REPEATS)])
    return {"unit": "ms", "job": JOB, "latency": latency, "target_ms": TARGET_MS, "soak": "bench/results/soak.json"}


def rows(result: dict) -> list[Row]:
    latency = result["latency"]
    medians = ", ".join(f"{point} {figures['median']:.1f}" for point, figures in latency.items())
    worst = max(figures["max"] for figures in latency.values())
    return [Row(f"cancel sent -> cancelled answer, {REPEATS} at each point", f"medians (ms): {medians}; max {worst:.1f} ms", f"<= {result['target_ms']} ms")]
