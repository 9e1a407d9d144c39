"""9. Cache presets on both families: the synthetic SD1 tiny UNet (UCache) and the synthetic FLUX
DiT (EasyCache). Per family and preset: the speed-up of a whole generation over no cache
(interleaved rounds), the sampling steps the cache reused (from the native log, so it does not
depend on the machine's load), and the mean absolute pixel difference (0-255) from the uncached
image at the same seed. Then one sampling step of each family at the same size (`denoiseMs` per
step of the uncached runs), and what else a generation spends (text encoding, VAE).
"""

from __future__ import annotations

import io
import re
import tempfile
import time
from typing import IO

import numpy as np
from diffusion_sidecar_client import Sidecar
from diffusion_sidecar_protocol.types import CachePreset
from PIL import Image

from sidecar.synth import flux as synth_flux

from .common import Row, interleaved, ms_since, summary

TITLE = "cache"
SIZE = 64
STEPS = 20
ROUNDS = 3
JOB = {"prompt": "a lighthouse on a cliff", "width": SIZE, "height": SIZE, "steps": STEPS, "seed": 42}
PRESETS: tuple[str, ...] = CachePreset.__args__  # slow .. ultra: least reuse to most
UNCACHED = "none"
# FLUX is run as stable-diffusion.cpp advises (cfg 1: distilled guidance, one pass per step).
FAMILIES = {"SD 1.x Tiny UNet": {}, "Flux": {"cfg_scale": 1.0}}
SKIPPED = re.compile(rb"(?:EasyCache|UCache) (?:skipped (\d+)/\d+ steps|completed without skipping steps)")


async def measure(model: str) -> dict:
    flux = synth_flux.write_synthetic_flux(synth_flux.default_cache_dir())
    loads = {
        "SD 1.x Tiny UNet": (model, {}),
        "Flux": (
            str(flux / "diffusion.safetensors"),
            {"clipLPath": str(flux / "clip_l.safetensors"), "vaePath": str(flux / "vae.safetensors")},
        ),
    }
    figures = {}
    with tempfile.TemporaryFile() as log:
        async with await Sidecar.start(stderr=log) as sidecar:
            for family, (path, config) in loads.items():
                model_id = await sidecar.load_model(path, config)
                figures[family] = await _family(sidecar, model_id, FAMILIES[family], log)
                await sidecar.unload_model(model_id)  # one worker's memory at a time
    step = {family: figures[family]["step_ms"]["median"] for family in figures}
    return {
        "unit": "ms",
        "job": JOB,
        "by_family": figures,
        "step_ratio_flux_to_sd1": round(step["Flux"] / step["SD 1.x Tiny UNet"], 3),
    }


async def _family(sidecar: Sidecar, model_id: str, extra: dict, log: IO[bytes]) -> dict:
    images: dict[str, np.ndarray] = {}
    reused: dict[str, int] = {}
    step_ms: list[float] = []
    other_ms: list[float] = []

    def setting(preset: str):
        params = {**JOB, **extra, **({} if preset == UNCACHED else {"cache_preset": preset})}

        async def run() -> float:
            log.seek(0, 2)
            log_start = log.tell()
            started = time.perf_counter()
            call = sidecar.diffusion(modelId=model_id, **params)
            (png,) = await call.outputs
            elapsed = ms_since(started)
            images.setdefault(preset, np.asarray(Image.open(io.BytesIO(png)), dtype=np.int16))
            if preset == UNCACHED:
                stats = await call.stats
                step_ms.append(stats.denoiseMs / params["steps"])
                other_ms.append(stats.conditionerMs + stats.vaeMs)
            else:
                log.seek(log_start)
                reused[preset] = _reused_steps(log.read())
            return elapsed

        return run

    times = await interleaved(ROUNDS, {preset: setting(preset) for preset in (UNCACHED, *PRESETS)})
    uncached = summary(times[UNCACHED])["median"]
    return {
        "generation_ms": {preset: summary(values) for preset, values in times.items()},
        "speedup": {preset: round(uncached / summary(times[preset])["median"], 3) for preset in PRESETS},
        "reused_steps": reused,
        "mean_pixel_difference": {
            preset: round(float(np.abs(images[preset] - images[UNCACHED]).mean()), 2) for preset in PRESETS
        },
        "step_ms": summary(step_ms),
        "text_encoding_and_vae_ms": summary(other_ms),
    }


def _reused_steps(log: bytes) -> int:
    """Steps the cache reused in the one generation whose log this is; -1 if it did not say."""
    found = SKIPPED.findall(log)
    return int(found[-1] or 0) if found else -1


def rows(result: dict) -> list[Row]:
    job = f"{result['job']['width']}x{result['job']['height']} {result['job']['steps']} steps"
    rows_ = []
    for family, figures in result["by_family"].items():
        cache = "UCache" if family.startswith("SD") else "EasyCache"
        per_preset = "; ".join(
            f"{preset} {figures['speedup'][preset]:.2f}x, {figures['reused_steps'][preset]} reused, "
            f"diff {figures['mean_pixel_difference'][preset]:.1f}"
            for preset in PRESETS
        )
        rows_.append(Row(f"{cache} presets on {family}, {job}: speed-up, steps reused, mean pixel diff", per_preset))
    by = result["by_family"]
    rows_.append(
        Row(
            f"one sampling step, {result['job']['width']}x{result['job']['height']}: tiny FLUX / tiny SD1",
            f"{result['step_ratio_flux_to_sd1']:.3f} ({by['Flux']['step_ms']['median']:.0f} ms / "
            f"{by['SD 1.x Tiny UNet']['step_ms']['median']:.0f} ms); text encoding + VAE per image: "
            f"{by['Flux']['text_encoding_and_vae_ms']['median']:.0f} ms / "
            f"{by['SD 1.x Tiny UNet']['text_encoding_and_vae_ms']['median']:.0f} ms",
        )
    )
    return rows_
