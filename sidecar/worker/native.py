"""stable-diffusion.cpp through the binding's low-level C API. Imported by worker processes only.

The C API is used rather than the binding's `StableDiffusion` class so that omitted options keep
the native defaults (`sd_ctx_params_init`, `sd_img_gen_params_init`) instead of the binding's
keyword defaults, and so that images come back as raw bytes without a PIL round trip.
"""

from __future__ import annotations

import ctypes
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import stable_diffusion_cpp
import stable_diffusion_cpp.stable_diffusion_cpp as sd

from . import cpu_backend, devices, families, hires, lora, messages
from .native_images import InputImages
from .upscaler import NativeUpscaler

_lib = sd._lib
cpu_backend.load_variants()  # before the first native call picks a CPU backend
_libc = ctypes.CDLL(None)  # frees what the native library malloc'ed for us


def _declare(name: str, argtypes: list[type], restype: type | None) -> Callable:
    function = getattr(_lib, name)
    function.argtypes = argtypes
    function.restype = restype
    return function


# The binding does not wrap these; the shared library exports them.
_ctx_params_init = _declare("sd_ctx_params_init", [ctypes.POINTER(sd.sd_ctx_params_t)], None)
_img_gen_params_init = _declare("sd_img_gen_params_init", [ctypes.POINTER(sd.sd_img_gen_params_t)], None)
_vid_gen_params_init = _declare("sd_vid_gen_params_init", [ctypes.POINTER(sd.sd_vid_gen_params_t)], None)
_sample_method_name = _declare("sd_sample_method_name", [ctypes.c_int], ctypes.c_char_p)
_scheduler_name = _declare("sd_scheduler_name", [ctypes.c_int], ctypes.c_char_p)
_from_name = {
    "wtype": _declare("str_to_sd_type", [ctypes.c_char_p], ctypes.c_int),
    "prediction": _declare("str_to_prediction", [ctypes.c_char_p], ctypes.c_int),
    "rng_type": _declare("str_to_rng_type", [ctypes.c_char_p], ctypes.c_int),
    "sampler_rng_type": _declare("str_to_rng_type", [ctypes.c_char_p], ctypes.c_int),
    "lora_apply_mode": _declare("str_to_lora_apply_mode", [ctypes.c_char_p], ctypes.c_int),
    "sample_method": _declare("str_to_sample_method", [ctypes.c_char_p], ctypes.c_int),
    "scheduler": _declare("str_to_scheduler", [ctypes.c_char_p], ctypes.c_int),
}
_free_image_data = _libc.free
_free_image_data.argtypes = [ctypes.c_void_p]

LOG_LEVELS = {"debug": 0, "info": 1, "warn": 2, "error": 3}

# Cache presets -> reuse thresholds. UCache's documented default is 1.0 and EasyCache's 0.2; the
# presets bracket them, from "slow" (least reuse, closest to uncached) to "ultra" (most reuse).
CACHE_THRESHOLDS = {
    sd.SDCacheMode.SD_CACHE_UCACHE: {"slow": 0.5, "medium": 1.0, "fast": 1.5, "ultra": 2.5},
    sd.SDCacheMode.SD_CACHE_EASYCACHE: {"slow": 0.15, "medium": 0.25, "fast": 0.40, "ultra": 0.60},
}


# The library's count of the model's tensors per weight type, logged once per load (its totals line;
# per-component lines follow it under other names).
WEIGHT_TYPE_STAT = "Weight type stat:"


def _type_counts(text: str) -> dict[str, int]:
    """`  f16: 700  |    q8_0: 102` -> {"f16": 700, "q8_0": 102}."""
    pairs = (part.split(":") for part in text.split("|") if ":" in part)
    return {name.strip(): int(count) for name, count in pairs}


class NativeError(Exception):
    """The native library refused; the message is what it logged as errors."""


