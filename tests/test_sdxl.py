"""SDXL end to end: the synthetic "Vega" SDXL checkpoint (the smallest SDXL stable-diffusion.cpp
builds, full-size text encoders) on a real sidecar (Python launcher) and the real backend, loaded
once for the module. Its pictures are noise (random weights)."""

from __future__ import annotations

from pathlib import Path

import pytest
from diffusion_sidecar_client import Sidecar, SidecarError

from tests.test_control import png

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def sdxl(sidecar: Sidecar, synthetic_sdxl: str):
    # No Model hash: reading 3.3 GB beside the load would only slow it (tests/test_model_files.py covers it).
    return await sidecar.load_model_result(synthetic_sdxl, {"hash": False})


async def test_sdxl_loads_as_sdxl_and_generates_at_its_size_multiple(
    sidecar: Sidecar, sdxl, synthetic_sdxl: str
) -> None:
    assert sdxl.modelFamily == "SDXL (Vega)"
    assert sdxl.sizeMultiple == 64  # the VAE's 8 times the UNet's three halvings
    with pytest.raises(SidecarError) as refused:
        await sidecar.diffusion(modelId=sdxl.modelId, prompt="a fox", width=96, height=64, steps=1).outputs
    assert refused.value.data.get("field") == "width" and "multiple of 64" in str(refused.value)
    # One step at cfg 1: the text encoders (OpenCLIP-G is 695M parameters) dominate the time.
    call = sidecar.diffusion(modelId=sdxl.modelId, prompt="a fox", width=64, height=64, steps=1, cfg_scale=1.0, seed=5)
    image = png((await call.outputs)[0])
    assert image.size == (64, 64)
    parameters = image.info["parameters"]
    assert f"Model: {Path(synthetic_sdxl).stem}" in parameters and "Size: 64x64" in parameters
