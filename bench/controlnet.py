"""ControlNet: the sampling time per step of a generation with a control image against the same
generation without, on the full-size synthetic SD1 model loaded once with the synthetic SD1
ControlNet (the smallest pair the library runs; without `control_image` the library leaves the
ControlNet out). The worker's own `denoiseMs` is timed, so the prompt encoding and the VAE, the same
for both, stay out of the ratio. On a shared machine other work only ever adds time: the ratio of
each side's fastest step is the least disturbed figure; the median of the rounds' ratios is beside it.
"""

from __future__ import annotations

import asyncio
import io

from diffusion_sidecar_client import Sidecar, default_command
from PIL import Image, ImageDraw

from sidecar.synth import sd1_full

from .common import Row, interleaved, round_ratios, summary

TITLE = "controlnet"
# CFG on (two passes per step), as a ControlNet is used; small enough for a 2-core machine.
JOB = {"prompt": "controlnet", "width": 128, "height": 128, "cfg_scale": 7.0, "seed": 42, "steps": 2}
ROUNDS = 5


def _control_image() -> bytes:
    image = Image.new("RGB", (JOB["width"], JOB["height"]))
    ImageDraw.Draw(image).rectangle((16, 16, 96, 96), outline=(255, 255, 255), width=3)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


async def measure(model: str) -> dict:
    checkpoint = str(sd1_full.write_synthetic_sd1_full(sd1_full.default_cache_path()))
    controlnet = str(sd1_full.write_synthetic_controlnet(sd1_full.controlnet_cache_path()))
    control = _control_image()
    async with await Sidecar.start(default_command(), stderr=asyncio.subprocess.DEVNULL) as sidecar:
        model_id = await sidecar.load_model(checkpoint, {"controlNetPath": controlnet})

        def generation(controlled: bool) -> object:
            async def run() -> float:
                extra = {"control_image": control} if controlled else {}
                stats = await sidecar.diffusion(modelId=model_id, **JOB, **extra).stats
                return stats.denoiseMs / JOB["steps"]

            return run

        times = await interleaved(ROUNDS, {"none": generation(False), "control": generation(True)})
    return {
        "unit": "ms per sampling step",
        "job": JOB,
        "times": {name: summary(values) for name, values in times.items()},
        "best_ratio": round(min(times["control"]) / min(times["none"]), 3),
        "round_ratios": round_ratios(times["control"], times["none"]),
    }


def rows(result: dict) -> list[Row]:
    job, ratio, times = result["job"], result["round_ratios"], result["times"]
    return [
        Row(
            f"ControlNet / none, sampling time per step, {job['width']}x{job['height']} {job['steps']} steps cfg "
            f"{job['cfg_scale']:g}, full-size SD1 + SD1 ControlNet (synthetic), {ratio['n']} interleaved rounds",
            f"{result['best_ratio']:.2f} ({times['control']['min']:.0f} ms / {times['none']['min']:.0f} ms, fastest "
            f"steps); rounds' ratios median {ratio['median']:.2f} ({ratio['min']:.2f}-{ratio['max']:.2f})",
        )
    ]