class _NativeLog:
    """Receives every native log line: forwards it to stderr and keeps what the worker reports."""

    def __init__(self, level: int) -> None:
        self.level = level
        self.errors: deque[str] = deque(maxlen=8)
        self.family = ""
        self.weight_types: dict[str, int] = {}
        self.video_model = ""
        self.no_text_encoder = False
        self.cpu_fallback = False
        """The library logged that no device it picked started, and ran the model on the CPU."""
        self.listener: Callable[[str], None] | None = None
        """Also gets each message (the text after `file:line - `); the worker's phases use it."""
        self.callback = sd.sd_log_callback(self._on_line)  # kept alive as long as the log is
        sd.sd_set_log_callback(self.callback, None)

    def _on_line(self, level: int, text: bytes, _data: object) -> None:
        line = text.decode("utf-8", "replace").rstrip()
        message = line.split(" - ", 1)[-1]
        if self.listener is not None:
            self.listener(message)
        if level >= LOG_LEVELS["error"]:
            self.errors.append(message)
        if " - Version: " in line:  # the only place the library names the detected architecture
            self.family = line.split(" - Version: ", 1)[1].strip()
        if message.startswith(WEIGHT_TYPE_STAT):  # tensors per weight type, as the files hold them
            self.weight_types = _type_counts(message[len(WEIGHT_TYPE_STAT) :])
        if message in families.VIDEO_MODEL_IMAGES:  # WanRunner logs its model's name, alone on a line
            self.video_model = message
        if "No text encoders provided" in line:
            self.no_text_encoder = True
        if "loading CPU backend" in line:  # src/util.cpp: what it logs after a device failed to init
            self.cpu_fallback = True
        if level >= self.level and line:
            os.write(2, f"[native] {line}\n".encode())

    def failure(self, fallback: str) -> NativeError:
        reason = "; ".join(self.errors) or fallback
        self.errors.clear()
        return NativeError(reason)


class _Progress:
    """The library's progress callback is process-global; route it to whoever is listening."""

    def __init__(self) -> None:
        self.listener: Callable[[int, int], None] | None = None
        self.callback = sd.sd_progress_callback(self._on_progress)
        sd.sd_set_progress_callback(self.callback, None)

    def _on_progress(self, step: int, steps: int, _seconds: float, _data: object) -> None:
        if self.listener is not None:
            self.listener(step, steps)


def probe() -> messages.ProbeResult:
    return messages.ProbeResult(
        # The package's own version, not its installed metadata: a frozen binary carries no metadata.
        binding_version=stable_diffusion_cpp.__version__,
        native_version=sd.sd_version().decode(),
        native_commit=sd.sd_commit().decode(),
        system_info=" ".join(sd.sd_get_system_info().decode().split()),
        physical_cores=sd.sd_get_num_physical_cores(),
        cpu_variant=cpu_backend.variant(),
        cpu_features=cpu_backend.features(),
        devices=(listed := devices.listed()),
        warnings=devices.warnings(listed),
    )


@dataclass
class RawImage:
    data: bytes
    width: int
    height: int
    channels: int


