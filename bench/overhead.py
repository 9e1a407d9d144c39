"""1. Overhead: one job through the sidecar end to end (request written -> PNG bytes decoded in
the host) against the same job as a direct in-process call of the binding, interleaved.

Both sides use the same model, seed, sampler, scheduler and thread count, and each pair's pixels
are compared, so the two sides provably did the same work. The sidecar's side includes what the
direct call leaves out: the pipe hops, PNG encoding and base64 of the image.
"""

from __future__ import annotations

import asyncio
import io
import time

from PIL import Image

from diffusion_sidecar_client import Sidecar

from .common import Row, direct_generate, direct_job, direct_model, interleaved, ms_since, physical_cores, summary

TITLE = "overhead"
JOB = direct_job(256, 256)
PAIRS = 5
TARGET_RATIO = 1.02


async def measure(model: str) -> dict:
    threads = physical_cores()
    direct = direct_model(model, threads)
    pictures: dict[str, bytes] = {}

    async def through_direct() -> float:
        started = time.perf_counter()
        image = direct_generate(direct, JOB)
        elapsed = ms_since(started)
        pictures["direct"] = image.convert("RGB").tobytes()
        return elapsed

    async with await Sidecar.start(stderr=asyncio.subprocess.DEVNULL) as sidecar:
        model_id = await sidecar.load_model(model, {"threads": threads})

        async def through_sidecar() -> float:
            started = time.perf_counter()
            (png,) = await sidecar.diffusion(modelId=model_id, **JOB).outputs
            elapsed = ms_since(started)
            pictures["sidecar"] = Image.open(io.BytesIO(png)).convert("RGB").tobytes()
            if "direct" in pictures and pictures["direct"] != pictures["sidecar"]:
                raise AssertionError("the sidecar and the direct call made different pictures: not the same job")
            return elapsed

        times = await interleaved(PAIRS, {"direct": through_direct, "sidecar": through_sidecar})
    direct.close()
    pairs = list(zip(times["direct"], times["sidecar"]))
    return {
        "unit": "ms",
        "job": JOB,
        "threads": threads,
        "pairs": [{"direct": round(d, 1), "sidecar": round(s, 1)} for d, s in pairs],
        "direct": summary(times["direct"]),
        "sidecar": summary(times["sidecar"]),
        "pair_ratios": [round(s / d, 4) for d, s in pairs],
        "overhead_ratio": round(summary([s / d for d, s in pairs])["median"], 4),
        "overhead_ms": summary([s - d for d, s in pairs]),
        "target_ratio": TARGET_RATIO,
    }


def rows(result: dict) -> list[Row]:
    job = result["job"]
    return [
        Row(
            f"sidecar / direct binding call, {job['width']}x{job['height']} {job['steps']} steps, "
            f"{result['overhead_ms']['n']} interleaved pairs",
            f"{result['overhead_ratio']:.3f} ({result['overhead_ms']['median']:+.0f} ms on "
            f"{result['direct']['median'] / 1000:.1f} s); pairs {min(result['pair_ratios']):.3f}-"
            f"{max(result['pair_ratios']):.3f}",
            f"<= {result['target_ratio']}",
        )
    ]
