"""The protocol's literal defaults and value lists are the native library's own.

Loads the native library into the test process (the sidecar's front never does).
"""

from __future__ import annotations

import ctypes
from typing import get_args

import pytest
import stable_diffusion_cpp.stable_diffusion_cpp as sd
from diffusion_sidecar_protocol.types import (
    DEFAULT_SIDE,
    HIRES_UPSCALERS,
    DiffusionParams,
    HiresParams,
    LoraApplyMode,
    Prediction,
    PreviewMethod,
    RngType,
    SamplingMethod,
    Scheduler,
    WeightType,
)

from sidecar.inputs.hires import DEFAULT_SCALE


def _names(function: str, count: int) -> list[str]:
    name_of = getattr(sd._lib, function)
    name_of.argtypes, name_of.restype = [ctypes.c_int], ctypes.c_char_p
    return [name_of(value).decode() for value in range(count)]


def test_diffusion_defaults_are_sd_img_gen_params_init() -> None:
    init = sd._lib.sd_img_gen_params_init
    init.argtypes, init.restype = [ctypes.POINTER(sd.sd_img_gen_params_t)], None
    native = sd.sd_img_gen_params_t()
    init(ctypes.byref(native))
    ours = DiffusionParams(modelId="m", prompt="p")
    assert (DEFAULT_SIDE, DEFAULT_SIDE) == (native.width, native.height)  # omitted width/height, no init_image
    assert ours.steps == native.sample_params.sample_steps
    assert ours.cfg_scale == native.sample_params.guidance.txt_cfg
    assert ours.guidance == native.sample_params.guidance.distilled_guidance
    assert ours.batch_count == native.batch_count
    assert ours.seed == native.seed == -1
    assert ours.strength == native.strength
    assert native.sample_params.guidance.img_cfg == float("inf")  # omitted img_cfg_scale: "same as cfg_scale"
    assert native.sample_params.sample_method == sd.SampleMethod.SAMPLE_METHOD_COUNT  # "choose per model"
    assert native.sample_params.scheduler == sd.Scheduler.SCHEDULER_COUNT
    assert native.vae_tiling_params.enabled is False


def test_value_lists_are_the_native_names_in_native_order() -> None:
    assert list(get_args(SamplingMethod)) == _names("sd_sample_method_name", sd.SampleMethod.SAMPLE_METHOD_COUNT)
    assert list(get_args(Scheduler)) == _names("sd_scheduler_name", sd.Scheduler.SCHEDULER_COUNT)
    assert list(get_args(Prediction)) == _names("sd_prediction_name", sd.Prediction.PREDICTION_COUNT)
    assert list(get_args(RngType)) == _names("sd_rng_type_name", sd.RNGType.RNG_TYPE_COUNT)
    assert list(get_args(LoraApplyMode)) == _names("sd_lora_apply_mode_name", sd.LoraApplyMode.LORA_APPLY_MODE_COUNT)


def test_weight_types_are_native_type_names() -> None:
    native = set(_names("sd_type_name", sd.GGMLType.SD_TYPE_COUNT))
    assert set(get_args(WeightType)) <= native


def test_preview_methods_are_the_native_names() -> None:
    names = _names("sd_preview_name", sd.Preview.PREVIEW_COUNT)
    assert names[0] == "none" and list(get_args(PreviewMethod)) == names[1:]


def test_hires_upscalers_are_native_names_and_defaults_are_sd_hires_params_init() -> None:
    # Native order: None, the eight named ones, Model.
    native = _names("sd_hires_upscaler_name", len(HIRES_UPSCALERS) + 2)
    assert native[0] == "None" and native[-1] == "Model" and list(HIRES_UPSCALERS) == native[1:-1]
    init = sd._lib.sd_hires_params_init
    init.argtypes, init.restype = [ctypes.POINTER(sd.sd_hires_params_t)], None
    defaults = sd.sd_hires_params_t()
    init(ctypes.byref(defaults))
    ours = HiresParams()
    assert native[defaults.upscaler] == ours.upscaler
    assert DEFAULT_SCALE == defaults.scale and ours.steps == defaults.steps
    assert ours.denoising_strength == pytest.approx(defaults.denoising_strength)