class NativeModel:
    """One loaded stable-diffusion.cpp context."""

    def __init__(self, load: messages.Load, log_level: str, on_progress: Callable[[int, int], None]) -> None:
        self._log = _NativeLog(LOG_LEVELS[log_level])
        self._progress = _Progress()
        params = sd.sd_ctx_params_t()
        _ctx_params_init(ctypes.byref(params))
        # The native default frees the weights after one generation (right for a one-shot CLI);
        # a server generates many times from one load.
        params.free_params_immediately = False
        # The native default drops the VAE encoder, and img2img then aborts the process. Keeping it
        # lets every loaded model take an `init_image` (about 65 MB on the tiny model, bench img2img).
        params.vae_decode_only = False
        self._paths = []  # the C struct borrows these bytes; keep them alive
        for field in ("model_path", "diffusion_model_path", "vae_path", "clip_l_path", "clip_g_path", "t5xxl_path", "llm_path", "taesd_path", "control_net_path"):
            value = getattr(load, field).encode()
            self._paths.append(value)
            setattr(params, field, value)
        for field in ("n_threads", "keep_clip_on_cpu", "keep_vae_on_cpu", "offload_params_to_cpu", "flash_attn", "diffusion_flash_attn", "max_vram", "keep_control_net_on_cpu"):
            if (value := getattr(load, field)) is not None:
                setattr(params, field, value)
        for field in ("wtype", "prediction", "rng_type", "sampler_rng_type", "lora_apply_mode"):
            if (value := getattr(load, field)) is not None:
                setattr(params, field, _from_name[field](value.encode()))
        # Without it a TAESD file would also replace the model's VAE for the final image.
        params.tae_preview_only = bool(load.taesd_path)
        self._progress.listener = on_progress
        try:
            self._ctx = sd.new_sd_ctx(ctypes.byref(params))
        finally:
            self._progress.listener = None
        if not self._ctx:
            raise self._log.failure("the native library could not create a context for this model")
        if self._log.no_text_encoder and not self._log.video_model:
            # Such a context loads, then segfaults in the sampler: refuse it while that is cheap.
            # Wan conditions on zeros instead (the prompt is ignored): allowed.
            sd.free_sd_ctx(self._ctx)
            self._ctx = None
            raise NativeError(
                "this model has no text encoder: give its text encoder(s) in modelConfig "
                "(clipLPath and/or t5xxlPath for FLUX)"
            )
        self.family = self._log.family or "unknown"
        self.weight_types = self._log.weight_types
        self.video_model = self._log.video_model if sd.sd_ctx_supports_video_generation(self._ctx) else ""
        self.device = devices.chosen(self._log.cpu_fallback)
        self.is_unet = families.is_unet(self.family)
        self._cache_mode = sd.SDCacheMode.SD_CACHE_UCACHE if self.is_unet else sd.SDCacheMode.SD_CACHE_EASYCACHE
        self.size_multiple = families.size_multiple(self.family)
        # An ESRGAN file attached at load shares this model's process-global native hooks.
        self.upscaler = (
            NativeUpscaler(load.upscaler_path, load.n_threads, self._log, self._progress) if load.upscaler_path else None
        )

    @property
    def context(self) -> int:
        """The native context, for a call that needs one. The library dereferences a NULL context
        without a check (the binding's own `model is None` test misses it), killing the process:
        every call goes through here instead."""
        if not self._ctx:
            raise NativeError("this worker has no loaded model (its load failed or it was freed)")
        return self._ctx

    def resolve_sampling(self, sampling_method: str | None, scheduler: str | None) -> tuple[int, int]:
        """The method and scheduler a generation will use: the caller's, else the model's defaults."""
        method = (
            _from_name["sample_method"](sampling_method.encode())
            if sampling_method
            else sd.sd_get_default_sample_method(self.context)
        )
        schedule = (
            _from_name["scheduler"](scheduler.encode())
            if scheduler
            else sd.sd_get_default_scheduler(self.context, method)
        )
        return method, schedule

    def on_log(self, listener: Callable[[str], None] | None) -> None:
        """Pass each native log message to `listener` as well (None: stop)."""
        self._log.listener = listener

    @staticmethod
    def names(method: int, schedule: int) -> tuple[str, str]:
        return _sample_method_name(method).decode(), _scheduler_name(schedule).decode()

    def generate(
        self, job: messages.Generate, seed: int, method: int, schedule: int, on_step: Callable[[int, int], None]
    ) -> RawImage:
        """Generate one image, reporting each sampling step."""
        params = sd.sd_img_gen_params_t()
        _img_gen_params_init(ctypes.byref(params))
        prompt, negative = job.prompt.encode(), job.negative_prompt.encode()
        params.prompt = prompt
        params.negative_prompt = negative
        params.width = job.width
        params.height = job.height
        params.seed = seed
        params.batch_count = 1
        _sample(params.sample_params, job.steps, method, schedule, job.cfg_scale)
        params.sample_params.guidance.distilled_guidance = job.guidance
        params.vae_tiling_params.enabled = job.vae_tiling
        if job.cache_preset:
            params.cache.mode = self._cache_mode
            params.cache.reuse_threshold = CACHE_THRESHOLDS[self._cache_mode][job.cache_preset]
        input_images = InputImages(job)  # owns the pixels the params point at until the call returns
        input_images.apply(params)
        # What params points at (LoRA paths, the hires upscaler's path) lives as long as this does.
        pointed_at = (lora.attach(params, job.loras), hires.attach(params, job.hires, self.upscaler))
        self._progress.listener = (
            _SamplingSteps(on_step)
            if job.hires is None
            else hires.TwoPassSteps(on_step, job.steps, job.hires.sampling_steps)
        )
        try:
            images = sd.generate_image(self.context, ctypes.byref(params))
        finally:
            self._progress.listener = None
        del pointed_at
        if not images:
            raise self._log.failure("the native library returned no image")
        image = images[0]
        try:
            if not image.data:
                raise self._log.failure("the native library returned an empty image")
            size = image.width * image.height * image.channel
            data = ctypes.string_at(image.data, size)
            if self.device != devices.CPU and devices.is_blank(data, image.channel):
                raise NativeError(devices.BLANK_PICTURE)
            return RawImage(data, image.width, image.height, image.channel)
        finally:
            _free_image_data(ctypes.cast(image.data, ctypes.c_void_p))
            _free_image_data(ctypes.cast(images, ctypes.c_void_p))

    def generate_video(
        self, job: messages.Video, method: int, schedule: int, on_step: Callable[[int, int], None]
    ) -> list[RawImage]:
        """Generate one clip, reporting each sampling step; its frames in order."""
        params = sd.sd_vid_gen_params_t()
        _vid_gen_params_init(ctypes.byref(params))
        prompt, negative = job.prompt.encode(), job.negative_prompt.encode()
        params.prompt = prompt
        params.negative_prompt = negative
        params.width = job.width
        params.height = job.height
        params.video_frames = job.frames
        params.seed = job.seed
        _sample(params.sample_params, job.steps, method, schedule, job.cfg_scale)
        if job.flow_shift is not None:
            params.sample_params.flow_shift = job.flow_shift
        params.vae_tiling_params.enabled = job.vae_tiling
        buffers = []  # the pixels the params point at, alive until the call returns
        for field in ("init_image", "end_image"):
            if (pixels := getattr(job, field)) is not None:
                assert pixels.channels == 3  # the VAE aborts the process on other channel counts
                buffer = (ctypes.c_uint8 * len(pixels.data)).from_buffer_copy(pixels.data)
                buffers.append(buffer)
                setattr(params, field, sd.sd_image_t(pixels.width, pixels.height, 3, buffer))
        count = ctypes.c_int(0)
        self._progress.listener = _SamplingSteps(on_step)
        try:
            frames = sd.generate_video(self._ctx, ctypes.byref(params), ctypes.byref(count))
        finally:
            self._progress.listener = None
        del buffers
        if not frames:
            raise self._log.failure("the native library returned no video")
        try:
            raws = []
            for index in range(count.value):
                frame = frames[index]
                if not frame.data:
                    raise self._log.failure("the native library returned an empty frame")
                data = ctypes.string_at(frame.data, frame.width * frame.height * frame.channel)
                raws.append(RawImage(data, frame.width, frame.height, frame.channel))
            if self.device != devices.CPU and all(devices.is_blank(raw.data, raw.channels) for raw in raws):
                raise NativeError(devices.BLANK_PICTURE)
            return raws
        finally:
            for index in range(count.value):
                _free_image_data(ctypes.cast(frames[index].data, ctypes.c_void_p))
            _free_image_data(ctypes.cast(frames, ctypes.c_void_p))


