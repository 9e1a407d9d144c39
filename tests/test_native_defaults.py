"""The protocol's literal defaults and value lists are the native library's own.

Loads the native library into the test process (the sidecar's front never does).
"""

from __future__ import annotations

import ctypes
from typing import get_args

import stable_diffusion_cpp.stable_diffusion_cpp as sd
from diffusion_sidecar_protocol.types import (
    DEFAULT_SIDE,
    DiffusionParams,
    LoraApplyMode,
    Prediction,
    PreviewMethod,
    RngType,
    SamplingMethod,
    Scheduler,
    WeightType,
)


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
