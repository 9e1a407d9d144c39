"""How the Python client finds the sidecar, and the protocol version check it makes on start."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
from diffusion_sidecar_client import (
    PROTOCOL_VERSION,
    ProtocolMismatch,
    Sidecar,
    SidecarNotFound,
    __version__,
    discovery,
)

FAKE = Path(__file__).with_name("fake_sidecar.py")

pytestmark = pytest.mark.anyio


def fake_executable(folder: Path, name: str) -> Path:
    """An executable `folder/diffusion-sidecar` running the fake, which reports `name` as its version."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "diffusion-sidecar"
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" {name}\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def no_scripts_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """This environment's scripts folder, emptied: the project's venv has a real diffusion-sidecar there."""
    empty = tmp_path / "scripts"
    empty.mkdir()
    monkeypatch.setattr(discovery.sysconfig, "get_path", lambda _name: str(empty))
    return empty


def test_the_variable_comes_before_path(tmp_path: Path) -> None:
    named = fake_executable(tmp_path / "named", "named")
    on_path = fake_executable(tmp_path / "on-path", "on-path")
    env = {"DIFFUSION_SIDECAR": str(named), "PATH": str(on_path.parent)}
    assert discovery.default_command(env) == [str(named)]
    assert discovery.default_command({"PATH": str(on_path.parent)}) == [str(on_path)]


def test_the_scripts_folder_comes_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scripts = fake_executable(tmp_path / "scripts", "scripts")
    on_path = fake_executable(tmp_path / "on-path", "on-path")
    monkeypatch.setattr(discovery.sysconfig, "get_path", lambda _name: str(scripts.parent))
    assert discovery.default_command({"PATH": str(on_path.parent)}) == [str(on_path)]
    assert discovery.default_command({"PATH": str(tmp_path / "nothing")}) == [str(scripts)]


def test_not_found_names_everything_it_tried(tmp_path: Path, no_scripts_folder: Path) -> None:
    with pytest.raises(SidecarNotFound) as raised:
        discovery.default_command({"PATH": str(tmp_path / "empty-path")})
    assert len(raised.value.tried) == 3
    for place in ("DIFFUSION_SIDECAR (not set)", str(tmp_path / "empty-path"), str(no_scripts_folder)):
        assert place in str(raised.value)


def test_a_variable_naming_nothing_runnable_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    on_path = fake_executable(tmp_path / "on-path", "on-path")
    not_executable = tmp_path / "sidecar.txt"
    not_executable.write_text("")
    for value in (str(tmp_path / "missing"), str(not_executable)):
        with pytest.raises(SidecarNotFound, match="DIFFUSION_SIDECAR=.*not an executable file") as raised:
            discovery.default_command({"DIFFUSION_SIDECAR": value, "PATH": str(on_path.parent)})
        assert raised.value.tried == [f"DIFFUSION_SIDECAR={value} (not an executable file)"]


async def test_start_finds_the_sidecar_through_the_variable_in_env(tmp_path: Path) -> None:
    named = fake_executable(tmp_path, "named")
    env = {"DIFFUSION_SIDECAR": str(named), "FAKE_PROTOCOL_VERSION": PROTOCOL_VERSION}
    async with await Sidecar.start(env=env) as sidecar:
        assert (sidecar.server_version, sidecar.protocol_version) == ("named", PROTOCOL_VERSION)


@pytest.mark.parametrize("version", ["1.0", "1.9"])
async def test_the_same_major_version_is_accepted(version: str) -> None:
    async with await Sidecar.start(
        [sys.executable, str(FAKE), "fake"], env={"FAKE_PROTOCOL_VERSION": version}
    ) as sidecar:
        assert sidecar.protocol_version == version


@pytest.mark.parametrize("version", ["2.0", "0.9", "", None])
async def test_another_major_version_is_refused_and_the_sidecar_ended(version: str | None, tmp_path: Path) -> None:
    env = {"FAKE_PID_FILE": str(tmp_path / "pid")} | ({"FAKE_PROTOCOL_VERSION": version} if version is not None else {})
    with pytest.raises(ProtocolMismatch) as raised:
        await Sidecar.start([sys.executable, str(FAKE), "9.0.0"], env=env)
    error = raised.value
    assert (error.data_code, error.protocol_version, error.server_version) == (
        "PROTOCOL_MISMATCH",
        version or "",
        "9.0.0",
    )
    assert f"speaks {PROTOCOL_VERSION}" in str(error) and "diffusion-sidecar 9.0.0" in str(error)
    with pytest.raises(ProcessLookupError):  # ended and reaped, not left running
        os.kill(int((tmp_path / "pid").read_text()), 0)


async def test_the_real_sidecar_reports_this_protocol_version(sidecar_command: list[str]) -> None:
    async with await Sidecar.start(sidecar_command) as sidecar:
        assert (sidecar.server_version, sidecar.protocol_version) == (__version__, PROTOCOL_VERSION)
        assert (await sidecar.initialize()).protocolVersion == PROTOCOL_VERSION