def _sample(sample_params: sd.sd_sample_params_t, steps: int, method: int, schedule: int, cfg_scale: float) -> None:
    """The sampling part of an image's or a clip's generation parameters."""
    sample_params.sample_steps = steps
    sample_params.sample_method = method
    sample_params.scheduler = schedule
    sample_params.guidance.txt_cfg = cfg_scale


def hooks(log_level: str) -> tuple[_NativeLog, _Progress]:
    """The process-global log and progress hooks, for native work without a model context."""
    return _NativeLog(LOG_LEVELS[log_level]), _Progress()


def weight_type(name: str) -> int:
    """`sd_type_t` by ggml's name for it (`q8_0`)."""
    return _from_name["wtype"](name.encode())


def load_upscaler(load: messages.Load, log_level: str) -> NativeUpscaler:
    """An upscaler model: an ESRGAN file loaded on its own."""
    return NativeUpscaler(load.upscaler_path, load.n_threads, *hooks(log_level))


class _SamplingSteps:
    """Pass on sampling steps 1..n once each; the same callback also reports VAE tiles after."""

    def __init__(self, on_step: Callable[[int, int], None]) -> None:
        self._on_step = on_step
        self._done = False

    def __call__(self, step: int, steps: int) -> None:
        if self._done or step < 1:
            return
        self._on_step(step, steps)
        self._done = step >= steps
