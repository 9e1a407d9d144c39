"""Cancel latency: `cancel` sent -> the cancelled request's answer received, at each point of a
generation. Run: .venv/bin/python bench/cancel.py   (writes bench/results/cancel.json)
"""

from __future__ import annotations

import asyncio
import sys
import time

from common import summary, synthetic_model, write_result

from diffusion_sidecar_client import Sidecar, SidecarError

REPEATS = 5
JOB = {"prompt": "cancel me", "width": 64, "height": 64, "steps": 6}


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


async def measure(sidecar: Sidecar, model_id: str, point: str) -> float:
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


async def main() -> None:
    points = ["queued", "first step", "mid sampling", "vae decode", "by model"]
    results: dict[str, dict] = {}
    async with await Sidecar.start(stderr=asyncio.subprocess.DEVNULL) as sidecar:
        model_id = await sidecar.load_model(synthetic_model())
        for point in points:
            latencies = [await measure(sidecar, model_id, point) for _ in range(REPEATS)]
            results[point] = summary(latencies)
            print(f"{point:13} median {results[point]['median']:7.1f} ms   max {results[point]['max']:7.1f} ms", file=sys.stderr)
    path = write_result("cancel", {"unit": "ms", "target_ms": 100, "job": JOB, "latency": results})
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
