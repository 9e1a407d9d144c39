"""5. Output cost: PNG encoding and base64 of a 512x512 image as a share of the request that made
it, at every zlib level, with the bytes each level gives.

The request runs through the sidecar; the encode is timed here, on that request's own pixels,
with the worker's own encoder. The synthetic model's pictures are noise, which zlib cannot
shrink: the worst case for time and size. A smooth picture (the same noise blurred) stands in for
real content, where the levels differ in size.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time

from PIL import Image, ImageFilter

from diffusion_sidecar_client import Sidecar
from sidecar.worker.png import COMPRESS_LEVEL, encode_png

from .common import Row, ms_since, summary

TITLE = "output"
JOB = {"prompt": "output cost", "width": 512, "height": 512, "steps": 4, "seed": 42}
LEVELS = range(10)
REPEATS = 5
TARGET_SHARE = 0.03
PARAMETERS = "output cost\nSteps: 4, Sampler: euler_a, Schedule type: discrete, CFG scale: 7, Seed: 42, Size: 512x512"


def _encode_cost(image: Image.Image, level: int) -> tuple[float, int]:
    """Median time of PNG encode + base64 at `level`, and the PNG's size."""
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        png = encode_png(image.tobytes(), image.width, image.height, 3, PARAMETERS, compress_level=level)
        base64.b64encode(png)
        times.append(ms_since(started))
    return summary(times)["median"], len(png)


async def measure(model: str) -> dict:
    async with await Sidecar.start(stderr=asyncio.subprocess.DEVNULL) as sidecar:
        model_id = await sidecar.load_model(model)
        started = time.perf_counter()
        (png,) = await sidecar.diffusion(modelId=model_id, **JOB).outputs
        request_ms = ms_since(started)
    noise = Image.open(io.BytesIO(png)).convert("RGB")
    pictures = {"noise": noise, "smooth": noise.filter(ImageFilter.GaussianBlur(4))}
    levels = {}
    for name, image in pictures.items():
        levels[name] = {}
        for level in LEVELS:
            encode_ms, size = _encode_cost(image, level)
            levels[name][str(level)] = {"ms": encode_ms, "bytes": size, "share": round(encode_ms / request_ms, 5)}
    return {
        "unit": "ms",
        "job": JOB,
        "request_ms": round(request_ms, 1),
        "raw_bytes": noise.width * noise.height * 3,
        "chosen_level": COMPRESS_LEVEL,
        "levels": levels,
        "target_share": TARGET_SHARE,
    }


def rows(result: dict) -> list[Row]:
    chosen, levels = str(result["chosen_level"]), result["levels"]
    job = result["job"]

    def at(level: str) -> str:
        noise, smooth = levels["noise"][level], levels["smooth"][level]
        return (
            f"{noise['share'] * 100:.2f}% ({noise['ms']:.0f} ms; {noise['bytes'] / 1e3:.0f} kB noise, "
            f"{smooth['bytes'] / 1e3:.0f} kB smooth in {smooth['ms']:.0f} ms)"
        )

    request = f"{job['width']}x{job['height']} {job['steps']} steps, {result['request_ms'] / 1000:.1f} s"
    return [
        Row(f"PNG + base64 / request ({request}), zlib level {chosen} (used)", at(chosen), f"<= {result['target_share']:.0%}"),
        Row("same, zlib level 6 (Pillow's default)", at("6")),
        Row("same, zlib level 9", at("9")),
    ]
