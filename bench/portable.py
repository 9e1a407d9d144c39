"""9. Portable binary: what choosing ggml's CPU code at run time costs against a library compiled
for this very machine (`GGML_NATIVE`), on the same job, interleaved:
- native: the Python launcher, whose venv library was built here with `-march=native`;
- binary: the frozen binary with the CPU variant it picks for this machine (named in the table);
- binary, AVX2 only: the same binary made to load its `haswell` variant (what an AVX2 laptop runs)
  with DIFFUSION_SIDECAR_CPU_VARIANT.
The binary must be built first (`make bench` does).
"""

from __future__ import annotations

import asyncio
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path

from diffusion_sidecar_client import Sidecar

from .common import Row, direct_job, interleaved, ms_since, physical_cores, round_ratios, summary

TITLE = "portable"
ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "dist" / "diffusion-sidecar"
JOB = direct_job(256, 256)
PAIRS = 5
TARGET_RATIO = 1.03
AVX2_VARIANT = "haswell"


def _generation(sidecar: Sidecar, model_id: str):
    async def generate() -> float:
        started = time.perf_counter()
        await sidecar.diffusion(modelId=model_id, **JOB).outputs
        return ms_since(started)

    return generate


async def measure(model: str) -> dict:
    if not BINARY.exists():
        raise FileNotFoundError(f"{BINARY} is missing: run `make binary` first")
    threads = physical_cores()
    launchers = {
        "native": ([sys.executable, "-m", "sidecar"], {}),
        "binary": ([str(BINARY)], {}),
        "binary, AVX2 only": ([str(BINARY)], {"DIFFUSION_SIDECAR_CPU_VARIANT": AVX2_VARIANT}),
    }
    async with AsyncExitStack() as stack:
        contenders, variants = {}, {}
        for name, (command, env) in launchers.items():
            sidecar = await stack.enter_async_context(await Sidecar.start(command, env=env, stderr=asyncio.subprocess.DEVNULL))
            variants[name] = (await sidecar.initialize()).backend.cpuVariant or "native build"
            model_id = await sidecar.load_model(model, {"threads": threads})
            contenders[name] = _generation(sidecar, model_id)
        times = await interleaved(PAIRS, contenders)
    native = times["native"]
    return {
        "unit": "ms",
        "job": JOB,
        "threads": threads,
        "variants": variants,
        "times": {name: summary(values) for name, values in times.items()},
        # Each round's time over the native build's time in the same round, then the median.
        "ratio_to_native": {
            name: round(round_ratios(values, native)["median"], 4)
            for name, values in times.items()
            if name != "native"
        },
        "target_ratio": TARGET_RATIO,
    }


def rows(result: dict) -> list[Row]:
    job, times = result["job"], result["times"]
    native_ms = times["native"]["median"]
    return [
        Row(
            f"{name} ({result['variants'][name]}) / native build, {job['width']}x{job['height']} {job['steps']} steps, "
            f"{times[name]['n']} interleaved rounds",
            f"{ratio:.3f} ({times[name]['median'] / 1000:.2f} s vs {native_ms / 1000:.2f} s)",
            f"<= {result['target_ratio']}" if name == "binary" else "",
        )
        for name, ratio in result["ratio_to_native"].items()
    ]
