"""A request's LoRAs, as the native generation parameters take them (applied at the start of each
`generate_image`; see `sidecar/loras.py` for why models load with at_runtime LoRAs)."""

from __future__ import annotations

import ctypes

import stable_diffusion_cpp.stable_diffusion_cpp as sd

from . import messages


def attach(params: sd.sd_img_gen_params_t, loras: list[messages.Lora]) -> object:
    """Point `params` at the LoRAs; the returned object owns what they point at: keep it alive
    until the native call returns."""
    array = (sd.sd_lora_t * len(loras))()
    paths = [lora.path.encode() for lora in loras]
    for slot, lora, path in zip(array, loras, paths):
        slot.is_high_noise = False
        slot.multiplier = lora.weight
        slot.path = path
    params.loras = ctypes.cast(array, ctypes.POINTER(sd.sd_lora_t))
    params.lora_count = len(loras)
    return array, paths
