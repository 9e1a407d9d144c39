"""Soak: 200 sequential small generations through one sidecar; memory of the front process and
of the model's worker every 10. Run: .venv/bin/python bench/soak.py   (bench/results/soak.json)
"""

from __future__ import annotations

import asyncio
import sys

from common import child_pids, rss_mb, synthetic_model, write_result

from diffusion_sidecar_client import Sidecar

GENERATIONS = 200
EVERY = 10
WARM_UP = 20
JOB = {"prompt": "soak", "width": 64, "height": 64, "steps": 1}


async def main() -> None:
    samples = []
    async with await Sidecar.start(stderr=asyncio.subprocess.DEVNULL) as sidecar:
        model_id = await sidecar.load_model(synthetic_model())
        (worker,) = child_pids(sidecar.pid)
        for index in range(1, GENERATIONS + 1):
            call = sidecar.diffusion(modelId=model_id, **JOB, seed=index)
            await call.outputs
            if index % EVERY == 0:
                sample = {"generation": index, "front_mb": round(rss_mb(sidecar.pid), 1), "worker_mb": round(rss_mb(worker), 1)}
                samples.append(sample)
                print(f"{index:4}  front {sample['front_mb']:7.1f} MB   worker {sample['worker_mb']:7.1f} MB", file=sys.stderr)
    warm = [s for s in samples if s["generation"] >= WARM_UP]
    growth = {
        key: round(warm[-1][key] - warm[0][key], 1) for key in ("front_mb", "worker_mb")
    }
    verdict = "flat" if all(abs(value) < 5 for value in growth.values()) else "grows"
    write_result("soak", {"job": JOB, "samples": samples, "growth_after_warm_up_mb": growth, "verdict": verdict})
    print(f"growth after generation {WARM_UP}: {growth} -> {verdict}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
