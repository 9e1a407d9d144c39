"""4. Progress latency: the native library's progress callback in the worker -> the host holding
the decoded `diffusion/progress` tick. The callback is stamped from outside the sidecar
(bench/tick_stamps/sitecustomize.py, loaded through PYTHONPATH); the host stamps each tick as
its notification is decoded. Both stamps read CLOCK_MONOTONIC, one clock for every process.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import msgspec

from diffusion_sidecar_client import DiffusionProgress, Sidecar

from .common import Row, summary

TITLE = "progress"
JOB = {"prompt": "progress", "width": 64, "height": 64, "steps": 25}
REQUESTS = 4
TARGET_MEDIAN_MS = 5
STAMPER = Path(__file__).resolve().parent / "tick_stamps"


def _sampling_stamps(lines: list[str]) -> dict[int, int]:
    """The first callback of each sampling step 1..n; later ones (the VAE's tiles) are not ticks."""
    stamps: dict[int, int] = {}
    for line in lines:
        step, steps, at_ns = map(int, line.split())
        if steps == JOB["steps"] and 1 <= step and step not in stamps:
            stamps[step] = at_ns
    return stamps


async def measure(model: str) -> dict:
    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        stamps_file = Path(folder) / "stamps"
        stamps_file.touch()
        env = {"PYTHONPATH": str(STAMPER), "BENCH_TICK_STAMPS": str(stamps_file)}
        async with await Sidecar.start(env=env, stderr=asyncio.subprocess.DEVNULL) as sidecar:
            model_id = await sidecar.load_model(model)
            for seed in range(REQUESTS):
                already = len(stamps_file.read_text().splitlines())
                received: dict[int, int] = {}

                def on_tick(_method: str, raw: msgspec.Raw) -> None:
                    at_ns = time.monotonic_ns()
                    tick = msgspec.json.decode(raw, type=DiffusionProgress)
                    if tick.phase == "sample":  # the phase ticks have no native step to match
                        received[tick.step] = at_ns

                params = {"modelId": model_id, **JOB, "seed": seed}
                await sidecar.request("diffusion", params, on_tick)
                native = _sampling_stamps(stamps_file.read_text().splitlines()[already:])
                if sorted(native) != sorted(received):
                    raise AssertionError(f"ticks {sorted(received)} do not match native steps {sorted(native)}")
                latencies += [(received[step] - native[step]) / 1e6 for step in received]
    return {"unit": "ms", "job": JOB, "ticks": len(latencies), "latency": summary(latencies), "target_median_ms": TARGET_MEDIAN_MS}


def rows(result: dict) -> list[Row]:
    latency = result["latency"]
    return [
        Row(
            f"native progress callback -> tick decoded in the host, {result['ticks']} ticks",
            f"median {latency['median']:.2f} ms, p99 {latency['p99']:.2f} ms",
            f"median <= {result['target_median_ms']} ms",
        )
    ]
