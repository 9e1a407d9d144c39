"""9. LoRA: a generation with one LoRA against the same generation without, and with the LoRA set
switching between requests, interleaved on one model loaded as the sidecar loads it (at_runtime:
exact). For comparison, the native default mode (immediately: patches the weights in place, not
exact after removal) on a second model. Two step counts split the cost into a fixed part per
request (stable-diffusion.cpp reads the LoRA files again at the start of every request) and a
part per sampling step (at_runtime computes the LoRA's matrices beside each patched layer).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from diffusion_sidecar_client import Sidecar, default_command

from sidecar.synth.kinds import write

from .common import Row, interleaved, ms_since, summary

TITLE = "lora"
JOB = {"prompt": "lora", "width": 128, "height": 128, "seed": 42}
STEPS = (1, 4)
ROUNDS = 3


async def measure(model: str) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        first = str(write("lora", Path(folder) / "a.safetensors"))
        second = str(Path(folder) / "b.safetensors")
        Path(second).write_bytes(Path(first).read_bytes())
        async with await Sidecar.start(default_command(), stderr=asyncio.subprocess.DEVNULL) as sidecar:
            exact = await sidecar.load_model(model)
            in_place = await sidecar.load_model(model, {"lora_apply_mode": "immediately"})
            switch = {exact: 0, in_place: 0}

            def generation(model_id: str, steps: int, lora: str) -> object:
                async def run() -> float:
                    loras = {"none": None, "one": first, "switching": (first, second)[switch[model_id] % 2]}[lora]
                    switch[model_id] += lora == "switching"
                    started = time.perf_counter()
                    await sidecar.diffusion(
                        modelId=model_id, steps=steps, **JOB, **({"lora": loras} if loras else {})
                    ).outputs
                    return ms_since(started)

                return run

            contenders = {
                f"{mode} {lora} {steps}": generation(model_id, steps, lora)
                for mode, model_id in (("at_runtime", exact), ("immediately", in_place))
                for steps in STEPS
                for lora in ("none", "one", "switching")
            }
            times = await interleaved(ROUNDS, contenders)
    medians = {name: summary(values)["median"] for name, values in times.items()}
    figures = {}
    for mode in ("at_runtime", "immediately"):
        for lora in ("one", "switching"):
            extra = {steps: medians[f"{mode} {lora} {steps}"] - medians[f"{mode} none {steps}"] for steps in STEPS}
            per_step = (extra[STEPS[1]] - extra[STEPS[0]]) / (STEPS[1] - STEPS[0])
            figures[f"{mode} {lora}"] = {
                "ratio": {
                    steps: round(medians[f"{mode} {lora} {steps}"] / medians[f"{mode} none {steps}"], 3)
                    for steps in STEPS
                },
                "per_request_ms": round(extra[STEPS[0]] - per_step * STEPS[0], 1),
                "per_step_ms": round(per_step, 1),
            }
    return {
        "unit": "ms",
        "job": JOB,
        "steps": STEPS,
        "times": {n: summary(v) for n, v in times.items()},
        "cost": figures,
    }


def rows(result: dict) -> list[Row]:
    size = f"{result['job']['width']}x{result['job']['height']}"
    out = []
    for name, cost in result["cost"].items():
        mode, lora = name.split()
        ratios = ", ".join(f"{steps} steps {ratio:.2f}" for steps, ratio in cost["ratio"].items())
        what = "one LoRA" if lora == "one" else "LoRA set switching every request"
        out.append(
            Row(
                f"{what} / none, {size}, lora_apply_mode {mode}{' (the default: exact)' if mode == 'at_runtime' else ''}",
                f"{ratios}; +{cost['per_request_ms']:.0f} ms per request, +{cost['per_step_ms']:.0f} ms per step",
            )
        )
    return out
