"""17. GPU: the same job on every device the binary lists, as a ratio to the CPU, interleaved.

The job is the synthetic FLUX (`synth-model --kind flux`) at 64x64, 2 steps, seed 42. On a GPU the
diffusion model samples there; text encoding and the VAE stay on the CPU unless
BENCH_GPU_EVERYTHING=1 puts them on the GPU too (lavapipe, Mesa's software Vulkan, corrupts its
heap that way: docs/gpu.md). Devices are those `initialize` lists under the bench's environment:
lavapipe shows only with GGML_VK_VISIBLE_DEVICES=0. Reported: the whole request and its sampling
time (`denoiseMs`, the part that runs on the device), each as the median of per-round ratios.
"""

from __future__ import annotations

import asyncio
import os
import time
from contextlib import AsyncExitStack
from pathlib import Path

from diffusion_sidecar_client import Sidecar

from sidecar.synth import flux as synth_flux

from .common import Row, interleaved, ms_since, round_ratios, summary

TITLE = "gpu"
BINARY = Path(__file__).resolve().parent.parent / "dist" / "diffusion-sidecar"
JOB = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 2, "cfg_scale": 1.0, "seed": 42}
ROUNDS = int(os.environ.get("BENCH_GPU_ROUNDS", "3"))


async def measure(_model: str) -> dict:
    if not BINARY.exists():
        raise FileNotFoundError(f"{BINARY} is missing: run `make binary` first")
    flux = synth_flux.write_synthetic_flux(synth_flux.default_cache_dir())
    companions = {"clipLPath": str(flux / "clip_l.safetensors"), "vaePath": str(flux / "vae.safetensors")}
    everything = os.environ.get("BENCH_GPU_EVERYTHING") == "1"
    sampling: dict[str, list[float]] = {}
    async with AsyncExitStack() as stack:
        sidecar = await stack.enter_async_context(await Sidecar.start([str(BINARY)], stderr=asyncio.subprocess.DEVNULL))
        devices = (await sidecar.initialize()).backend.devices
        contenders = {}
        for device in devices:
            on_cpu = {} if everything or device.type == "cpu" else {"clip_on_cpu": True, "vae_on_cpu": True}
            config = {**companions, **on_cpu, "device": device.name}
            model_id = await sidecar.load_model(str(flux / "diffusion.safetensors"), config)
            await sidecar.diffusion(modelId=model_id, **JOB).outputs  # the first run compiles the GPU's shaders
            contenders[device.name] = _generation(sidecar, model_id, sampling.setdefault(device.name, []))
        times = await interleaved(ROUNDS, contenders, warm_up=0)  # warmed above, once per device
    cpu = "CPU"
    return {
        "unit": "ms",
        "job": JOB,
        "everything_on_device": everything,
        "devices": {device.name: device.description for device in devices},
        "times": {name: summary(values) for name, values in times.items()},
        "sampling": {name: summary(values) for name, values in sampling.items()},
        "ratio_to_cpu": {name: round(round_ratios(times[name], times[cpu])["median"], 3) for name in times if name != cpu},
        "sampling_ratio_to_cpu": {
            name: round(round_ratios(sampling[name], sampling[cpu])["median"], 3) for name in sampling if name != cpu
        },
    }


def _generation(sidecar: Sidecar, model_id: str, sampling: list[float]):
    async def generate() -> float:
        started = time.perf_counter()
        call = sidecar.diffusion(modelId=model_id, **JOB)
        await call.outputs
        sampling.append((await call.stats).denoiseMs)
        return ms_since(started)

    return generate


def rows(result: dict) -> list[Row]:
    job = result["job"]
    where = "everything on the device" if result["everything_on_device"] else "sampling on the device"
    if not result["ratio_to_cpu"]:
        return [Row("gpu: no GPU listed (lavapipe: GGML_VK_VISIBLE_DEVICES=0)", "-", "")]
    return [
        Row(
            f"{name} ({result['devices'][name]}) / CPU, FLUX {job['width']}x{job['height']} {job['steps']} steps, "
            f"{where}, {result['times'][name]['n']} interleaved rounds",
            f"request {ratio:.2f}, sampling {result['sampling_ratio_to_cpu'][name]:.2f}",
            "",
        )
        for name, ratio in result["ratio_to_cpu"].items()
    ]
