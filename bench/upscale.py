"""10. Upscale: time per output megapixel of the synthetic ESRGAN x4 file (one RRDB block; a real
RealESRGAN has 23, so about 20 times the work per pixel) at a few input sizes, through `upscale`
with the Python client. Where the time goes: the worker's share (`postProcessMs`: the native
upscale, tile by tile, plus the PNG encode) against the whole request (input decode, pipes, base64).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from io import BytesIO
from pathlib import Path

from diffusion_sidecar_client import Sidecar, default_command
from PIL import Image

from sidecar.synth.kinds import write

from .common import Row, ms_since, summary

TITLE = "upscale"
SIDES = (64, 128, 256)
REPEATS = 3


def _png(side: int) -> bytes:
    buffer = BytesIO()
    Image.radial_gradient("L").resize((side, side)).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


async def measure(model: str) -> dict:
    del model  # the upscaler is its own model
    by_side = {}
    with tempfile.TemporaryDirectory() as folder:
        esrgan = str(write("esrgan", Path(folder) / "esrgan-x4.safetensors"))
        async with await Sidecar.start(default_command(), stderr=asyncio.subprocess.DEVNULL) as sidecar:
            upscaler = await sidecar.load_model(esrgan)
            for side in SIDES:
                image, walls, workers = _png(side), [], []
                for _ in range(REPEATS):
                    started = time.perf_counter()
                    _, stats = await sidecar.upscale(upscaler, image)
                    walls.append(ms_since(started))
                    workers.append(stats.postProcessMs)
                megapixels = (side * 4) ** 2 / 1e6
                by_side[side] = {
                    "request": summary(walls),
                    "worker": summary(workers),
                    "ms_per_output_megapixel": round(summary(walls)["median"] / megapixels, 1),
                }
    return {"unit": "ms", "factor": 4, "by_input_side": by_side}


def rows(result: dict) -> list[Row]:
    by = result["by_input_side"]
    sizes = ", ".join(
        f"{side}->{int(side) * 4}: {figures['request']['median']:.0f} ms, worker {figures['worker']['median'] / figures['request']['median']:.0%}"
        for side, figures in by.items()
    )
    largest = by[max(by, key=int)]
    return [
        Row(
            "ESRGAN x4 (synthetic, 1 RRDB block) per output megapixel, at the largest input",
            f"{largest['ms_per_output_megapixel'] / 1000:.1f} s ({sizes})",
        )
    ]
