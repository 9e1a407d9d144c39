"""`make demo`: spawn the sidecar, load a model, generate one image with a progress bar, save it.

With no --model, it uses the synthetic-weights test model (written on first use): a real
architecture with random weights, so the picture it makes is noise.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from diffusion_sidecar_client import LoadModelProgress, Sidecar
from sidecar.synth_model import default_cache_dir, write_synthetic_model

BAR_WIDTH = 30


def bar(label: str, done: int, total: int, elapsed_ms: float) -> None:
    filled = BAR_WIDTH * done // max(total, 1)
    end = "\n" if done >= total else ""
    print(f"\r{label} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total}  {elapsed_ms / 1000:.1f}s", end=end, flush=True)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model file or diffusers folder (default: the synthetic test model)")
    parser.add_argument("--prompt", default="a lighthouse on a cliff at sunset, oil painting")
    parser.add_argument("--steps", type=int, help="default: 20 for a real model, 4 for the synthetic one")
    parser.add_argument("--size", type=int, help="width and height; default: 512 for a real model, 128 for the synthetic one")
    parser.add_argument("--seed", type=int, default=-1)
    parser.add_argument("--out", default="out/demo.png")
    args = parser.parse_args()

    synthetic = args.model is None
    if synthetic:
        print("No MODEL given: using the synthetic-weights test model (random weights; its pictures are noise).")
        model_path = str(write_synthetic_model(default_cache_dir()))
    else:
        model_path = args.model
    steps = args.steps or (4 if synthetic else 20)
    size = args.size or (128 if synthetic else 512)

    async with await Sidecar.start(stderr=asyncio.subprocess.DEVNULL) as sidecar:
        info = await sidecar.initialize()
        print(f"{info.serverName} {info.serverVersion} on {info.backend.name} (binding {info.backend.bindingVersion})")

        def on_load(progress: LoadModelProgress) -> None:
            bar("loading   ", progress.loaded, progress.total, progress.elapsedMs)

        loaded = await sidecar.load_model_result(model_path, on_progress=on_load)
        print(f"model {loaded.modelId}: {loaded.modelFamily}, loaded in {loaded.modelLoadMs / 1000:.1f}s")

        call = sidecar.diffusion(
            modelId=loaded.modelId, prompt=args.prompt, width=size, height=size, steps=steps, seed=args.seed
        )
        async for tick in call.progress_stream:
            bar("generating", tick.step, tick.totalSteps, tick.elapsedMs)
        images, stats = await call.outputs, await call.stats

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(images[0])
    print(f"saved {out} ({stats.width}x{stats.height}, seed {stats.seed})")
    print("stats:")
    for field in stats.__struct_fields__:
        print(f"  {field:18} {getattr(stats, field)}")
    if synthetic:
        print("NOTE: this picture is noise: the synthetic model has random weights. Run `make demo MODEL=path` with a real model.")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
