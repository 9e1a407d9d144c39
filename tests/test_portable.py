"""The binary's native code on CPUs other than the one that built it.

The binary ships ggml's CPU code in variants and picks one at run time. Reading compiler flags
proves nothing; running does: its native code loads an ESRGAN model and upscales a picture on an
emulated Haswell (AVX2, no AVX-512: `qemu-x86_64 -cpu Haswell-v4`, which ends a library built with
AVX-512 instructions with SIGILL) and an emulated Nehalem (SSE4.2, no AVX). qemu-user emulates one process and not the programs it starts,
while the binary is a launcher that unpacks the real program and runs it (whose PyInstaller
bootloader in turn restarts itself once with its libraries' path set), so the emulated run is that
real program, with the environment the serving process was given.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from diffusion_sidecar_client import Sidecar

from sidecar.synth.esrgan import write_synthetic_esrgan

pytestmark = pytest.mark.anyio

EMULATED_SECONDS = 300  # emulation runs native code some 30 times slower; it takes about a minute


@pytest.fixture(scope="module")
def esrgan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_esrgan(tmp_path_factory.mktemp("esrgan") / "esrgan-synthetic.safetensors")


def _selftest(command: list[str], esrgan: Path, env: dict[str, str] | None = None, timeout: float = 60) -> dict:
    done = subprocess.run(
        [*command, "selftest", "--upscaler", str(esrgan)], check=False, capture_output=True, env=env, timeout=timeout
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return json.loads(done.stdout)


async def test_initialize_names_the_variant_that_ran_the_upscale(frozen_binary: Path, esrgan: Path) -> None:
    async with await Sidecar.start([str(frozen_binary)]) as sidecar:
        backend = (await sidecar.initialize()).backend
    ran = _selftest([str(frozen_binary)], esrgan)
    assert backend.cpuVariant is not None and backend.cpuVariant == ran["cpuVariant"]
    assert backend.cpuFeatures == ran["cpuFeatures"]
    assert ran["output"] == [64, 64] and ran["distinctValues"] > 1


@pytest.mark.parametrize(
    ("cpu", "variant", "absent"),
    [("Haswell-v4", "haswell", "AVX512"), ("Nehalem-v1", "sse42", "AVX")],  # AVX2 (2013), SSE4.2 (2008)
)
async def test_the_binary_upscales_on_an_emulated_older_cpu(
    frozen_binary: Path, esrgan: Path, cpu: str, variant: str, absent: str, system_program
) -> None:
    qemu = system_program("qemu-x86_64", "qemu-user")
    async with await Sidecar.start([str(frozen_binary)]) as sidecar:
        await sidecar.initialize()
        program = os.readlink(f"/proc/{sidecar.pid}/exe")  # the unpacked copy the binary became
        environ = Path(f"/proc/{sidecar.pid}/environ").read_bytes().split(b"\0")
    assert Path(program).resolve() != frozen_binary.resolve()
    env = dict(entry.decode().split("=", 1) for entry in environ if b"=" in entry)
    ran = _selftest([qemu, "-cpu", cpu, program], esrgan, env, EMULATED_SECONDS)
    assert ran["cpuVariant"] == variant
    assert absent not in ran["cpuFeatures"]
    assert ran["output"] == [64, 64] and ran["distinctValues"] > 1


async def test_a_host_can_name_the_cpu_variant_to_load(frozen_binary: Path, esrgan: Path) -> None:
    """ggml's pick scores features, not speed (bench `portable`: AVX2 ran faster here than AVX-512)."""
    asked = {"DIFFUSION_SIDECAR_CPU_VARIANT": "haswell"}
    async with await Sidecar.start([str(frozen_binary)], env=asked) as sidecar:
        backend = (await sidecar.initialize()).backend
    assert backend.cpuVariant == "haswell" and "AVX2" in backend.cpuFeatures and "AVX512" not in backend.cpuFeatures
    unknown = {**os.environ, "DIFFUSION_SIDECAR_CPU_VARIANT": "pentium"}
    ran = subprocess.run([frozen_binary, "selftest", "--upscaler", esrgan], env=unknown, capture_output=True, timeout=60)
    assert ran.returncode != 0 and ran.stdout == b""
    assert "DIFFUSION_SIDECAR_CPU_VARIANT='pentium': no such CPU variant; this build has haswell," in ran.stderr.decode()
