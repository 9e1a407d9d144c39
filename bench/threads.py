"""7. Threads: generation time with the default thread count (a load that omits `threads`: the
native default, the number of physical cores) against every count from 1 to twice the CPUs,
interleaved. Each setting is its own loaded model in one sidecar, so the rounds alternate between
warm workers. The default should be the best, or within the best's run-to-run spread of it.
"""

from __future__ import annotations

import asyncio
import os
import time

from diffusion_sidecar_client import Sidecar, default_command

from .common import Row, interleaved, ms_since, physical_cores, summary

TITLE = "threads"
JOB = {"prompt": "threads", "width": 128, "height": 128, "steps": 4, "seed": 42}
ROUNDS = 3
DEFAULT = "default"


async def measure(model: str) -> dict:
    counts = list(range(1, 2 * (os.cpu_count() or 1) + 1))
    settings: dict[str, dict] = {DEFAULT: {}} | {str(count): {"threads": count} for count in counts}
    command = ["--max-models", str(len(settings))]
    async with await Sidecar.start([*default_command(), *command], stderr=asyncio.subprocess.DEVNULL) as sidecar:
        model_ids = {name: await sidecar.load_model(model, config) for name, config in settings.items()}

        def generation(model_id: str):
            async def run() -> float:
                started = time.perf_counter()
                await sidecar.diffusion(modelId=model_id, **JOB).outputs
                return ms_since(started)

            return run

        times = await interleaved(ROUNDS, {name: generation(model_id) for name, model_id in model_ids.items()})
    medians = {name: summary(values)["median"] for name, values in times.items()}
    best = min((name for name in medians if name != DEFAULT), key=medians.__getitem__)
    spread = (max(times[best]) - min(times[best])) / medians[best]
    ratio = medians[DEFAULT] / medians[best]
    default_threads = physical_cores()
    return {
        "unit": "ms",
        "job": JOB,
        "default_threads": default_threads,
        "cpus": os.cpu_count(),
        "by_threads": {name: summary(values) for name, values in times.items()},
        "best": int(best),
        "default_to_best_ratio": round(ratio, 3),
        "best_spread": round(spread, 3),
        "verdict": _verdict(default_threads == int(best), ratio, spread),
    }


def _verdict(default_is_best: bool, ratio: float, spread: float) -> str:
    if default_is_best:  # then the two figures are one setting measured twice: their gap is noise
        return "the default is the best count"
    return "within noise" if ratio - 1 <= spread else "the default is slower"


def rows(result: dict) -> list[Row]:
    by = result["by_threads"]
    sweep = ", ".join(f"{name}: {by[name]['median'] / 1000:.2f} s" for name in by if name != DEFAULT)
    return [
        Row(
            f"default ({result['default_threads']} threads, {by[DEFAULT]['median'] / 1000:.2f} s) / best of a "
            f"sweep ({sweep}), "
            f"{result['job']['width']}x{result['job']['height']} {result['job']['steps']} steps",
            f"{result['default_to_best_ratio']:.3f}, best {result['best']} threads; {result['verdict']} "
            f"(spread {result['best_spread']:.1%})",
            "default best or within noise",
        )
    ]
