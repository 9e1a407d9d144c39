"""The binary on a Vulkan GPU: Mesa's lavapipe, a software Vulkan device, stands in for one here.

lavapipe is a CPU-type Vulkan device, which ggml shows only where GGML_VK_VISIBLE_DEVICES names it.
It runs about 25-100 times slower than the CPU backend (docs/gpu.md), so the generations here are
few and small. On this Mesa, text encoding and VAE decoding on the device corrupt the process's heap
(docs/gpu.md: known native Vulkan bugs), so the models that must finish keep those on the CPU
(`clip_on_cpu`, `vae_on_cpu`) and sample on the GPU; one test lets the corruption happen on purpose.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from diffusion_sidecar_client import Sidecar, SidecarError
from diffusion_sidecar_protocol.types import Device, ModelConfig
from PIL import Image

from sidecar.inputs.devices import refuse_what_cannot_fit, weights_on_device
from sidecar.rpc.errors import SidecarError as RpcError
from sidecar.worker.devices import is_blank

pytestmark = pytest.mark.anyio

ICD = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json"
GPU = "Vulkan0"
SAMPLE_ON_GPU = {"device": GPU, "clip_on_cpu": True, "vae_on_cpu": True}
TINY = {"prompt": "a lighthouse", "width": 64, "height": 64, "seed": 42}
# Mean absolute pixel difference (0-255) from the CPU picture of the same seed, measured: FLUX 0.13
# (max 1), SD1 at cfg 1 0.61 (max 4; 3.5 at cfg 7, where the guidance scale multiplies the
# differences). The deep random UNet amplifies the rounding differences of the GPU's f16 matrix
# products; the FLUX DiT has two blocks. The bounds give a wide margin, and a picture of another
# seed differs by far more (asserted alongside: 64 for SD1), so a wrong picture cannot pass.
CLOSE = {"flux": 1.0, "sd1": 3.0}


@pytest.fixture(scope="module")
def lavapipe(system_program) -> dict[str, str]:
    system_program("glslc", "glslc")  # without it the binary was built without its Vulkan backend
    icd = system_program(ICD, "mesa-vulkan-drivers")
    return {"VK_ICD_FILENAMES": icd, "GGML_VK_VISIBLE_DEVICES": "0"}


@pytest.fixture(scope="module")
async def gpu_sidecar(frozen_binary: Path, lavapipe: dict[str, str]):
    client = await Sidecar.start([str(frozen_binary)], env=lavapipe)
    yield client
    assert await client.close() == 0


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


async def _picture(sidecar: Sidecar, model_id: str, **params) -> np.ndarray:
    (png,) = await sidecar.diffusion(modelId=model_id, **{**TINY, **params}).outputs
    return _pixels(png)


def _flux_files(folder: Path) -> tuple[str, dict[str, str]]:
    return str(folder / "diffusion.safetensors"), {
        "clipLPath": str(folder / "clip_l.safetensors"),
        "vaePath": str(folder / "vae.safetensors"),
    }


async def test_initialize_lists_the_vulkan_device_before_the_cpu(gpu_sidecar: Sidecar) -> None:
    backend = (await gpu_sidecar.initialize()).backend
    assert [device.name for device in backend.devices] == [GPU, "CPU"]
    gpu = backend.devices[0]
    assert "llvmpipe" in gpu.description and gpu.type == "gpu"
    assert gpu.memoryTotal >= 1 << 30 and 0 < gpu.memoryFree <= gpu.memoryTotal
    assert backend.warnings == []


@pytest.mark.parametrize(
    ("hidden_by", "said"),
    [
        ("ggml's default", "hides software devices such as Mesa's lavapipe"),
        ("an empty GGML_VK_VISIBLE_DEVICES", "GGML_VK_VISIBLE_DEVICES is empty"),
        ("no driver", "no GPU driver (ICD) is installed"),
    ],
)
async def test_without_a_usable_vulkan_device_everything_runs_on_the_cpu_and_says_so(
    frozen_binary: Path, lavapipe: dict[str, str], synthetic_flux: Path, hidden_by: str, said: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.delenv("GGML_VK_VISIBLE_DEVICES", raising=False)
    env = {
        "ggml's default": {"VK_ICD_FILENAMES": lavapipe["VK_ICD_FILENAMES"]},
        "an empty GGML_VK_VISIBLE_DEVICES": {**lavapipe, "GGML_VK_VISIBLE_DEVICES": ""},
        "no driver": {"VK_ICD_FILENAMES": "/nonexistent/icd.json"},
    }[hidden_by]
    async with await Sidecar.start([str(frozen_binary)], env=env) as sidecar:
        backend = (await sidecar.initialize()).backend
        assert [device.name for device in backend.devices] == ["CPU"]
        (warning,) = backend.warnings
        assert said in warning and "models run on the CPU" in warning
        model, companions = _flux_files(synthetic_flux)
        loaded = await sidecar.load_model_result(model, companions)
        assert loaded.device == "CPU"
        assert (await _picture(sidecar, loaded.modelId, steps=1, cfg_scale=1.0)).std() > 0
        with pytest.raises(SidecarError) as refused:
            await sidecar.load_model(model, {**companions, "device": GPU})
        assert refused.value.data_code == "INVALID_PARAMS" and refused.value.data["field"] == "modelConfig.device"


async def test_a_forced_cpu_variant_keeps_the_gpu(frozen_binary: Path, lavapipe: dict[str, str]) -> None:
    async with await Sidecar.start([str(frozen_binary)], env={**lavapipe, "DIFFUSION_SIDECAR_CPU_VARIANT": "sse42"}) as sidecar:
        backend = (await sidecar.initialize()).backend
    assert backend.cpuVariant == "sse42"
    assert [device.name for device in backend.devices] == [GPU, "CPU"]


async def test_flux_samples_on_the_gpu_like_on_the_cpu_and_cancels_as_on_the_cpu(
    gpu_sidecar: Sidecar, synthetic_flux: Path
) -> None:
    model, companions = _flux_files(synthetic_flux)
    on_cpu = await gpu_sidecar.load_model_result(model, {**companions, "device": "CPU"})
    on_gpu = await gpu_sidecar.load_model_result(model, {**companions, **SAMPLE_ON_GPU})
    assert (on_cpu.device, on_gpu.device) == ("CPU", GPU) and on_gpu.modelFamily == "Flux"
    params = {"steps": 2, "cfg_scale": 1.0}
    # Cancel at the first sampling step: the worker is ended and replaced, as on the CPU.
    call = gpu_sidecar.diffusion(modelId=on_gpu.modelId, **TINY, **params)
    async for tick in call.progress_stream:
        if tick.phase == "sample":
            assert await call.cancel()
            break
    with pytest.raises(SidecarError) as cancelled:
        await call.outputs
    assert cancelled.value.data_code == "CANCELLED"
    one_step = {**params, "steps": 1}  # lavapipe is slow; one step compares the same computation
    gpu = await _picture(gpu_sidecar, on_gpu.modelId, **one_step)
    cpu = await _picture(gpu_sidecar, on_cpu.modelId, **one_step)
    other_seed = await _picture(gpu_sidecar, on_cpu.modelId, **one_step, seed=43)
    assert np.abs(gpu - cpu).mean() <= CLOSE["flux"] < np.abs(other_seed - cpu).mean() / 10


async def test_an_sd1_unet_samples_on_the_gpu_like_on_the_cpu(gpu_sidecar: Sidecar, synthetic_model: str) -> None:
    on_gpu = await gpu_sidecar.load_model_result(synthetic_model, SAMPLE_ON_GPU)
    on_cpu = await gpu_sidecar.load_model_result(synthetic_model, {"device": "CPU"})
    assert on_gpu.device == GPU
    one_pass = {"steps": 1, "cfg_scale": 1.0}  # one UNet pass (no negative one): lavapipe is slow
    gpu = await _picture(gpu_sidecar, on_gpu.modelId, **one_pass)
    cpu = await _picture(gpu_sidecar, on_cpu.modelId, **one_pass)
    other_seed = await _picture(gpu_sidecar, on_cpu.modelId, **one_pass, seed=43)
    assert np.abs(gpu - cpu).mean() <= CLOSE["sd1"] < np.abs(other_seed - cpu).mean() / 4
    await gpu_sidecar.unload_model(on_gpu.modelId)


async def test_a_heap_corrupting_gpu_crash_is_a_worker_crash_the_sidecar_survives(
    gpu_sidecar: Sidecar, synthetic_flux: Path
) -> None:
    model, companions = _flux_files(synthetic_flux)
    everything_on_gpu = await gpu_sidecar.load_model(model, {**companions, "device": GPU, "flash_attn": False})
    with pytest.raises(SidecarError) as crashed:
        await _picture(gpu_sidecar, everything_on_gpu, steps=1, cfg_scale=1.0)
    assert crashed.value.data_code == "WORKER_CRASHED"
    assert crashed.value.data["signal"] in ("SIGSEGV", "SIGABRT")
    await gpu_sidecar.unload_model(everything_on_gpu)
    on_cpu = await gpu_sidecar.load_model(model, {**companions, "device": "CPU"})
    assert (await _picture(gpu_sidecar, on_cpu, steps=1, cfg_scale=1.0)).std() > 0


async def test_weights_larger_than_the_gpu_are_refused_before_loading(
    gpu_sidecar: Sidecar, synthetic_flux: Path, tmp_path: Path
) -> None:
    gpu = (await gpu_sidecar.initialize()).backend.devices[0]
    model, companions = _flux_files(synthetic_flux)
    huge = tmp_path / "diffusion.safetensors"
    huge.write_bytes(Path(model).read_bytes())
    with huge.open("r+b") as file:  # sparse: the check reads sizes, never the bytes
        file.truncate(gpu.memoryTotal + (1 << 20))
    with pytest.raises(SidecarError) as refused:
        await gpu_sidecar.load_model(str(huge), {**companions, "device": GPU})
    error = refused.value
    assert error.data_code == "MODEL_LOAD_FAILED" and error.data["reason"] == "deviceMemory"
    assert error.data["device"] == GPU and error.data["memoryTotal"] == gpu.memoryTotal
    assert "offload_to_cpu" in str(error) and error.data["needed"] > gpu.memoryTotal


def test_only_a_picture_of_one_colour_counts_as_the_gpus_blank_failure() -> None:
    grey = bytes([128, 128, 128]) * 64
    assert is_blank(grey, 3)
    assert not is_blank(grey[:-1] + b"\x81", 3)
    assert not is_blank(bytes([1, 2, 3, 4]) * 16, 3)  # the same bytes repeating, not the same pixels


def test_weights_stay_unchecked_where_they_do_not_go_to_gpu_memory(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\0" * 4096)
    small_gpu = Device(name=GPU, description="test", type="gpu", memoryTotal=1024, memoryFree=1024)
    cpu = Device(name="CPU", description="test", type="cpu", memoryTotal=1024, memoryFree=1024)
    with pytest.raises(RpcError) as refused:
        refuse_what_cannot_fit(small_gpu, ModelConfig(), [str(weights)])
    assert refused.value.data["needed"] == 4096
    for device, config in ((cpu, ModelConfig()), (small_gpu, ModelConfig(offload_to_cpu=True)), (None, ModelConfig())):
        refuse_what_cannot_fit(device, config, [str(weights)])


def test_text_encoders_and_vae_kept_on_the_cpu_do_not_count_against_the_gpu() -> None:
    files = {"modelPath": "unet", "clipLPath": "clip", "t5xxlPath": "t5", "vaePath": "vae"}
    assert weights_on_device(files, ModelConfig()) == ["unet", "clip", "t5", "vae"]
    assert weights_on_device(files, ModelConfig(clip_on_cpu=True)) == ["unet", "vae"]
    assert weights_on_device(files, ModelConfig(clip_on_cpu=True, vae_on_cpu=True)) == ["unet"]
