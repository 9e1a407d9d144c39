"""A ControlNet end to end: the full-size synthetic SD1 checkpoint with the synthetic SD1 ControlNet
(the smallest pair stable-diffusion.cpp runs: it builds a ControlNet at SD1's full size only) on a
real sidecar (Python launcher) and the real backend, loaded once for the module.

Pictures are noise (random weights): the tests compare outputs with each other, never looks.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from diffusion_sidecar_client import Sidecar, SidecarError
from PIL import Image

from tests.harness import worker_pids
from tests.test_control import file_of, png, square

pytestmark = pytest.mark.anyio

# The smallest request that runs the ControlNet: one step at the smallest size a UNet takes.
SMALL = {"prompt": "a lighthouse at dusk", "width": 64, "height": 64, "steps": 1, "cfg_scale": 1.0, "seed": 11}


@pytest.fixture(scope="module")
async def controlled(sidecar: Sidecar, synthetic_sd1_full: str, synthetic_controlnet: str):
    # No Model hash: reading 2.1 GB beside the load would only slow it (tests/test_model_files.py covers it).
    return await sidecar.load_model_result(synthetic_sd1_full, {"controlNetPath": synthetic_controlnet, "hash": False})


async def generate(sidecar: Sidecar, model_id: str, **params) -> Image.Image:
    return png((await sidecar.diffusion(modelId=model_id, **{**SMALL, **params}).outputs)[0])


def _differs(a: Image.Image, b: Image.Image) -> bool:
    return np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).mean() > 1


async def test_a_controlnet_steers_the_picture_and_strength_0_leaves_it_plain(
    sidecar: Sidecar, controlled, synthetic_controlnet: str
) -> None:
    assert controlled.modelFamily == "SD 1.x"
    first, second = file_of(square((8, 8, 40, 40))), file_of(square((24, 20, 60, 56)))
    plain = await generate(sidecar, controlled.modelId)
    steered = await generate(sidecar, controlled.modelId, control_image=first)
    other = await generate(sidecar, controlled.modelId, control_image=second)
    off = await generate(sidecar, controlled.modelId, control_image=first, control_strength=0)
    assert _differs(steered, plain) and _differs(steered, other)
    # The library scales the ControlNet's residuals by the strength: at 0 nothing is added.
    assert off.tobytes() == plain.tobytes()
    # As A1111's ControlNet extension writes a unit, the model with its old short hash.
    with open(synthetic_controlnet, "rb") as file:
        file.seek(1 << 20)
        model = f"{Path(synthetic_controlnet).stem} [{hashlib.sha256(file.read(1 << 16)).hexdigest()[:8]}]"
    unit = (
        'ControlNet 0: "Module: none, Model: {}, Weight: {}, Resize Mode: Just Resize, Guidance Start: 0.0, '
        'Guidance End: 1.0, Control Mode: Balanced"'
    )
    assert unit.format(model, "0.9") in steered.info["parameters"]  # the library's default weight
    assert unit.format(model, "0.0") in off.info["parameters"]
    assert "ControlNet" not in plain.info["parameters"]


async def test_a_controlnet_on_the_tiny_unet_is_refused_before_the_load(
    sidecar: Sidecar, controlled, synthetic_model: str, synthetic_controlnet: str
) -> None:
    # The library loads this pair, then aborts the process at the first step. The model's tensor
    # names show a UNet without a middle attention block: refused naming the field, no worker started.
    workers = worker_pids(sidecar.pid)
    with pytest.raises(SidecarError) as refused:
        await sidecar.load_model(synthetic_model, {"controlNetPath": synthetic_controlnet})
    assert refused.value.data_code == "INVALID_PARAMS"
    assert refused.value.data.get("field") == "modelConfig.controlNetPath"
    assert "tiny or distilled UNet" in str(refused.value)
    assert [model.modelId for model in (await sidecar.list_models()).models] == [controlled.modelId]
    assert worker_pids(sidecar.pid) == workers


async def test_a_controlnet_file_the_library_cannot_read_fails_the_load_cleanly(
    sidecar: Sidecar, controlled, synthetic_sd1_full: str, tmp_path: Path
) -> None:
    # The library reads every ControlNet tensor at load: a file without them fails there, its
    # worker ended; the model already loaded serves on.
    bogus = tmp_path / "control.safetensors"
    bogus.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    workers = worker_pids(sidecar.pid)
    with pytest.raises(SidecarError) as refused:
        await sidecar.load_model(synthetic_sd1_full, {"controlNetPath": str(bogus), "hash": False})
    assert refused.value.data_code == "MODEL_LOAD_FAILED"
    assert "control net" in str(refused.value)
    assert [model.modelId for model in (await sidecar.list_models()).models] == [controlled.modelId]
    assert worker_pids(sidecar.pid) == workers
