"""`loadModel`: check the files (off the event loop), start a worker process and load the model into it."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import msgspec
from diffusion_sidecar_protocol.types import (
    COMPANION_FILES,
    TEXT_ENCODER_FILES,
    LoadModelParams,
    LoadModelProgress,
    LoadModelResult,
)

from ..inputs.control import refuse_controlnet_before_load, refuse_unfitting_controlnet
from ..inputs.devices import check_device, refuse_what_cannot_fit, weights_on_device
from ..inputs import model_hash
from ..inputs.model_header import refuse_dit_without_text_encoder
from ..inputs.file_sources import ROLES, checked_files
from ..inputs.upscalers import is_esrgan_file
from ..rpc.errors import SidecarError
from ..runtime.context import Method, RequestContext
from ..runtime.models import ModelSettings
from ..worker import devices, messages

# Exact LoRAs per request (see sidecar/loras.py): the sidecar's default, not the native one.
DEFAULT_LORA_APPLY_MODE = "at_runtime"


async def handle(params: LoadModelParams, ctx: RequestContext) -> LoadModelResult:
    config = params.modelConfig
    root = ctx.server.limits.modelsRoot
    # Checked before any file is downloaded.
    listed = (await ctx.server.backend.info()).devices
    device = check_device(config, listed)
    given = {name: value for name in COMPANION_FILES if (value := getattr(config, name)) is not msgspec.UNSET}
    local = await checked_files(
        ctx,
        {"modelPath": (ROLES["modelPath"], params.modelPath)}
        | {f"modelConfig.{name}": (ROLES[name], value) for name, value in given.items()},
        root,
        folders=("modelPath",),
    )
    model_path = local["modelPath"]
    companions = {name: local[f"modelConfig.{name}"] for name in given}
    # With a separate text encoder, the main file is the standalone diffusion model (QVAC's rule).
    standalone = any(name in companions for name in TEXT_ENCODER_FILES)
    if not standalone:
        standalone = await anyio.to_thread.run_sync(refuse_dit_without_text_encoder, "modelPath", model_path)
    if "controlNetPath" in companions:
        await anyio.to_thread.run_sync(refuse_controlnet_before_load, model_path)
    load = messages.Load(
        model_path="" if standalone else model_path,
        diffusion_model_path=model_path if standalone else "",
        vae_path=companions.get("vaePath", ""),
        clip_l_path=companions.get("clipLPath", ""),
        clip_g_path=companions.get("clipGPath", ""),
        t5xxl_path=companions.get("t5xxlPath", ""),
        llm_path=companions.get("llmPath", ""),
        upscaler_path=companions.get("upscalerPath", ""),
        control_net_path=companions.get("controlNetPath", ""),
        keep_control_net_on_cpu=_given(config.controlnet_on_cpu),
        taesd_path=companions.get("taesdPath", ""),
        n_threads=config.threads or None,
        wtype=config.type or None,
        prediction=config.prediction or None,
        rng_type=config.rng or None,
        sampler_rng_type=config.sampler_rng or None,
        lora_apply_mode=config.lora_apply_mode or DEFAULT_LORA_APPLY_MODE,
        keep_clip_on_cpu=_given(config.clip_on_cpu),
        keep_vae_on_cpu=_given(config.vae_on_cpu),
        offload_params_to_cpu=_given(config.offload_to_cpu),
        flash_attn=_given(config.flash_attn),
        diffusion_flash_attn=_given(config.diffusion_fa),
        max_vram=config.max_vram or None,
        device=device,
        models_root=root,
    )
    # An ESRGAN file on its own is an upscaler model, for the `upscale` method.
    if not companions and await anyio.to_thread.run_sync(is_esrgan_file, model_path):
        load = messages.Load(upscaler_path=model_path, n_threads=load.n_threads, device=load.device, models_root=root)
    # Two loads are identical when they name the same files (after resolving) with the same options.
    load_key = json.dumps({**msgspec.to_builtins(config), **companions, "modelPath": model_path}, sort_keys=True)
    files = {"modelPath": model_path, **companions}
    weights = weights_on_device(files, config)
    await anyio.to_thread.run_sync(refuse_what_cannot_fit, devices.pick(listed, device), config, weights)
    settings = ModelSettings(name=Path(model_path).stem, vae_tiling=config.vae_tiling is True, files=files)

    def on_progress(loaded: int, total: int) -> None:
        progress = LoadModelProgress(requestId=ctx.request_id, loaded=loaded, total=total, elapsedMs=ctx.elapsed_ms())
        ctx.notify("loadModel/progress", progress)

    models, limit = ctx.server.models, ctx.server.limits.maxModels
    if models.count() >= limit and not models.has(models.model_id(load_key)):
        raise SidecarError(
            "LIMIT_EXCEEDED",
            f"{limit} models are already loaded (maxModels); unload one first",
            limit="maxModels",
            max=limit,
        )
    ctx.active.model_id = models.model_id(load_key)  # so that `cancel` and shutdown can end the load
    hashed = config.hash is not False and (load.model_path or load.diffusion_model_path)
    loading = models.load(load_key, load, settings, on_progress)
    model, already_loaded = await model_hash.while_loading(settings, model_path if hashed else None, loading)
    model.settings.model_hash = settings.model_hash
    await refuse_unfitting_controlnet(model, models)
    return LoadModelResult(
        modelId=model.model_id,
        modelLoadMs=model.load_ms,
        modelFamily=model.family,
        alreadyLoaded=already_loaded,
        sizeMultiple=model.size_multiple,
        upscaleFactor=model.upscale_factor,
        device=model.device,
        weightTypes=model.weight_types,
    )


def _given(value: bool | msgspec.UnsetType) -> bool | None:
    return None if value is msgspec.UNSET else value


method = Method("loadModel", LoadModelParams, handle)
