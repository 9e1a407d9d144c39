"""`make demo`: spawn the sidecar, load a model, generate one image with a progress bar, save it.

With no --model, it uses the synthetic-weights test model (written on first use): a real
architecture with random weights, so the picture it makes is noise (and so are its previews).

Live previews (--preview proj|tae|vae|none, default proj): in a terminal, the latest preview is
drawn under the progress bar in 24-bit colour half-block characters; when stdout is not a
terminal, each preview is saved as a PNG next to the output instead.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
from pathlib import Path

from diffusion_sidecar_client import DiffusionCall, DiffusionProgress, LoadModelProgress, Preview, Sidecar
from PIL import Image as PILImage

from sidecar.synth.sd1 import default_cache_dir, write_synthetic_model
from sidecar.synth.taesd import write_synthetic_taesd

BAR_WIDTH = 30
PREVIEW_COLUMNS = 32
"""Terminal width of the drawn preview; each character cell shows two pixels, one above the other."""


def bar_text(label: str, done: int, total: int, elapsed_ms: float, phase: str = "") -> str:
    filled = BAR_WIDTH * done // max(total, 1)
    return f"{label} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} {phase:7} {elapsed_ms / 1000:.1f}s"


def bar(label: str, done: int, total: int, elapsed_ms: float) -> None:
    end = "\n" if done >= total else ""
    print(f"\r{bar_text(label, done, total, elapsed_ms)}", end=end, flush=True)


def half_blocks(png: bytes, columns: int = PREVIEW_COLUMNS) -> list[str]:
    """The picture as lines of "▀": foreground colour the upper pixel, background the lower."""
    image = PILImage.open(io.BytesIO(png)).convert("RGB")
    rows = max(1, round(columns * image.height / image.width / 2))
    pixels = image.resize((columns, rows * 2), PILImage.Resampling.NEAREST).load()
    lines = []
    for row in range(rows):
        cells = []
        for x in range(columns):
            (r1, g1, b1), (r2, g2, b2) = pixels[x, 2 * row], pixels[x, 2 * row + 1]
            cells.append(f"\x1b[38;2;{r1};{g1};{b1}m\x1b[48;2;{r2};{g2};{b2}m▀")
        lines.append("".join(cells) + "\x1b[0m")
    return lines


class LivePanel:
    """The progress bar with the latest preview under it, redrawn in place (a terminal only)."""

    def __init__(self) -> None:
        self.tick: DiffusionProgress | None = None
        self.preview: Preview | None = None
        self._drawn = 0

    def draw(self) -> None:
        lines = []
        if self.tick is not None:
            t = self.tick
            lines.append(bar_text(f"image {t.image + 1}/{t.batchCount}", t.step, t.totalSteps, t.elapsedMs, t.phase))
        if self.preview is not None:
            p = self.preview
            lines += half_blocks(p.png)
            lines.append(f"preview: step {p.step}/{p.totalSteps}, {p.width}x{p.height}")
        up = f"\x1b[{self._drawn}F" if self._drawn else ""
        sys.stdout.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        sys.stdout.flush()
        self._drawn = len(lines)


async def follow(call: DiffusionCall, out: Path) -> None:
    """Show ticks and previews as they come: drawn live on a terminal, else a bar and saved PNGs."""
    if sys.stdout.isatty():
        panel = LivePanel()

        async def ticks() -> None:
            async for tick in call.progress_stream:
                panel.tick = tick
                panel.draw()

        async def previews() -> None:
            async for preview in call.preview_stream:
                panel.preview = preview
                panel.draw()

        await asyncio.gather(ticks(), previews())
        return

    folder = out.with_name(f"{out.stem}-previews")

    async def save() -> None:
        async for preview in call.preview_stream:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"image{preview.image}-step{preview.step:03}.png").write_bytes(preview.png)

    async def ticks() -> None:
        async for tick in call.progress_stream:
            if tick.phase == "sample":
                bar("generating", tick.step, tick.totalSteps, tick.elapsedMs)

    await asyncio.gather(ticks(), save())
    if folder.exists():
        print(f"previews saved in {folder}/")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model file or diffusers folder (default: the synthetic test model)")
    parser.add_argument("--prompt", default="a lighthouse on a cliff at sunset, oil painting")
    parser.add_argument("--steps", type=int, help="default: 20 for a real model, 4 for the synthetic one")
    parser.add_argument("--size", type=int, help="width and height; default: 512 for a real model, 128 for the synthetic one")
    parser.add_argument("--seed", type=int, default=-1)
    parser.add_argument("--out", default="out/demo.png")
    parser.add_argument("--preview", choices=["proj", "tae", "vae", "none"], default="proj", help="live preview method (default: proj)")
    parser.add_argument("--taesd", help="TAESD file for --preview tae (default with the synthetic model: a synthetic one)")
    args = parser.parse_args()

    synthetic = args.model is None
    if synthetic:
        print("No MODEL given: using the synthetic-weights test model (random weights; its pictures are noise).")
        model_path = str(write_synthetic_model(default_cache_dir()))
    else:
        model_path = args.model
    steps = args.steps or (4 if synthetic else 20)
    size = args.size or (128 if synthetic else 512)
    config = {}
    if args.preview == "tae":
        taesd = args.taesd or (str(write_synthetic_taesd(default_cache_dir().parent / "synthetic-taesd.safetensors")) if synthetic else None)
        if taesd is None:
            parser.error("--preview tae needs --taesd PATH with a real model")
        config["taesdPath"] = taesd
    preview = {} if args.preview == "none" else {"preview_method": args.preview}
    out = Path(args.out)

    async with await Sidecar.start(stderr=asyncio.subprocess.DEVNULL) as sidecar:
        info = await sidecar.initialize()
        print(f"{info.serverName} {info.serverVersion} on {info.backend.name} (binding {info.backend.bindingVersion})")

        def on_load(progress: LoadModelProgress) -> None:
            bar("loading   ", progress.loaded, progress.total, progress.elapsedMs)

        loaded = await sidecar.load_model_result(model_path, config, on_progress=on_load)
        print(f"model {loaded.modelId}: {loaded.modelFamily}, loaded in {loaded.modelLoadMs / 1000:.1f}s")

        if synthetic and preview:
            print("The previews below show the picture forming: with the synthetic model, noise forming.")
        call = sidecar.diffusion(
            modelId=loaded.modelId, prompt=args.prompt, width=size, height=size, steps=steps, seed=args.seed, **preview
        )
        await follow(call, out)
        images, stats = await call.outputs, await call.stats

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
