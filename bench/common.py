"""Shared by the benchmarks: the synthetic model, the direct (no sidecar) path, fair timing,
process memory, and the table's rows."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NamedTuple, TypeVar

from sidecar.synth.sd1 import default_cache_dir, write_synthetic_model

NOISE_NOTE = "synthetic model: random weights, every picture is noise"


class Row(NamedTuple):
    """One line of `make bench`'s table."""

    what: str
    result: str
    target: str = ""


def synthetic_model() -> str:
    return str(write_synthetic_model(default_cache_dir()))


def model_megabytes(model: str) -> float:
    return round(sum(file.stat().st_size for file in Path(model).rglob("*") if file.is_file()) / 1e6, 1)


def physical_cores() -> int:
    """The native library's default thread count: what `threads` is when a load omits it."""
    # Imported on first use, not with this module: loading the library prints to fd 1, which
    # `python -m bench` hands to stderr first.
    import stable_diffusion_cpp.stable_diffusion_cpp as sd

    return sd.sd_get_num_physical_cores()


def direct_model(model: str, threads: int):
    """The model loaded in this process through the binding's own class: what a host that calls
    stable-diffusion.cpp itself does."""
    from stable_diffusion_cpp import StableDiffusion

    return StableDiffusion(model_path=model, n_threads=threads, verbose=False)


def direct_job(width: int, height: int) -> dict:
    """A job both the sidecar and the binding's class take, with nothing left to either's defaults
    (their defaults differ), so both sides make the same picture."""
    return {
        "prompt": "a lighthouse on a cliff at sunset",
        "width": width,
        "height": height,
        "steps": 4,
        "seed": 42,
        "sampling_method": "euler",
        "scheduler": "discrete",
    }


def direct_generate(model, job: dict):
    """One image through the binding, from the same job dict the sidecar takes (a PIL image)."""
    (image,) = model.generate_image(
        prompt=job["prompt"],
        width=job["width"],
        height=job["height"],
        sample_steps=job["steps"],
        seed=job["seed"],
        sample_method=job["sampling_method"],
        scheduler=job["scheduler"],
    )
    return image


def ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


T = TypeVar("T")


async def interleaved(
    rounds: int, contenders: dict[str, Callable[[], Awaitable[T]]], warm_up: int = 1
) -> dict[str, list[T]]:
    """Run each contender once per round and keep what it returns (a time, or several).

    Who goes first rotates every round, so a slow spell of the machine, or an order effect, falls
    on every contender alike; the first `warm_up` rounds are run but not kept.
    """
    names = list(contenders)
    kept: dict[str, list[T]] = {name: [] for name in names}
    for round_ in range(warm_up + rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            value = await contenders[name]()
            if round_ >= warm_up:
                kept[name].append(value)
    return kept


def status_mb(pid: int, field: str = "VmRSS") -> float:
    """A memory figure of a live process from /proc/PID/status (VmRSS now, VmHWM its peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise LookupError(f"no {field} for {pid}")


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "median": round(statistics.median(ordered), 3),
        "p99": round(ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))], 3),
        "min": round(ordered[0], 3),
        "max": round(ordered[-1], 3),
    }


def round_ratios(times: list[float], base: list[float]) -> dict[str, float]:
    """Each interleaved round's time over the baseline's time in the same round, summarised: a
    ratio per round cancels the drift of the machine between rounds."""
    return summary([time / baseline for time, baseline in zip(times, base)])
