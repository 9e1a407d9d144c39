"""Per-family rules (size multiple, UNet or DiT, text encoder required) against the native library."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.inputs.model_header import refuse_dit_without_text_encoder
from sidecar.rpc.errors import SidecarError
from sidecar.synth.sd1 import write_safetensors
from sidecar.worker import families, messages
from sidecar.worker.native import NativeError, NativeModel

ONE_STEP = {
    "prompt": "a kite", "negative_prompt": "", "steps": 1, "cfg_scale": 1.0, "guidance": 3.5,
    "sampling_method": None, "scheduler": None, "seeds": [1], "vae_tiling": False, "cache_preset": None,
    "model_name": "m",
}  # fmt: skip


def _size(model: NativeModel, width: int, height: int) -> tuple[int, int]:
    method, schedule = model.resolve_sampling(None, None)
    job = messages.Generate(width=width, height=height, **ONE_STEP)
    image = model.generate(job, 1, method, schedule, lambda step, steps: None)
    return image.width, image.height


def test_a_unet_rounds_sizes_off_its_multiple_which_is_why_the_sidecar_refuses_them(synthetic_model: str) -> None:
    model = NativeModel(messages.Load(model_path=synthetic_model, n_threads=2), "error", lambda loaded, total: None)
    assert model.is_unet and model.size_multiple == 64
    assert _size(model, 64, 96) == (64, 128)
    assert _size(model, 64, 128) == (64, 128)


def test_flux_keeps_every_multiple_of_8(synthetic_flux: Path) -> None:
    load = messages.Load(
        diffusion_model_path=str(synthetic_flux / "diffusion.safetensors"),
        clip_l_path=str(synthetic_flux / "clip_l.safetensors"),
        vae_path=str(synthetic_flux / "vae.safetensors"),
        n_threads=2,
    )
    model = NativeModel(load, "error", lambda loaded, total: None)
    assert model.family == "Flux" and not model.is_unet and model.size_multiple == 8
    for width in (72, 80, 88, 96, 104):
        assert _size(model, width, 24) == (width, 24)


def test_the_worker_refuses_a_loaded_dit_that_has_no_text_encoder(synthetic_flux: Path) -> None:
    # The context loads, and sampling would segfault: the worker must refuse it first.
    load = messages.Load(
        diffusion_model_path=str(synthetic_flux / "diffusion.safetensors"),
        vae_path=str(synthetic_flux / "vae.safetensors"),
    )
    with pytest.raises(NativeError, match="no text encoder"):
        NativeModel(load, "error", lambda loaded, total: None)


@pytest.mark.parametrize(
    ("family", "multiple", "unet"),
    [
        ("SD 1.x Tiny UNet", 64, True), ("SDXL", 64, True), ("SDXS (512-DS)", 64, True),
        ("Flux", 8, False), ("SD3.x", 8, False), ("Z-Image", 8, False), ("Chroma Radiance", 8, False),
        ("Flux.2", 16, False), ("Wan 2.x", 16, False), ("Wan 2.2 TI2V", 32, False),
    ],
)  # fmt: skip
def test_size_multiple_is_the_vae_scale_times_the_model_down_factor(family: str, multiple: int, unet: bool) -> None:
    assert families.size_multiple(family) == multiple and families.is_unet(family) is unet


def _file(path: Path, names: list[str]) -> str:
    write_safetensors(path, [(name, [2]) for name in names])
    return str(path)


def test_the_header_check_refuses_only_a_dit_without_any_text_encoder(tmp_path: Path) -> None:
    dit = ["double_blocks.0.img_attn.qkv.weight", "single_blocks.0.linear1.weight"]
    with pytest.raises(SidecarError) as refused:
        refuse_dit_without_text_encoder("modelPath", _file(tmp_path / "flux.safetensors", dit))
    assert refused.value.data["field"] == "modelPath" and "text encoder" in refused.value.data["rule"]
    prefixed = [f"model.diffusion_model.{name}" for name in dit]
    with pytest.raises(SidecarError):
        refuse_dit_without_text_encoder("modelPath", _file(tmp_path / "comfy.safetensors", prefixed))
    # All-in-one checkpoints, UNets and files whose header is not safetensors' pass to the worker.
    for name, names in {
        "all-in-one.safetensors": [*prefixed, "text_encoders.clip_l.transformer.text_model.final_layer_norm.weight"],
        "unet.safetensors": ["down_blocks.0.resnets.0.conv1.weight"],
    }.items():
        refuse_dit_without_text_encoder("modelPath", _file(tmp_path / name, names))
    # Wan alone generates without a text encoder (on zeros): it passes, as a standalone DiT.
    assert refuse_dit_without_text_encoder("modelPath", _file(tmp_path / "wan.safetensors", ["blocks.0.cross_attn.norm_k.weight"]))
    (tmp_path / "flux.gguf").write_bytes(b"GGUF" + bytes(64))
    refuse_dit_without_text_encoder("modelPath", str(tmp_path / "flux.gguf"))
    (tmp_path / "huge.safetensors").write_bytes((2**62).to_bytes(8, "little") + b"{}")
    refuse_dit_without_text_encoder("modelPath", str(tmp_path / "huge.safetensors"))
