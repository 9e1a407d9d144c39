"""9. Contention: two models, one request each, sent together against one after the other.

One sidecar holds both models (its scheduler makes them take turns on the cores); a second sidecar
holds a copy of the second model, and a request on each sidecar sent together is how two models
ran before the scheduler: in parallel, every worker with a thread per core. All three ways run
interleaved: the total time of both requests, and when the first result arrives.
Then the mixed case: a long request on one model, a short one on the other sent just after; how
long the short one waits (its answer time less its own `generationMs`), scheduled and not.
Last, what loading a model costs a generation that runs meanwhile.
"""

from __future__ import annotations

import asyncio
import time

from diffusion_sidecar_client import Sidecar

from .common import Row, interleaved, ms_since, round_ratios, summary

TITLE = "contention"
JOB = {"prompt": "contention", "width": 128, "height": 128, "steps": 4, "seed": 42}
LONG = {**JOB, "steps": 8}
SHORT = {**JOB, "width": 64, "height": 64, "steps": 1}
ROUNDS = 4
SECOND_MODEL = {"type": "f16"}  # the file's own weight type: the same model under another id
THIRD_MODEL = {"type": "f16", "threads": 1}
TARGET_TOTAL_RATIO = 1.02
TARGET_FIRST_RATIO = 0.55


async def _together(first: tuple[Sidecar, str], second: tuple[Sidecar, str]) -> dict[str, float]:
    started = time.perf_counter()
    calls = [sidecar.diffusion(modelId=model_id, **JOB) for sidecar, model_id in (first, second)]
    done = []
    for finished in asyncio.as_completed([call.outputs for call in calls]):
        await finished
        done.append(ms_since(started))
    return {"first": done[0], "total": done[1]}


async def _one_after_the_other(first: tuple[Sidecar, str], second: tuple[Sidecar, str]) -> dict[str, float]:
    started = time.perf_counter()
    done = []
    for sidecar, model_id in (first, second):
        await sidecar.diffusion(modelId=model_id, **JOB).outputs
        done.append(ms_since(started))
    return {"first": done[0], "total": done[1]}


async def _mixed(long: tuple[Sidecar, str], short: tuple[Sidecar, str]) -> dict[str, float]:
    started = time.perf_counter()

    async def answered(call) -> float:
        await call.outputs
        return ms_since(started)

    long_call = long[0].diffusion(modelId=long[1], **LONG)
    short_call = short[0].diffusion(modelId=short[1], **SHORT)
    long_ms, short_ms = await asyncio.gather(answered(long_call), answered(short_call))
    return {"short": short_ms, "short_wait": short_ms - (await short_call.stats).generationMs, "long": long_ms}


async def _generation_during_load(sidecar: Sidecar, model_id: str, model: str) -> float:
    started = time.perf_counter()
    call = sidecar.diffusion(modelId=model_id, **JOB)
    loading = asyncio.ensure_future(sidecar.load_model(model, THIRD_MODEL))
    await call.outputs
    elapsed = ms_since(started)
    await sidecar.unload_model(await loading)
    return elapsed


async def _generation(sidecar: Sidecar, model_id: str) -> float:
    started = time.perf_counter()
    await sidecar.diffusion(modelId=model_id, **JOB).outputs
    return ms_since(started)


def _figures(runs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    return {key: summary([run[key] for run in runs]) for key in runs[0]}


async def measure(model: str) -> dict:
    quiet = {"stderr": asyncio.subprocess.DEVNULL}
    async with await Sidecar.start(**quiet) as shared:
        first = (shared, await shared.load_model(model))
        second = (shared, await shared.load_model(model, SECOND_MODEL))
        async with await Sidecar.start(**quiet) as apart:
            elsewhere = (apart, await apart.load_model(model, SECOND_MODEL))
            ways = await interleaved(
                ROUNDS,
                {
                    "together": lambda: _together(first, second),
                    "one_after_the_other": lambda: _one_after_the_other(first, second),
                    "unscheduled": lambda: _together(first, elsewhere),
                },
            )
            mixed = await interleaved(
                ROUNDS, {"scheduled": lambda: _mixed(first, second), "unscheduled": lambda: _mixed(first, elsewhere)}
            )
        loading = await interleaved(
            ROUNDS,
            {"alone": lambda: _generation(*first), "during_load": lambda: _generation_during_load(*first, model)},
        )
    ways_figures = {name: _figures(runs) for name, runs in ways.items()}
    sequential = ways["one_after_the_other"]
    return {
        "unit": "ms",
        "job": JOB,
        "long": LONG,
        "short": SHORT,
        "rounds": ROUNDS,
        "ways": ways_figures,
        "total_ratio": _median_ratio(ways["together"], sequential, "total", "total"),
        "first_to_unscheduled_total": _median_ratio(ways["together"], ways["unscheduled"], "first", "total"),
        "unscheduled_total_ratio": _median_ratio(ways["unscheduled"], sequential, "total", "total"),
        "mixed": {name: _figures(runs) for name, runs in mixed.items()},
        "load": {name: summary(times) for name, times in loading.items()},
        "load_ratio": round(round_ratios(loading["during_load"], loading["alone"])["median"], 3),
        "target_total_ratio": TARGET_TOTAL_RATIO,
        "target_first_ratio": TARGET_FIRST_RATIO,
    }


def _median_ratio(tops: list[dict], bottoms: list[dict], top: str, bottom: str) -> float:
    """The median of the rounds' ratios (each round's contenders ran back to back)."""
    return round(summary([t[top] / b[bottom] for t, b in zip(tops, bottoms)])["median"], 3)


def seconds(figures: dict) -> str:
    return f"{figures['median'] / 1000:.2f} s"


def rows(result: dict) -> list[Row]:
    ways, job = result["ways"], result["job"]
    size = f"{job['width']}x{job['height']} {job['steps']} steps"
    long, short, load = result["long"], result["short"], result["load"]
    scheduled, unscheduled = result["mixed"]["scheduled"], result["mixed"]["unscheduled"]
    return [
        Row(
            f"two models, one {size} request each: sent together / one after the other, total, "
            f"{result['rounds']} interleaved rounds",
            f"{result['total_ratio']:.3f} ({seconds(ways['together']['total'])} / "
            f"{seconds(ways['one_after_the_other']['total'])})",
            f"<= {result['target_total_ratio']}",
        ),
        Row(
            "first result when sent together / both results unscheduled (two sidecars: as before the scheduler)",
            f"{result['first_to_unscheduled_total']:.3f} ({seconds(ways['together']['first'])} / "
            f"{seconds(ways['unscheduled']['total'])}); unscheduled total / one after the other "
            f"{result['unscheduled_total_ratio']:.3f}",
            f"<= {result['target_first_ratio']}",
        ),
        Row(
            f"mixed: {long['width']}x{long['height']} {long['steps']}-step request on one model, then a "
            f"{short['width']}x{short['height']} {short['steps']}-step one on the other",
            f"short waits {seconds(scheduled['short_wait'])} (answered after {seconds(scheduled['short'])}, long "
            f"{seconds(scheduled['long'])}); unscheduled: short answered after {seconds(unscheduled['short'])}, "
            f"long {seconds(unscheduled['long'])}",
        ),
        Row(
            f"a {size} generation while another model loads / alone",
            f"{result['load_ratio']:.3f} ({seconds(load['during_load'])} / {seconds(load['alone'])})",
        ),
    ]
