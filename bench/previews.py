"""Previews: what live previews cost a generation, per method, against the same job without.

One sidecar, the synthetic model loaded twice: with a synthetic TAESD file (for none, proj, tae)
and without (for vae: on a model with a TAESD file the library decodes vae previews with it too).
The same job (256x256, 4 steps, seed 42, euler) with no previews, with proj, tae and vae previews
at interval 1, and tae at interval 2 (the library would decode every step; the sidecar skips the
decode between intervals), interleaved (who goes first rotates). Each method's figure is the
median of its per-round ratio to the no-preview run of the same round. BENCH_PREVIEW_ROUNDS,
BENCH_PREVIEW_SIZE and BENCH_PREVIEW_STEPS make a small run to check that the item works.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

from diffusion_sidecar_client import Sidecar

from sidecar.synth.taesd import write_synthetic_taesd

from .common import Row, direct_job, interleaved, ms_since, physical_cores, round_ratios, summary

TITLE = "previews"
SIZE = int(os.environ.get("BENCH_PREVIEW_SIZE", "256"))
ROUNDS = int(os.environ.get("BENCH_PREVIEW_ROUNDS", "5"))
JOB = {**direct_job(SIZE, SIZE), "steps": int(os.environ.get("BENCH_PREVIEW_STEPS", "4"))}
METHODS = {
    "none": {},
    "proj": {"preview_method": "proj"},
    "tae": {"preview_method": "tae"},
    "vae": {"preview_method": "vae"},
    "tae/2": {"preview_method": "tae", "preview_interval": 2},
}
TARGETS = {"proj": 1.02, "tae": 1.10}


async def measure(model: str) -> dict:
    threads = physical_cores()
    with tempfile.TemporaryDirectory() as folder:
        taesd = str(write_synthetic_taesd(Path(folder) / "taesd.safetensors"))
        async with await Sidecar.start(stderr=asyncio.subprocess.DEVNULL) as sidecar:
            with_taesd = await sidecar.load_model(model, {"threads": threads, "taesdPath": taesd})
            without = await sidecar.load_model(model, {"threads": threads})
            counts: dict[str, int] = {}

            def run(method: str):
                async def once() -> float:
                    model_id = without if method == "vae" else with_taesd
                    started = time.perf_counter()
                    call = sidecar.diffusion(modelId=model_id, **JOB, **METHODS[method])
                    previews = [p async for p in call.preview_stream]
                    await call.outputs
                    counts[method] = len(previews)
                    return ms_since(started)

                return once

            times = await interleaved(ROUNDS, {method: run(method) for method in METHODS})
    ratios = {method: round_ratios(times[method], times["none"]) for method in METHODS if method != "none"}
    return {
        "unit": "ms",
        "job": JOB,
        "threads": threads,
        "rounds": ROUNDS,
        "times": {method: summary(values) for method, values in times.items()},
        "previews_per_request": counts,
        "methods": METHODS,
        "ratios": ratios,
        "targets": TARGETS,
    }


def rows(result: dict) -> list[Row]:
    job = result["job"]
    base = result["times"]["none"]["median"]
    return [
        Row(
            f"{result['methods'][method]['preview_method']} previews"
            f"{' (full VAE: the model loaded without TAESD)' if method == 'vae' else ''} at interval "
            f"{result['methods'][method].get('preview_interval', 1)} / none, {job['width']}x{job['height']} "
            f"{job['steps']} steps, {result['rounds']} interleaved rounds",
            f"{ratio['median']:.3f} (rounds {ratio['min']:.3f}-{ratio['max']:.3f}; none {base / 1000:.1f} s; "
            f"{result['previews_per_request'].get(method, 0)} previews)",
            f"<= {result['targets'][method]}" if method in result["targets"] else "",
        )
        for method, ratio in result["ratios"].items()
    ]
