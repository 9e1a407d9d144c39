"""Messages on the private pipe between the front process and a model worker.

Binary framing: a 4-byte big-endian length, then a msgpack-encoded tagged Struct. Images cross as
raw PNG bytes; base64 only happens at the JSON edge in the front.
"""

from __future__ import annotations

import struct
from typing import Any

import msgspec
from msgspec import Struct

from ..rpc.errors import SidecarError

# --- front -> worker ---------------------------------------------------------------------------


class Load(Struct, kw_only=True, tag=True):
    """Create the native context. Fields are `sd_ctx_params_t`'s; None keeps the native default."""

    model_path: str = ""
    diffusion_model_path: str = ""
    vae_path: str = ""
    clip_l_path: str = ""
    clip_g_path: str = ""
    t5xxl_path: str = ""
    llm_path: str = ""
    taesd_path: str = ""
    """A TAESD file, loaded for `tae` previews only (the final image keeps the model's VAE)."""
    n_threads: int | None = None
    wtype: str | None = None
    prediction: str | None = None
    rng_type: str | None = None
    sampler_rng_type: str | None = None
    lora_apply_mode: str | None = None
    keep_clip_on_cpu: bool | None = None
    keep_vae_on_cpu: bool | None = None
    offload_params_to_cpu: bool | None = None
    flash_attn: bool | None = None
    diffusion_flash_attn: bool | None = None
    max_vram: float | None = None
    """GiB a compute graph may take on the GPU; larger graphs are split (native default 0: no limit)."""
    device: str | None = None
    """The device to run on (`initialize`'s names); None: the library's choice. Applied through the
    worker's environment when it starts (`devices.environment`), so not read by the worker."""
    upscaler_path: str = ""
    """An ESRGAN file: loaded beside the model, or alone (no model path) as an upscaler model."""
    control_net_path: str = ""
    keep_control_net_on_cpu: bool | None = None
    models_root: str | None = None
    """Not the library's: `--models-root`, which every file it opens is checked against again
    right before it opens them (`native_files.py`)."""


class Lora(Struct):
    """One LoRA of a request: what the native call needs, and what the PNG says about it."""

    path: str
    weight: float
    name: str
    """A1111's alias for it: the file's stem."""
    short_hash: str
    """A1111's `Lora hashes` value."""
    field: str = "lora"
    """The request field that names it (for errors)."""


class Hires(Struct):
    """The hires fix, resolved by the front: a native upscaler name and the target size."""

    upscaler: str
    width: int
    height: int
    steps: int
    denoising_strength: float
    sampling_steps: int
    """Steps the second pass samples (what its ticks count)."""
    scale: float | None
    """As asked (for the PNG); None when a target size was."""


class Pixels(Struct):
    """An input image: raw 8-bit pixels, rows top to bottom, channels interleaved (RGB or L)."""

    data: bytes
    width: int
    height: int
    channels: int


class Generate(Struct, tag=True):
    """Generate one image per seed, in order."""

    prompt: str
    negative_prompt: str
    width: int
    height: int
    steps: int
    cfg_scale: float
    guidance: float
    sampling_method: str | None
    scheduler: str | None
    seeds: list[int]
    vae_tiling: bool
    cache_preset: str | None
    model_name: str
    preview_method: str | None = None
    """proj, tae or vae; None: no previews."""
    preview_interval: int = 1
    preview_noisy: bool = False
    init_image: Pixels | None = None
    """img2img: RGB at exactly width x height."""
    mask_image: Pixels | None = None
    """Inpainting: L at exactly width x height; white = repaint."""
    strength: float = 0.75
    img_cfg_scale: float | None = None
    sampling_steps: int | None = None
    """Steps the library runs per image where fewer than `steps` (img2img); None: `steps`."""
    ref_images: list[Pixels] = []
    """Reference images, RGB, each at the size the front chose."""
    loras: list[Lora] = []
    upscale_repeats: int = 0
    """Runs of the attached upscaler on each image after generation; 0: none."""
    hires: Hires | None = None
    control: Control | None = None
    model_hash: str | None = None
    """A1111's short hash of the model file, for the PNG; None: not hashed."""


class Control(Struct):
    """A control image, at exactly width x height (RGB), and what the PNG says about it."""

    image: Pixels
    canny: bool
    strength: float
    """The ControlNet's weight (FLUX Control has none and ignores it: 1 there)."""
    model_name: str
    """The ControlNet as A1111 names it, `stem [short hash]` (FLUX Control: the model's own name)."""


