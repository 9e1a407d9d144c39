"""The host clients as a host installs them, outside this repository: the Python client's wheel alone
in a fresh venv, the Node client's `npm pack` tarball in an empty folder, each running the seed's
example against the frozen binary. And the version numbers, which come from one place."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from diffusion_sidecar_protocol import __version__
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PYTHON_CLIENT = ROOT / "host_clients" / "python"
NODE_CLIENT = ROOT / "host_clients" / "node"
EXAMPLE_ARGS = ["--size", "64", "--steps", "1", "--out", "out.png"]


def test_every_version_literal_is_the_protocol_packages() -> None:
    """package.json must hold a literal, and a pin cannot be dynamic: both follow __version__."""
    assert json.loads((NODE_CLIENT / "package.json").read_text())["version"] == __version__
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"diffusion-sidecar-client=={__version__}" in dependencies


def host_env(binary: Path) -> dict[str, str]:
    """This environment without anything that would reach into the repository, the sidecar named by DIFFUSION_SIDECAR."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV", "NODE_"))}
    return env | {"DIFFUSION_SIDECAR": str(binary)}


def check_example_ran(stdout: str, folder: Path) -> None:
    """The seed's example printed its tick, saved a 64x64 PNG and printed the stats of that one image."""
    lines = stdout.splitlines()
    assert "1/1" in lines, stdout
    with Image.open(folder / "out.png") as image:
        assert (image.format, image.size) == ("PNG", (64, 64))
    (stats_line,) = [line for line in lines if line.startswith("stats ")]
    stats = json.loads(stats_line.removeprefix("stats "))
    assert (stats["width"], stats["height"], stats["totalImages"]) == (64, 64, 1)
    assert stats["generationMs"] > 0


def run(command: list[str | Path], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(part) for part in command], capture_output=True, text=True, check=True, **kwargs)


def test_the_client_wheel_alone_runs_the_seed_example(
    tmp_path: Path, frozen_binary: Path, synthetic_model: str
) -> None:
    # Built from a copy: setuptools leaves build/ in the source folder, and a stale one could leak into a wheel.
    source = shutil.copytree(PYTHON_CLIENT, tmp_path / "source", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", source, "-w", tmp_path / "wheels"])
    (wheel,) = (tmp_path / "wheels").glob("*.whl")
    assert wheel.name == f"diffusion_sidecar_client-{__version__}-py3-none-any.whl"  # pure Python, any platform

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv])  # this pip serves it (--python): seconds saved
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", python, "--disable-pip-version-check"]
    started = time.monotonic()
    # --only-binary: pip may not build anything (msgspec comes as a wheel from the package index).
    install = run([*pip, "install", "--only-binary=:all:", wheel])
    print(f"\nthe client's wheel installed into a fresh venv in {time.monotonic() - started:.1f} s")
    assert not re.search(r"Building wheel|setup\.py|Preparing metadata", install.stdout), install.stdout
    listed = json.loads(run([*pip, "list", "--format", "json"]).stdout)
    assert {package["name"] for package in listed} - {"pip", "setuptools"} == {"diffusion-sidecar-client", "msgspec"}
    probe = "import importlib.util as u; print([u.find_spec(m) for m in ('stable_diffusion_cpp', 'sidecar')])"
    absent = run([python, "-c", probe], cwd=tmp_path, env=host_env(frozen_binary))
    assert absent.stdout.strip() == "[None, None]"

    example = shutil.copy(PYTHON_CLIENT / "examples" / "seed_example.py", tmp_path)
    ran = run([python, example, synthetic_model, *EXAMPLE_ARGS], cwd=tmp_path, env=host_env(frozen_binary), timeout=120)
    check_example_ran(ran.stdout, tmp_path)


def test_the_packed_node_client_runs_the_seed_example(
    tmp_path: Path, frozen_binary: Path, synthetic_model: str
) -> None:
    packed = json.loads(run(["npm", "pack", "--json", "--pack-destination", tmp_path, NODE_CLIENT]).stdout)
    tarball = tmp_path / packed[0]["filename"]
    assert {entry["path"] for entry in packed[0]["files"]} >= {
        "package.json",
        "index.d.ts",
        "src/index.js",
        "README.md",
    }
    assert not any(entry["path"].startswith(("test", "examples")) for entry in packed[0]["files"])

    host = tmp_path / "host"
    host.mkdir()
    # --offline: the package has no dependencies, so nothing may need the registry.
    run(["npm", "install", "--offline", "--no-audit", "--no-fund", tarball], cwd=host, timeout=120)
    installed = json.loads((host / "node_modules" / "diffusion-sidecar-client" / "package.json").read_text())
    assert installed["version"] == __version__

    example = shutil.copy(NODE_CLIENT / "examples" / "seed-example.js", host)
    ran = run(["node", example, synthetic_model, *EXAMPLE_ARGS], cwd=host, env=host_env(frozen_binary), timeout=120)
    check_example_ran(ran.stdout, host)
