from __future__ import annotations

import pytest

from sidecar.synth_model import default_cache_dir, write_synthetic_model


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"  # the Python host client is an asyncio client


@pytest.fixture(scope="session")
def synthetic_model() -> str:
    """The synthetic-weights model, written once per machine into the cache and reused."""
    return str(write_synthetic_model(default_cache_dir()))
