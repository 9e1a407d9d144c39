from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from diffusion_sidecar_client import Sidecar

from sidecar.synth import flux as synth_flux
from sidecar.synth import sd1_full as synth_sd1_full
from sidecar.synth import sd1_single as synth_sd1_single
from sidecar.synth import sdxl as synth_sdxl
from sidecar.synth.sd1 import default_cache_dir, write_synthetic_model

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "dist" / "diffusion-sidecar"
# What the binary is built from, as the Makefile lists it: a binary older than any of them is stale.
BINARY_SOURCES = (
    "sidecar/*.py", "sidecar/*/*.py", "sidecar/*/*.json", "host_clients/python/diffusion_sidecar_protocol/*.py",
    "build/*.py", "build/*.spec", "build/*.c",
)  # fmt: skip


# Many tests count a sidecar's worker processes to see what a request started or ended; a spare
# worker (started ahead, in the background, for the next load) would come and go beside them.
# tests/test_start_up.py turns it back on and tests it on both launchers.
os.environ["DIFFUSION_SIDECAR_SPARE_WORKER"] = "0"


@pytest.fixture(scope="session")
def system_program() -> Callable[[str, str], str]:
    """A program (or, given an absolute path, any file) from a Debian package, which `make test`
    installs where it runs as root. Elsewhere a test that needs a missing one is reported as skipped
    with what to install, unless DIFFUSION_SIDECAR_REQUIRE_SYSTEM_TESTS=1 (set by .ci/run) makes
    that a failure."""

    def find(program: str, package: str) -> str:
        if path := (program if os.path.isabs(program) and os.path.exists(program) else shutil.which(program)):
            return path
        reason = f"needs {program}: `apt-get install {package}` as root (`make test` does so when run as root)"
        if os.environ.get("DIFFUSION_SIDECAR_REQUIRE_SYSTEM_TESTS") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)

    return find


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"  # the Python host client is an asyncio client


@pytest.fixture(scope="session")
def synthetic_model() -> str:
    """The synthetic-weights model, written once per machine into the cache and reused."""
    return str(write_synthetic_model(default_cache_dir()))


@pytest.fixture(scope="session")
def synthetic_sd1_single() -> str:
    """The synthetic model as one original-layout checkpoint file, written once per machine and reused."""
    return str(synth_sd1_single.write_synthetic_sd1_single(synth_sd1_single.default_cache_path()))


@pytest.fixture(scope="session")
def synthetic_sd1_full() -> str:
    """The full-size SD1 checkpoint (2.1 GB), written once per machine and reused: share one loaded
    copy per test module, it takes seconds to load and gigabytes of memory."""
    return str(synth_sd1_full.write_synthetic_sd1_full(synth_sd1_full.default_cache_path()))


@pytest.fixture(scope="session")
def synthetic_controlnet() -> str:
    """The SD1 ControlNet that fits `synthetic_sd1_full` (0.7 GB), written once per machine."""
    return str(synth_sd1_full.write_synthetic_controlnet(synth_sd1_full.controlnet_cache_path()))


@pytest.fixture(scope="session")
def synthetic_sdxl() -> str:
    """The smallest SDXL, one checkpoint file (3.3 GB), written once per machine and reused."""
    return str(synth_sdxl.write_synthetic_sdxl(synth_sdxl.default_cache_path()))


@pytest.fixture(scope="session")
def synthetic_flux() -> Path:
    """The synthetic FLUX folder (diffusion model, CLIP-L, VAE), written once per machine and reused."""
    return synth_flux.write_synthetic_flux(synth_flux.default_cache_dir())


@pytest.fixture(scope="session")
def frozen_binary() -> Path:
    """dist/diffusion-sidecar, which `make test` builds first. Missing or stale, it fails the tests."""
    if not BINARY.exists():
        pytest.fail(f"{BINARY} is missing: `make binary` builds it (`make test` does so first)", pytrace=False)
    built = BINARY.stat().st_mtime
    for pattern in BINARY_SOURCES:
        for source in ROOT.glob(pattern):
            if source.stat().st_mtime > built:
                pytest.fail(f"{BINARY} is older than {source}: `make binary` rebuilds it", pytrace=False)
    return BINARY


@pytest.fixture(scope="session")
def python_command() -> list[str]:
    """The Python launcher alone, for end-to-end files about behaviour that lives in the Python code
    and the native library, which the binary runs unchanged. What packaging can break (code
    imported late) is driven through the binary, once per capability, in tests/test_binary.py."""
    return [sys.executable, "-m", "sidecar"]


@pytest.fixture(scope="module", name="sidecar")
async def python_sidecar(python_command: list[str]):
    """A module's sidecar on the Python launcher, through the Python client (a module that needs
    flags, another launcher or the raw protocol defines its own `sidecar`)."""
    client = await Sidecar.start(python_command)
    yield client
    assert await client.close() == 0


@pytest.fixture(scope="session", params=["python", "frozen"])
def sidecar_command(request: pytest.FixtureRequest, python_command: list[str]) -> list[str]:
    """How an end-to-end test where the launcher matters (process handling, stdio, start-up, the
    core generation path) starts the sidecar: each test runs once per launcher a host may ship."""
    if request.param == "frozen":
        return [str(request.getfixturevalue("frozen_binary"))]
    return python_command
