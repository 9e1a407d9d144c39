"""Paths a request names: checked off the event loop, and only regular files (or a diffusers folder) pass.

A FIFO used to block the whole sidecar on `open()`; a stalled network mount blocks `stat`. The
checks now run in an abandonable thread and refuse every special file at once.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import anyio
import pytest

from sidecar.inputs import loras, paths
from sidecar.inputs.model_header import safetensors_names
from sidecar.inputs.upscalers import is_esrgan_file
from sidecar.worker import native_files
from sidecar.rpc.errors import SidecarError
from tests.harness import RawSidecar, worker_pids

pytestmark = pytest.mark.anyio


@pytest.fixture
def special_files(tmp_path: Path):
    fifo = tmp_path / "fifo.safetensors"
    os.mkfifo(fifo)
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(tmp_path / "socket.safetensors"))
    (tmp_path / "folder.safetensors").mkdir()
    yield {
        "FIFO": str(fifo),
        "socket": str(tmp_path / "socket.safetensors"),
        "character device": "/dev/null",
        "folder": str(tmp_path / "folder.safetensors"),
    }
    listening.close()


@pytest.mark.parametrize("kind", ["FIFO", "socket", "character device"])
async def test_special_files_are_refused_naming_the_field_and_what_they_are(special_files: dict, kind: str) -> None:
    with pytest.raises(SidecarError) as caught:
        await paths.checked_file("modelConfig.vaePath", special_files[kind], None)
    assert caught.value.data == {
        "code": "INVALID_PARAMS",
        "field": "modelConfig.vaePath",
        "rule": f"must name a regular file, not a {kind}",
    }


async def test_a_diffusers_folder_whose_unet_is_a_fifo_is_refused_naming_the_inner_file(tmp_path: Path) -> None:
    (tmp_path / "unet").mkdir()
    os.mkfifo(tmp_path / "unet" / "diffusion_pytorch_model.safetensors")
    with pytest.raises(SidecarError) as caught:
        await paths.checked_file("modelPath", str(tmp_path), None, allow_folder=True)
    assert caught.value.data == {
        "code": "INVALID_PARAMS",
        "field": "modelPath",
        "file": "unet/diffusion_pytorch_model.safetensors",
        "rule": "must name a regular file, not a FIFO",
    }


async def test_a_check_that_blocks_leaves_the_loop_free_and_can_be_cancelled(monkeypatch, tmp_path: Path) -> None:
    """A stalled mount, simulated: the check's first look at the path blocks until released."""
    release, entered = threading.Event(), threading.Event()

    def stalled_realpath(path: str, **_: object) -> str:
        entered.set()
        release.wait()
        raise FileNotFoundError(path)

    monkeypatch.setattr(os.path, "realpath", stalled_realpath)
    ticks = 0
    try:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as group:
                group.start_soon(paths.checked_file, "modelPath", str(tmp_path / "m.safetensors"), None)
                while not entered.is_set() or ticks < 100:  # the loop keeps running while the check hangs
                    ticks += 1
                    await anyio.sleep(0.001)
                scope.cancel()  # the cancel returns without waiting for the stalled thread
        assert scope.cancelled_caught and ticks >= 100
    finally:
        release.set()


async def test_fifo_and_special_paths_through_a_real_sidecar(python_command: list[str], synthetic_model: str, special_files: dict) -> None:
    sidecar = await RawSidecar.start(command=python_command)
    try:
        requests = [
            ({"modelPath": special_files["FIFO"]}, "modelPath", "not a FIFO"),
            ({"modelPath": special_files["character device"]}, "modelPath", "not a character device"),
            ({"modelPath": special_files["folder"]}, "modelPath", "diffusers layout"),
            ({"modelPath": synthetic_model, "modelConfig": {"vaePath": special_files["FIFO"]}}, "modelConfig.vaePath", "not a FIFO"),
            ({"modelPath": synthetic_model, "modelConfig": {"clipLPath": special_files["socket"]}}, "modelConfig.clipLPath", "not a socket"),
        ]
        ids = [await sidecar.send("loadModel", params) for params, _, _ in requests]
        assert "serverName" in (await sidecar.call("initialize", {}))["result"]
        for request_id, (_, field, rule_part) in zip(ids, requests):
            error = (await sidecar.response(request_id))["error"]
            assert error["code"] == -32602 and error["data"]["field"] == field and rule_part in error["data"]["rule"]
        assert worker_pids(sidecar.process.pid) == set()
        await sidecar.close_stdin()  # the host leaves: the sidecar exits, nothing stays behind
        assert await sidecar.exit_status() == 0
    finally:
        await sidecar.stop()


async def test_the_file_opened_is_checked_where_it_really_is(monkeypatch, tmp_path: Path) -> None:
    """A symlink swapped in after the path was resolved: the place of the file actually opened decides."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "m.safetensors").write_bytes(b"x" * 64)
    (root / "m.safetensors").symlink_to(outside / "m.safetensors")
    # The resolution as it was before the swap: the name alone, inside the root.
    monkeypatch.setattr(os.path, "realpath", lambda path: os.path.normpath(os.path.abspath(path)))
    with pytest.raises(SidecarError) as caught:
        await paths.checked_file("modelPath", str(root / "m.safetensors"), str(root))
    assert caught.value.code == "PATH_NOT_ALLOWED" and caught.value.data["field"] == "modelPath"


async def test_reads_after_the_checks_never_block_on_a_fifo_swapped_in(special_files: dict) -> None:
    """The front reads headers and hashes after the checks; a FIFO put in a file's place since is
    an unreadable file to them (it used to block their thread until someone wrote to it)."""
    fifo = special_files["FIFO"]
    assert safetensors_names(fifo) is None and not is_esrgan_file(fifo)
    with pytest.raises(SidecarError) as caught:
        await anyio.to_thread.run_sync(loras._identified, "lora", fifo)
    assert caught.value.data["field"] == "lora" and "must be readable" in caught.value.data["rule"]


@pytest.mark.parametrize("by_path_only", [True, False], ids=["linux", "elsewhere"])
async def test_both_ways_of_checking_give_the_same_answers(
    monkeypatch, special_files: dict, tmp_path: Path, by_path_only: bool
) -> None:
    """Where `O_PATH` or /proc is missing (other POSIX systems), the checks stat and open the resolved path."""
    if not by_path_only:
        monkeypatch.setattr(native_files, "_O_PATH", 0)
    (tmp_path / "model.safetensors").write_bytes(b"x" * 64)
    (tmp_path / "escape.safetensors").symlink_to("/dev/null")
    assert await paths.checked_file("modelPath", str(tmp_path / "model.safetensors"), str(tmp_path)) == str(
        tmp_path / "model.safetensors"
    )
    outside = await _refusal("modelPath", str(tmp_path / "escape.safetensors"), str(tmp_path))
    assert outside["code"] == "PATH_NOT_ALLOWED"
    assert (await _refusal("vaePath", special_files["FIFO"], None))["rule"] == "must name a regular file, not a FIFO"
    assert (await _refusal("vaePath", str(tmp_path / "nothing.gguf"), None))["rule"] == "must name an existing file"


async def _refusal(field: str, path: str, root: str | None) -> dict:
    with pytest.raises(SidecarError) as caught:
        await paths.checked_file(field, path, root)
    return caught.value.data
