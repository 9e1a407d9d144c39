"""9. img2img: what editing an image costs next to making one.

- Time: img2img at strength 1 (every step runs, so the sampling work is the same) against
  text-to-image of the same size, steps and seed, interleaved through one sidecar. What differs
  is the VAE encode of the source and carrying it in.
- Input cost: decoding and checking the source (base64, header, full decode, orientation, RGB at
  the output size: `sidecar/images.py`, what the front does before any native work) as a share of
  the img2img request, for a JPEG and a PNG source of the output size.
- Memory: the VAE encoder that workers keep so that img2img works on every model. Worker RSS
  after a load and one text-to-image generation, loaded without the encoder (the native default)
  and with it, each in a fresh process.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import statistics
import subprocess
import sys
import time

from diffusion_sidecar_client import Sidecar
from diffusion_sidecar_protocol.types import Limits
from PIL import Image

from sidecar.inputs import images

from .common import Row, interleaved, ms_since, summary

TITLE = "img2img"
SIZE = 512
STEPS = 4
ROUNDS = 3
DECODE_REPEATS = 20
TARGET_INPUT_SHARE = 0.01

# Loads the model in a fresh process, with or without the VAE encoder, makes one image, and
# reports its memory as the last line of stdout (the native library prints to stdout too).
_MEMORY_PROBE = """
import json, sys
from pathlib import Path
from stable_diffusion_cpp import StableDiffusion
model, decode_only, size = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
sd = StableDiffusion(model_path=model, vae_decode_only=decode_only, n_threads=2, verbose=False)
sd.generate_image(prompt="memory", width=size, height=size, sample_steps=1, seed=42)
status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
print(json.dumps({key: int(status[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}))
"""


def _source(size: int, fmt: str) -> bytes:
    """A photo-like source: smooth gradients plus noise, so neither format compresses it away."""
    gradient = Image.linear_gradient("L").resize((size, size))
    image = Image.merge("RGB", (gradient, gradient.rotate(90), Image.effect_noise((size, size), 40)))
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def _input_ms(text: str, size: int) -> float:
    """The front's work on one source, median of repeats (ms)."""
    times = []
    for _ in range(DECODE_REPEATS):
        start = time.perf_counter()
        images.picture(images.decode("init_image", text, Limits()), (size, size))
        times.append(ms_since(start))
    return statistics.median(times)


def _worker_memory(model: str, decode_only: bool, size: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, model, "1" if decode_only else "0", str(size)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {key: round(value, 1) for key, value in json.loads(done.stdout.strip().splitlines()[-1]).items()}


async def measure(model: str, size: int = SIZE, steps: int = STEPS, rounds: int = ROUNDS) -> dict:
    job = {"prompt": "a lighthouse on a cliff at sunset", "width": size, "height": size, "steps": steps, "seed": 42}
    sources = {fmt: base64.b64encode(_source(size, fmt)).decode() for fmt in ("JPEG", "PNG")}
    async with await Sidecar.start(stderr=asyncio.subprocess.DEVNULL) as sidecar:
        model_id = await sidecar.load_model(model, {"threads": 2})

        def timed(**extra):
            async def run() -> float:
                start = time.perf_counter()
                await sidecar.diffusion(modelId=model_id, **job, **extra).outputs
                return ms_since(start)

            return run

        times = await interleaved(
            rounds, {"text_to_image": timed(), "img2img": timed(init_image=sources["JPEG"], strength=1.0)}
        )
    input_ms = {fmt: round(_input_ms(text, size), 3) for fmt, text in sources.items()}
    img2img_ms = statistics.median(times["img2img"])
    return {
        "job": job,
        "rounds": rounds,
        "text_to_image_ms": summary(times["text_to_image"]),
        "img2img_ms": summary(times["img2img"]),
        "ratio": round(img2img_ms / statistics.median(times["text_to_image"]), 3),
        "source_bytes": {fmt: len(base64.b64decode(text)) for fmt, text in sources.items()},
        "input_ms": input_ms,
        "input_share": {fmt: round(ms / img2img_ms, 5) for fmt, ms in input_ms.items()},
        "target_input_share": TARGET_INPUT_SHARE,
        "worker_mb": {
            "decode_only": _worker_memory(model, True, size),
            "with_encoder": _worker_memory(model, False, size),
        },
    }


def rows(result: dict) -> list[Row]:
    size = f"{result['job']['width']}x{result['job']['height']} {result['job']['steps']} steps"
    t2i, i2i = result["text_to_image_ms"]["median"], result["img2img_ms"]["median"]
    share = result["input_share"]
    memory = result["worker_mb"]
    extra = memory["with_encoder"]["VmRSS"] - memory["decode_only"]["VmRSS"]
    extra_peak = memory["with_encoder"]["VmHWM"] - memory["decode_only"]["VmHWM"]
    return [
        Row(f"img2img (strength 1) / text-to-image, {size}, {result['rounds']} interleaved pairs",
            f"{result['ratio']:.3f} ({i2i:.0f} ms / {t2i:.0f} ms)"),
        Row(f"input decode + validate / img2img request, {result['job']['width']}x{result['job']['height']} source",
            f"JPEG {share['JPEG']:.2%} ({result['input_ms']['JPEG']:.1f} ms), PNG {share['PNG']:.2%} ({result['input_ms']['PNG']:.1f} ms)",
            f"<= {result['target_input_share']:.0%}"),
        Row("worker RSS with the VAE encoder kept / without (after a load and one image)",
            f"+{extra:.0f} MB ({memory['decode_only']['VmRSS']:.0f} -> {memory['with_encoder']['VmRSS']:.0f} MB; peak +{extra_peak:.0f} MB)"),
    ]  # fmt: skip
