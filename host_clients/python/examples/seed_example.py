"""The seed's example with the Python client: load a model, follow the progress, save the image, print the stats.

    pip install diffusion-sidecar-client
    DIFFUSION_SIDECAR=/path/to/diffusion-sidecar python seed_example.py /models/tiny-sd

tests/test_packaging.py runs it from a fresh venv holding only the client's wheel, against the frozen binary.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import msgspec
from diffusion_sidecar_client import Sidecar


async def main() -> None:
    parser = argparse.ArgumentParser(description="Generate one image through diffusion-sidecar.")
    parser.add_argument("model", help="model file or diffusers folder")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", default="output.png")
    args = parser.parse_args()

    async with await Sidecar.start() as sidecar:  # or Sidecar.start(["/path/to/diffusion-sidecar"])
        model_id = await sidecar.load_model(args.model)
        call = sidecar.diffusion(
            modelId=model_id,
            prompt="a cat sitting on a windowsill",
            width=args.size,
            height=args.size,
            steps=args.steps,
            cfg_scale=7,
        )
        async for tick in call.progress_stream:
            print(f"{tick.step}/{tick.totalSteps}")
        images = await call.outputs  # PNG bytes, one per image
        Path(args.out).write_bytes(images[0])
        print("stats", msgspec.json.encode(await call.stats).decode())


asyncio.run(main())
