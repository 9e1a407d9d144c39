"""What only the frozen binary can get wrong: its launcher process and its unpacked files. And
`--version`, which both launchers must answer alike.
"""

from __future__ import annotations

import filecmp
import subprocess
from importlib import metadata
from pathlib import Path

import pytest
from diffusion_sidecar_client import Sidecar

from sidecar import __version__
from sidecar.frozen import BUNDLED_LIBRARY
from tests.harness import RawSidecar, descendant_pids, kill, wait_gone, worker_pids

pytestmark = pytest.mark.anyio


async def test_version_names_the_sidecar_the_binding_and_the_native_library(sidecar_command: list[str]) -> None:
    printed = subprocess.run([*sidecar_command, "--version"], capture_output=True, text=True, check=True).stdout
    raw = await RawSidecar.start(command=sidecar_command)
    try:
        backend = (await raw.call("initialize"))["result"]["backend"]
    finally:
        await raw.stop()
    assert printed.splitlines() == [
        f"diffusion-sidecar {__version__}",
        f"stable-diffusion-cpp-python {backend['bindingVersion']}",
        f"stable-diffusion.cpp {backend['nativeVersion']} (commit {backend['nativeCommit']})",
    ]
    assert backend["bindingVersion"] == metadata.version("stable-diffusion-cpp-python")


async def test_workers_run_from_the_files_the_launcher_unpacked(
    frozen_binary: Path, synthetic_model: str, tmp_path: Path
) -> None:
    sidecar = await Sidecar.start([str(frozen_binary)], env={"TMPDIR": str(tmp_path)})
    await sidecar.initialize()  # the backend probe, started with the front, has ended by its answer
    await sidecar.load_model(synthetic_model)
    await sidecar.load_model(synthetic_model, {"threads": 1})
    (unpacked,) = tmp_path.glob("_MEI*")  # one unpacking for the serving process and both workers
    library = unpacked.joinpath(*BUNDLED_LIBRARY)
    workers = worker_pids(sidecar.pid)
    assert len(workers) == 2
    for pid in workers:
        assert str(library) in Path(f"/proc/{pid}/maps").read_text()
    assert await sidecar.close() == 0
    assert list(tmp_path.glob("_MEI*")) == [], "the launcher left its unpacked files behind"


async def test_killing_the_launcher_ends_every_process_and_removes_the_unpacked_files(
    frozen_binary: Path, synthetic_model: str, tmp_path: Path
) -> None:
    sidecar = await Sidecar.start([str(frozen_binary)], env={"TMPDIR": str(tmp_path)})
    await sidecar.initialize()  # the backend probe, started with the front, has ended by its answer
    await sidecar.load_model(synthetic_model)
    below = descendant_pids(sidecar.pid)
    assert len(below) == 2 and len(list(tmp_path.glob("_MEI*"))) == 1
    kill(sidecar.pid)  # SIGKILL: the launcher can clean up nothing itself
    assert all(wait_gone(pid, timeout=2) for pid in below)
    assert list(tmp_path.glob("_MEI*")) == []
    await sidecar.close()


def test_the_binary_writes_the_synthetic_model_byte_for_byte(
    frozen_binary: Path, synthetic_model: str, tmp_path: Path
) -> None:
    cached = Path(synthetic_model)
    for kept in ("unet", "text_encoder"):  # complete files are kept: the binary writes only the VAE
        (tmp_path / kept).symlink_to(cached / kept)
    written = subprocess.run([frozen_binary, "synth-model", tmp_path], capture_output=True, text=True, check=True)
    assert written.stdout.strip() == str(tmp_path.resolve())
    vae = "vae/diffusion_pytorch_model.safetensors"
    assert filecmp.cmp(tmp_path / vae, cached / vae, shallow=False)
