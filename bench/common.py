"""Shared by the benchmarks: the synthetic model, process memory, and where results go."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from sidecar.synth_model import default_cache_dir, write_synthetic_model

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the benchmarks share the tests' helpers
from tests.harness import child_pids  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def synthetic_model() -> str:
    return str(write_synthetic_model(default_cache_dir()))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise LookupError(f"no VmRSS for {pid}")


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "median": round(statistics.median(ordered), 3),
        "p99": round(ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))], 3),
        "min": round(ordered[0], 3),
        "max": round(ordered[-1], 3),
    }


def write_result(name: str, data: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
