"""The files the native library opens are the ones `worker/native_files.py` says it will, and so
checks: a real sidecar runs under `strace -f`, and every file its workers open (other than by path
only, as the checks do) is held to the list, for each layout and family the sidecar loads.

What a worker opens is told apart from what the front opens by the process tree strace records
(the front reads model headers too); the steps are told apart by a marker the front opens between
them (a refused load), which strace records after everything the previous step opened.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from sidecar.synth.kinds import write
from sidecar.worker import messages, native_files
from tests.harness import RawSidecar

pytestmark = pytest.mark.anyio

SMALL = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 1, "seed": 1}
TRACED = "trace=openat,execve,clone,clone3,fork,vfork"


@dataclass
class Open:
    tid: int
    path: str
    flags: str
    succeeded: bool


@dataclass
class Trace:
    opens: list[Open]
    workers: set[int]
    """Every thread of every worker process."""

    def steps(self, markers: list[str]) -> list[list[Open]]:
        """What workers opened before each marker, after the previous one."""
        cuts = [next(i for i, o in enumerate(self.opens) if o.path == marker) for marker in markers]
        return [
            [o for o in self.opens[start:end] if o.tid in self.workers]
            for start, end in zip([0, *cuts], cuts)
        ]


_EVENT = re.compile(r"^(\d+) (.*)$")
_RESUMED = re.compile(r"^<\.\.\. \w+ resumed>(.*)$")
_OPENAT = re.compile(r'^openat\(AT_FDCWD, "((?:[^"\\]|\\.)*)", ([A-Z0-9_|]+)(?:, \w+)?\)\s+= (-?\d+)')
_CHILD = re.compile(r"^(?:clone3?|v?fork)\(.*\)\s+= (\d+)")


def parse(text: str) -> Trace:
    unfinished: dict[int, str] = {}
    parents: dict[int, int] = {}
    execs: set[int] = set()
    opens = []
    for line in text.splitlines():
        match = _EVENT.match(line)
        if not match:
            continue
        tid, call = int(match[1]), match[2]
        if call.endswith("<unfinished ...>"):
            unfinished[tid] = call.removesuffix("<unfinished ...>")
            continue
        if resumed := _RESUMED.match(call):
            call = unfinished.pop(tid, "") + resumed[1]
        if child := _CHILD.match(call):
            parents[int(child[1])] = tid
        elif call.startswith("execve(") and '"worker"' in call and call.endswith("= 0"):
            execs.add(tid)
        elif opened := _OPENAT.match(call):
            opens.append(Open(tid, opened[1], opened[2], int(opened[3]) >= 0))

    def in_worker(tid: int) -> bool:
        while tid not in execs:
            if tid not in parents:
                return False
            tid = parents[tid]
        return True

    return Trace(opens, {o.tid for o in opens if in_worker(o.tid)})


def _linked(source: Path, target: Path) -> Path:
    """`source` under `target`, as a hard link where the file system allows (the files are large)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
    return target


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, synthetic_model: str, synthetic_flux: Path) -> Path:
    """Every layout under one folder (so that `--models-root` can be it): the SD1 diffusers folder,
    the FLUX files, a LoRA, a TAESD, and an ESRGAN attached and another alone."""
    root = Path(os.path.realpath(tmp_path_factory.mktemp("models")))
    for part in ("unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        _linked(Path(synthetic_model) / part, root / "sd1" / part)
    for name in ("diffusion.safetensors", "clip_l.safetensors", "vae.safetensors"):
        _linked(synthetic_flux / name, root / "flux" / name)
    write("lora", root / "style.safetensors")
    write("taesd", root / "taesd.safetensors")
    write("esrgan", root / "esrgan-x4.safetensors")
    shutil.copyfile(root / "esrgan-x4.safetensors", root / "esrgan-alone.safetensors")
    return root


def _job(loras: list[str], hires_model: bool) -> SimpleNamespace:
    """What `Generations.opened_by` reads of a `Generate`."""
    return SimpleNamespace(
        loras=[messages.Lora(path, 1.0, "style", "0" * 12, "lora") for path in loras],
        hires=SimpleNamespace(upscaler=native_files.MODEL_UPSCALER) if hires_model else None,
    )


async def test_every_file_the_native_library_opens_is_one_the_checks_foresaw(
    system_program, python_command: list[str], models: Path, tmp_path: Path
) -> None:
    strace = system_program("strace", "strace")
    log = tmp_path / "strace.log"
    command = [strace, "-f", "-qq", "--seccomp-bpf", "-s", "4096", "-e", TRACED, "-o", str(log), *python_command]
    sd1, flux, lora = models / "sd1", models / "flux", models / "style.safetensors"
    sd1_load = messages.Load(
        model_path=str(sd1),
        taesd_path=str(models / "taesd.safetensors"),
        upscaler_path=str(models / "esrgan-x4.safetensors"),
        lora_apply_mode="immediately",
    )
    generations, job = native_files.Generations(sd1_load), _job([str(lora)], hires_model=True)
    first = generations.opened_by(job)  # type: ignore[arg-type]
    with generations.generating(job):  # type: ignore[arg-type]
        pass
    second = generations.opened_by(_job([], hires_model=False))  # type: ignore[arg-type]
    # Each step: its request, and what the library will open, from the same functions the checks use.
    steps = [
        (
            "loadModel",
            {"modelPath": str(sd1), "modelConfig": {
                "taesdPath": sd1_load.taesd_path, "upscalerPath": sd1_load.upscaler_path, "lora_apply_mode": "immediately",
            }},
            native_files.opened_by_load(sd1_load),
        ),
        ("diffusion", {**SMALL, "lora": str(lora), "hires": {"scale": 2, "steps": 1, "upscaler": "model"}}, first),
        # Applied immediately, the first request's LoRA is opened again to subtract it.
        ("diffusion", SMALL, second),
        (
            "loadModel",
            {"modelPath": str(flux / "diffusion.safetensors"), "modelConfig": {
                "clipLPath": str(flux / "clip_l.safetensors"), "vaePath": str(flux / "vae.safetensors"),
            }},
            native_files.opened_by_load(messages.Load(
                diffusion_model_path=str(flux / "diffusion.safetensors"),
                clip_l_path=str(flux / "clip_l.safetensors"),
                vae_path=str(flux / "vae.safetensors"),
            )),
        ),
        ("loadModel", {"modelPath": str(models / "esrgan-alone.safetensors")},
         native_files.opened_by_load(messages.Load(upscaler_path=str(models / "esrgan-alone.safetensors")))),
        # The converter reads its inputs; the file it writes (O_CREAT) is not one the checks read.
        ("convert", {"modelPath": str(sd1), "vaePath": str(flux / "vae.safetensors"), "type": "f16",
                     "outputPath": str(models / f"converted-{tmp_path.name}.gguf")},
         native_files.opened_by_convert(messages.Convert(
             input_path=str(sd1), vae_path=str(flux / "vae.safetensors"), output_path="", weight_type="f16",
             tensor_type_rules="",
         ))),
    ]  # fmt: skip
    # Inside the root, so that the front's check opens them (by path only) and strace records it.
    markers = [str(models / f"marker-{tmp_path.name}-{index}.safetensors") for index in range(len(steps))]
    sidecar = await RawSidecar.start("--models-root", str(models), command=command, stderr_path=tmp_path / "stderr")
    try:
        sd1_id = None
        for (method, params, _), marker in zip(steps, markers):
            answer = await sidecar.call(method, {**params, "modelId": sd1_id} if method == "diffusion" else params, timeout=300)
            assert "result" in answer, answer
            sd1_id = sd1_id or answer["result"]["modelId"]
            refused = await sidecar.call("loadModel", {"modelPath": marker})
            assert "no such file" in refused["error"]["message"]
        await sidecar.close_stdin()
        assert await sidecar.exit_status() == 0
    finally:
        await sidecar.stop()
    text = log.read_text()
    trace = parse(text)
    stderr = "\n".join(line for line in (tmp_path / "stderr").read_text().splitlines() if not line.startswith("["))
    assert trace.workers, f"no worker process in a trace of {len(text)} bytes; strace said: {stderr[-2000:]}"
    for (method, _, foreseen), observed in zip(steps, trace.steps(markers)):
        native = [
            o for o in observed if o.path.startswith(str(models)) and "O_PATH" not in o.flags and "O_CREAT" not in o.flags
        ]
        predicted = {file.path for file in foreseen}
        present = {file.path for file in foreseen if os.path.exists(file.path)}
        assert {o.path for o in native} <= predicted, f"{method}: opens nobody checked"
        assert {o.path for o in native if o.succeeded} == present, f"{method}: a foreseen file was not opened"

