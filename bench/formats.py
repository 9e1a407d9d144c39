"""18. formats: what a weight type costs and saves. The synthetic SD1 model converted by the sidecar's
`convert` to GGUF at f16, q8_0 and q4_0, then each loaded into a fresh worker and used for one
generation, in interleaved rounds (who goes first rotates): load time (`modelLoadMs`), the worker's
peak RSS (VmHWM: load and generation), and the time per sampling step (`denoiseMs / steps`), each as
the median of its per-round ratio to f16. File sizes and the conversion's own time come with them.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import msgspec
from diffusion_sidecar_client import Sidecar
from diffusion_sidecar_protocol.types import ConvertResult
from tests.harness import worker_pids

from .common import Row, interleaved, round_ratios, status_mb

TITLE = "formats"
TYPES = ("f16", "q8_0", "q4_0")
JOB = {"prompt": "formats", "width": 128, "height": 128, "steps": 4, "seed": 42, "sampling_method": "euler"}
ROUNDS = 5


async def _convert(sidecar: Sidecar, model: str, folder: Path, type_name: str) -> ConvertResult:
    params = {"modelPath": model, "outputPath": str(folder / f"sd1-{type_name}.gguf"), "type": type_name}
    return msgspec.json.decode(await sidecar.request("convert", params), type=ConvertResult)


async def _use(sidecar: Sidecar, path: str) -> dict:
    """Load into a fresh worker, generate once, read the worker's peak memory, unload."""
    before = worker_pids(sidecar.pid)
    loaded = await sidecar.load_model_result(path)
    (worker,) = worker_pids(sidecar.pid) - before
    call = sidecar.diffusion(modelId=loaded.modelId, **JOB)
    await call.outputs
    stats = await call.stats
    figures = {
        "load_ms": loaded.modelLoadMs,
        "step_ms": stats.denoiseMs / JOB["steps"],
        "peak_mb": status_mb(worker, "VmHWM"),
    }
    await sidecar.unload_model(loaded.modelId)
    return figures


async def measure(model: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-formats-") as folder:
        # No spare worker: each load's new worker is then the model's, not a spare started after it.
        no_spare = {"DIFFUSION_SIDECAR_SPARE_WORKER": "0"}
        async with await Sidecar.start(env=no_spare, stderr=asyncio.subprocess.DEVNULL) as sidecar:
            converted = {name: await _convert(sidecar, model, Path(folder), name) for name in TYPES}
            runs = await interleaved(
                ROUNDS, {name: (lambda path=result.outputPath: _use(sidecar, path)) for name, result in converted.items()}
            )
    ratios = {
        name: {
            key: round_ratios([run[key] for run in runs[name]], [run[key] for run in runs["f16"]])
            for key in ("load_ms", "step_ms", "peak_mb")
        }
        for name in TYPES
    }
    return {
        "job": JOB,
        "rounds": ROUNDS,
        "files": {
            name: {"bytes": result.outputBytes, "convert_ms": result.convertMs, "weight_types": result.weightTypes}
            for name, result in converted.items()
        },
        "runs": runs,
        "ratios": ratios,
    }


def rows(result: dict) -> list[Row]:
    job, f16 = result["job"], result["runs"]["f16"]
    table = []
    for name in TYPES[1:]:
        ratio = result["ratios"][name]
        size = result["files"][name]["bytes"] / result["files"]["f16"]["bytes"]
        table.append(
            Row(
                f"{name} / f16, synthetic SD1 GGUF, {job['width']}x{job['height']} {job['steps']} steps, "
                f"{result['rounds']} interleaved rounds: file, load, peak RSS, per step",
                f"file {size:.3f}; load {ratio['load_ms']['median']:.3f}; peak RSS {ratio['peak_mb']['median']:.3f}; "
                f"step {ratio['step_ms']['median']:.3f}",
            )
        )
    load = sorted(run["load_ms"] for run in f16)[len(f16) // 2]
    peak = sorted(run["peak_mb"] for run in f16)[len(f16) // 2]
    step = sorted(run["step_ms"] for run in f16)[len(f16) // 2]
    files = result["files"]
    table.append(
        Row(
            "f16 itself (medians), and each conversion's time",
            f"file {files['f16']['bytes'] / 1e6:.0f} MB, load {load:.0f} ms, peak RSS {peak:.0f} MB, step {step:.0f} ms; "
            + ", ".join(f"convert to {name} {files[name]['convert_ms'] / 1000:.1f} s" for name in TYPES),
        )
    )
    return table