class Video(Struct, tag=True):
    """Generate one clip (`generate_video`)."""

    prompt: str
    negative_prompt: str
    width: int
    height: int
    frames: int
    fps: int
    steps: int
    cfg_scale: float
    flow_shift: float | None
    sampling_method: str | None
    scheduler: str | None
    seed: int
    vae_tiling: bool
    model_name: str
    init_image: Pixels | None = None
    """RGB at exactly width x height."""
    end_image: Pixels | None = None
    preview_method: str | None = None
    preview_interval: int = 1
    preview_noisy: bool = False

    @property
    def hires(self) -> None:
        """A clip has no hires pass (previews read this as they do of an image's job)."""
        return None


class Upscale(Struct, tag=True):
    """Upscale one RGB image with an upscaler model."""

    rgb: bytes
    width: int
    height: int
    repeats: int


class Convert(Struct, tag=True):
    """Write `input_path` (with `vae_path`, if any) as `output_path` at `weight_type` (ggml's name)."""

    input_path: str
    vae_path: str
    output_path: str
    weight_type: str
    tensor_type_rules: str
    models_root: str | None = None


# --- worker -> front ---------------------------------------------------------------------------


class LoadProgress(Struct, tag=True):
    loaded: int
    total: int


class Loaded(Struct, tag=True):
    family: str
    size_multiple: int
    upscale_factor: int = 0
    device: str = "CPU"
    """The device the model runs on (`initialize`'s names)."""
    weight_types: dict[str, int] = {}
    """Tensors per weight type, as the library counted them in the model's files."""
    video_model: str = ""
    """A video model's own name as the library logs it ("Wan2.1-VACE-1.3B"); empty for image models."""


class Tick(Struct, tag=True):
    image: int
    step: int
    steps: int
    phase: str = "sample"


class Preview(Struct, tag=True):
    image: int
    step: int
    steps: int
    width: int
    height: int
    png: bytes


class Image(Struct, tag=True):
    index: int
    seed: int
    width: int
    height: int
    png: bytes


class UpscaleTick(Struct, tag=True):
    repeat: int
    tile: int
    tiles: int


class Upscaled(Struct, tag=True):
    png: bytes
    width: int
    height: int


class Generated(Struct, tag=True):
    sampling_method: str
    scheduler: str
    phase_ms: dict[str, float] = {}
    """Worker time per phase (`phases.ORDER`), summed over the batch."""
    sampling_steps: int = 0
    """Sampling steps run, summed over the batch."""


class ConvertTick(Struct, tag=True):
    phase: str
    """`read` (tensors read and converted), then `write`."""
    done: int
    total: int


class Converted(Struct, tag=True):
    pass


class Clip(Struct, tag=True):
    """A finished `Video`: every frame as PNG and the clip as one animated file."""

    frames: list[bytes]
    animation: bytes
    width: int
    height: int
    sampling_method: str
    scheduler: str
    phase_ms: dict[str, float]
    sampling_steps: int


class Failed(Struct, tag=True):
    """The request could not be done; the worker itself is fine."""

    reason: str
    refusal: dict[str, Any] | None = None
    """A file failed its check right before the native call: the error's `data` (its code
    included), for the front to answer with as it would have up front."""

    def error(self, code: str, failed: str) -> SidecarError:
        """What the front answers with: the refusal as it is, else `code` with the reason."""
        if self.refusal is not None:
            data = dict(self.refusal)
            return SidecarError(data.pop("code"), self.reason, **data)
        return SidecarError(code, f"{failed}: {self.reason}", reason=self.reason)


class Device(Struct):
    """A compute device as ggml lists it."""

    name: str
    description: str
    type: str
    memory_total: int
    memory_free: int


class ProbeResult(Struct, tag=True):
    binding_version: str
    native_version: str
    native_commit: str
    system_info: str
    physical_cores: int
    cpu_variant: str | None
    cpu_features: list[str]
    devices: list[Device]
    warnings: list[str]


ToWorker = Load | Generate | Upscale | Convert | Video
FromWorker = (
    LoadProgress | Loaded | Tick | Preview | Image | UpscaleTick | Upscaled | Generated | Clip | Failed | ProbeResult
    | ConvertTick | Converted
)
FINAL = (Loaded, Generated, Upscaled, Clip, Failed, ProbeResult, Converted)
"""Messages that end a request; everything else is an event on the way."""

HEADER = struct.Struct(">I")

_encoder = msgspec.msgpack.Encoder()
to_worker_decoder = msgspec.msgpack.Decoder(ToWorker)
from_worker_decoder = msgspec.msgpack.Decoder(FromWorker)


def frame(message: Struct) -> bytes:
    payload = _encoder.encode(message)
    return HEADER.pack(len(payload)) + payload
