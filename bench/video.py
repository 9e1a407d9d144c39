"""19. Video: seconds per frame and per sampling step of short clips on the synthetic Wan (1.3B
layout, no text encoder), through `video` with the Python client, cfg 1 (one model pass per step).
Where the time goes: the phase times the result reports (encode, sample, decode).
"""

from __future__ import annotations

import asyncio
import time

from diffusion_sidecar_client import Sidecar, default_command

from sidecar.synth import wan

from .common import Row, ms_since

TITLE = "video"
CLIPS = ((32, 5, 1), (32, 5, 2), (32, 9, 1))
"""(side, frames, steps): the per-step cost from the first two, the per-frame cost from the first and last."""


async def measure(model: str) -> dict:
    del model  # the video model is its own
    folder = wan.write_synthetic_wan(wan.default_cache_dir())
    async with await Sidecar.start(default_command(), stderr=asyncio.subprocess.DEVNULL) as sidecar:
        started = time.perf_counter()
        loaded = await sidecar.load_model_result(
            str(folder / "diffusion.safetensors"), {"vaePath": str(folder / "vae.safetensors")}
        )
        load_ms = ms_since(started)
        clips = []
        for side, frames, steps in CLIPS:
            made = await sidecar.video(
                loaded.modelId, "waves", width=side, height=side, video_frames=frames, steps=steps, cfg_scale=1.0, seed=1
            )
            stats = made.result.stats
            clips.append({
                "side": side, "frames": frames, "steps": steps, "generation_ms": stats.generationMs,
                "encode_ms": stats.conditionerMs, "sample_ms": stats.denoiseMs, "decode_ms": stats.vaeMs,
                "s_per_step": round(stats.denoiseMs / steps / 1000, 2),
                "s_per_frame": round(stats.generationMs / frames / 1000, 2),
            })  # fmt: skip
    return {"unit": "ms", "load_ms": load_ms, "clips": clips}


def rows(result: dict) -> list[Row]:
    return [
        Row(
            f"synthetic Wan {clip['side']}x{clip['side']}, {clip['frames']} frames, {clip['steps']} step(s)",
            f"{clip['s_per_step']:.1f} s/step, {clip['s_per_frame']:.1f} s/frame "
            f"(encode {clip['encode_ms'] / 1000:.1f} s, sample {clip['sample_ms'] / 1000:.1f} s, decode {clip['decode_ms'] / 1000:.1f} s)",
        )
        for clip in result["clips"]
    ]
