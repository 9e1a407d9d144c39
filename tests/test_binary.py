"""What only the frozen binary can get wrong: unpacking itself once into the cache and running from
there. And `--version`, which both launchers must answer alike.
"""

from __future__ import annotations

import filecmp
import os
import subprocess
import time
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


def _cache(folder: Path) -> dict[str, str]:
    return {**os.environ, "DIFFUSION_SIDECAR_CACHE": str(folder)}


def _bundle(cache: Path) -> Path:
    (folder,) = (cache / "binary").iterdir()  # one build: one folder, and no unpacking left half done
    assert (folder / "COMPLETE").exists()
    return folder


async def test_the_binary_unpacks_once_and_becomes_the_program_it_unpacked(
    frozen_binary: Path, synthetic_model: str, tmp_path: Path
) -> None:
    cache = _cache(tmp_path)
    sidecar = await Sidecar.start([str(frozen_binary)], env=cache)
    await sidecar.initialize()  # the backend probe, started with the front, has ended by its answer
    await sidecar.load_model(synthetic_model)
    await sidecar.load_model(synthetic_model, {"threads": 1})
    folder = _bundle(tmp_path)
    # No launcher process in between: the pid the host spawned serves, from the unpacked copy.
    assert Path(f"/proc/{sidecar.pid}/exe").resolve() == (folder / "diffusion-sidecar").resolve()
    library = folder.joinpath("_internal", *BUNDLED_LIBRARY)
    workers = worker_pids(sidecar.pid)
    assert len(workers) == 2
    for pid in workers:
        assert str(library) in Path(f"/proc/{pid}/maps").read_text()
    assert await sidecar.close() == 0
    marker = folder / "COMPLETE"
    os.utime(marker, ns=(0, 0))
    unpacked = {path: path.stat().st_mtime_ns for path in folder.rglob("*") if path != marker}
    again = await Sidecar.start([str(frozen_binary)], env=cache)
    await again.initialize()
    assert await again.close() == 0
    assert _bundle(tmp_path) == folder
    assert {path: path.stat().st_mtime_ns for path in folder.rglob("*") if path != marker} == unpacked, "unpacked twice"
    assert marker.stat().st_mtime_ns > 0, "the launch did not mark its build as used"


def test_a_new_build_removes_the_builds_left_unused_for_a_week(frozen_binary: Path, tmp_path: Path) -> None:
    builds = tmp_path / "binary"
    old, recent, died_unpacking = builds / "0.1.0-old", builds / "0.1.9-recent", builds / ".unpacking-x1y2z3"
    for folder in (old, recent, died_unpacking):
        folder.mkdir(parents=True)
    (old / "COMPLETE").touch()
    (recent / "COMPLETE").touch()
    eight_days_ago = time.time() - 8 * 24 * 3600
    os.utime(old / "COMPLETE", (eight_days_ago, eight_days_ago))
    os.utime(died_unpacking, (eight_days_ago, eight_days_ago))
    subprocess.run([frozen_binary, "--help"], env=_cache(tmp_path), capture_output=True, check=True)
    (new,) = set(builds.iterdir()) - {recent}
    assert (new / "COMPLETE").exists() and recent.exists()


async def test_a_half_unpacked_folder_is_unpacked_again(frozen_binary: Path, tmp_path: Path) -> None:
    """As a launch killed while unpacking, or a disk cleaner, may leave it."""
    subprocess.run([frozen_binary, "--help"], env=_cache(tmp_path), capture_output=True, check=True)
    folder = _bundle(tmp_path)
    (folder / "COMPLETE").unlink()
    library = folder.joinpath("_internal", *BUNDLED_LIBRARY)
    library.unlink()
    async with await Sidecar.start([str(frozen_binary)], env=_cache(tmp_path)) as sidecar:
        assert (await sidecar.initialize()).backend.cpuVariant
    assert _bundle(tmp_path) == folder and library.exists()


def test_a_cache_folder_it_cannot_write_fails_on_stderr_only(frozen_binary: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_bytes(b"")
    ran = subprocess.run([frozen_binary], env=_cache(blocked / "cache"), capture_output=True)
    assert ran.returncode == 127 and ran.stdout == b""
    assert f"cannot create {blocked / 'cache'}" in ran.stderr.decode()


async def test_killing_the_binary_ends_its_workers(frozen_binary: Path, synthetic_model: str) -> None:
    sidecar = await Sidecar.start([str(frozen_binary)])
    await sidecar.initialize()  # the backend probe, started with the front, has ended by its answer
    await sidecar.load_model(synthetic_model)
    below = descendant_pids(sidecar.pid)
    assert len(below) == 1
    kill(sidecar.pid)  # SIGKILL: the sidecar can clean up nothing itself
    assert all(wait_gone(pid, timeout=2) for pid in below)
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
