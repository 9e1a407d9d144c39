"""Soak: 200 sequential small generations through one sidecar; memory of the front process and
of the model's worker every 10. Not part of `make bench` (it takes minutes and answers another
question: does memory grow?). Run: .venv/bin/python -m bench.soak   (bench/results/soak.json)
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from diffusion_sidecar_client import Sidecar
from tests.harness import child_pids

from .common import status_mb, synthetic_model

GENERATIONS = 200
EVERY = 10
WARM_UP = 20
JOB = {"prompt": "soak", "width": 64, "height": 64, "steps": 1}
REPORT = Path(__file__).resolve().parent / "results" / "soak.json"


async def main() -> None:
    samples = []
    async with await Sidecar.start(stderr=asyncio.subprocess.DEVNULL) as sidecar:
        model_id = await sidecar.load_model(synthetic_model())
        (worker,) = child_pids(sidecar.pid)
        for index in range(1, GENERATIONS + 1):
            await sidecar.diffusion(modelId=model_id, **JOB, seed=index).outputs
            if index % EVERY == 0:
                sample = {"generation": index, "front_mb": status_mb(sidecar.pid), "worker_mb": status_mb(worker)}
                samples.append(sample)
                print(f"{index:4}  front {sample['front_mb']:7.1f} MB   worker {sample['worker_mb']:7.1f} MB", file=sys.stderr)
    warm = [s for s in samples if s["generation"] >= WARM_UP]
    growth = {key: round(warm[-1][key] - warm[0][key], 1) for key in ("front_mb", "worker_mb")}
    verdict = "flat" if all(abs(value) < 5 for value in growth.values()) else "grows"
    report = {"job": JOB, "samples": samples, "growth_after_warm_up_mb": growth, "verdict": verdict}
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    print(f"growth after generation {WARM_UP}: {growth} -> {verdict}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
