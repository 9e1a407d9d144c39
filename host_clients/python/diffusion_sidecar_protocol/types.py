"""The sidecar's JSON-RPC methods: params, results and notifications, declared once.

Handlers decode into these types, the Python host client decodes results into them, and the
schemas in `schemas/` are generated from them. Field names follow the QVAC SDK's `diffusion()`
API where it has them (snake_case in diffusion params, camelCase elsewhere).

Fields typed `... | UnsetType = UNSET` are optional with no value of ours: an omitted field takes
the native library's own default (its `*_params_init`), or the per-model choice it makes.
Fields with a literal default carry the native default itself; `tests/test_native_defaults.py`
checks that they agree with the library.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

# The value lists of the pinned stable-diffusion.cpp, in its own enum order.
SamplingMethod = Literal[
    "euler", "euler_a", "heun", "dpm2", "dpm++2s_a", "dpm++2m", "dpm++2mv2", "ipndm", "ipndm_v",
    "lcm", "ddim_trailing", "tcd", "res_multistep", "res_2s", "er_sde",
]  # fmt: skip
Scheduler = Literal[
    "discrete", "karras", "exponential", "ays", "gits", "sgm_uniform", "simple", "smoothstep",
    "kl_optimal", "lcm", "bong_tangent",
]  # fmt: skip
Prediction = Literal["eps", "v", "edm_v", "sd3_flow", "flux_flow", "flux2_flow"]
RngType = Literal["std_default", "cuda", "cpu"]
LoraApplyMode = Literal["auto", "immediately", "at_runtime"]
WeightType = Literal[
    "f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K",
    "q6_K",
]  # fmt: skip
CachePreset = Literal["slow", "medium", "fast", "ultra"]
PreviewMethod = Literal["proj", "tae", "vae"]
Phase = str
"""A `diffusion/progress` tick's phase: "encode", "sample" or "decode" (see PHASES). A string, not
a closed list: later versions add phases (an upscale pass), and older hosts must keep decoding."""
PHASES = ("encode", "sample", "decode")
# The hires-fix upscalers as sd-cli spells them (its "None" and "Model" left out: no hires fix is
# `hires` omitted, and the ESRGAN file attached at load is `model`); matched case-insensitively.
HIRES_UPSCALERS = (
    "Latent", "Latent (nearest)", "Latent (nearest-exact)", "Latent (antialiased)", "Latent (bicubic)",
    "Latent (bicubic antialiased)", "Lanczos", "Nearest",
)  # fmt: skip
HIRES_MODEL_UPSCALER = "model"

RequestId = int | str

# JavaScript hosts hold numbers as doubles: larger integers would not survive the round trip.
MAX_SAFE_INTEGER = 2**53 - 1
MAX_SIDE = 8192
MAX_REF_IMAGES = 8
DEFAULT_SIDE = 512
"""Native default `width`/`height` (`sd_img_gen_params_init`), used when neither they nor an image give one."""

PositiveInt = Annotated[int, Meta(ge=1)]
Side = Annotated[int, Meta(ge=8, le=MAX_SIDE, multiple_of=8)]
Seed = Annotated[int, Meta(ge=-1, le=MAX_SAFE_INTEGER)]
NonNegativeFloat = Annotated[float, Meta(ge=0, le=1000)]
Strength = Annotated[float, Meta(ge=0, le=1)]
ControlStrength = Annotated[float, Meta(ge=0, le=2)]
LoraWeight = Annotated[float, Meta(ge=-10, le=10)]
Repeats = Annotated[int, Meta(ge=1, le=4)]


class Params(Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of every params object: a misspelt field is refused, never silently ignored."""


# --- initialize --------------------------------------------------------------------------------


class InitializeParams(Params):
    clientName: str | UnsetType = UNSET


class Device(Struct, kw_only=True):
    """A compute device the native library can run a model on."""

    name: str
    """What `modelConfig.device` takes: `CPU`, `Vulkan0`, `Vulkan1`, ..."""
    description: str
    """The driver's name for it, e.g. "NVIDIA GeForce RTX 4070" or "llvmpipe (LLVM 15.0.6, 256 bits)"."""
    type: Literal["cpu", "gpu", "igpu", "accel", "unknown"]
    """`gpu`: dedicated memory; `igpu`: an integrated GPU sharing the system's memory."""
    memoryTotal: int
    """Bytes, as the driver reports them (for the CPU: the system's memory)."""
    memoryFree: int
    """Bytes free when the sidecar started; equal to `memoryTotal` where the driver does not say."""


class BackendInfo(Struct, kw_only=True):
    name: str
    bindingVersion: str
    """Version of stable-diffusion-cpp-python, which vendors the native library."""
    nativeVersion: str
    nativeCommit: str
    systemInfo: str
    physicalCores: int
    cpuVariant: str | None = None
    """Which build of ggml's CPU code runs: in the portable binary, the variant chosen for this CPU
    at start (`x64`, `sse42`, `haswell`, `skylakex`, `zen4`); null where the library has a single
    CPU build compiled in (a source install's, built for the machine that built it)."""
    cpuFeatures: list[str] = []
    """Instruction sets and options that CPU code uses, as ggml names them (`AVX2`, `AVX512`,
    `OPENMP`, ...)."""
    devices: list[Device] = []
    """Every device a model can run on, in the native library's order (GPUs first, `CPU` last).
    Without `modelConfig.device` a model runs on the first GPU, else an integrated GPU, else the CPU."""
    fromCache: bool = False
    """True when this answer is the one cached for this build and machine (no probe ran before it);
    the sidecar checks it again in the background and sends `backend/changed` if it no longer holds."""
    warnings: list[str] = []
    """Why a GPU backend this build ships found no device (no driver, a failed driver, devices
    hidden by `GGML_VK_VISIBLE_DEVICES`), where that is so: models then run on the CPU."""


class Limits(Struct, kw_only=True):
    """What this sidecar accepts; set by its command-line flags, checked before work starts."""

    maxSide: int = MAX_SIDE
    """Largest `width` or `height` (fixed)."""
    maxSeed: int = MAX_SAFE_INTEGER
    """Largest `seed` (fixed: the largest integer a JavaScript number holds exactly)."""
    maxPixels: int = 2048 * 2048
    """Largest `width * height` of one image."""
    maxSteps: int = 150
    maxBatchCount: int = 16
    maxQueue: int = 16
    """Requests waiting on one model (the running one not counted); past it, QUEUE_FULL."""
    maxModels: int = 4
    """Models loaded at once (each is a process holding its weights in memory)."""
    maxRunning: int = 4
    """Generations running at once, across every model; the others wait, queued, in arrival order.
    Below it, requests of different models run together only when their threads fit the physical
    cores (a model loaded without `threads` uses them all, so runs alone)."""
    maxLineBytes: int = 64 * 1024 * 1024
    """Longest accepted input line; a longer one is refused without being read into memory."""
    maxImageBytes: int = 32 * 1024 * 1024
    """Largest input image (`init_image`, `mask_image`), counted in file bytes after base64 decoding."""
    maxImagePixels: int = 8192 * 8192
    """Largest input image in pixels, read from its header before any pixel is decoded."""
    modelsRoot: str | None = None
    """When set, every file the native library would open (models, companion files, a diffusers
    folder's parts, LoRAs, the hires upscaler) must resolve inside this folder (PATH_NOT_ALLOWED)."""
    maxPromptBytes: int = 2048
    """Longest `prompt` and `negative_prompt`, in UTF-8 bytes. Text is encoded in 77-token chunks
    whose cost grows faster than linearly, and a token is at least one byte: bytes bound the work
    whatever the script, where characters would let CJK or emoji text cost several times more."""
    maxLoras: int = 8
    """LoRAs in one `diffusion` request."""
    maxDownloadBytes: int = 64 * 1024**3
    """Largest file a source (an `https://` or `hf://` URL) may download, declared or counted."""
    downloadStallSeconds: float = 30.0
    """A download that receives no byte for this long is retried from where it stopped (3 times
    without progress at most), then fails with DOWNLOAD_STALLED."""
    offline: bool = False
    """Sources are served from the cache only (and from the Hugging Face cache); nothing is downloaded."""
    allowHttp: bool = False
    """Whether plain `http://` sources (and redirects to http) are accepted; otherwise https only."""
    cacheDir: str | None = None
    """The folder downloads are kept in (its `models/` subfolder); null: the default."""
    maxVideoFrames: int = 81
    """Most `video_frames` in one `video` request (81: Wan's own clip length, 5 s at 16 fps)."""
    maxVideoPixels: int = 832 * 480 * 81
    """Largest `width * height * video_frames` of one clip (Wan's 480p clip)."""


class InitializeResult(Struct, kw_only=True):
    serverName: str
    serverVersion: str
    protocolVersion: str
    backend: BackendInfo
    samplingMethods: list[str]
    schedulers: list[str]
    cachePresets: list[str]
    weightTypes: list[str]
    limits: Limits


# --- loadModel ---------------------------------------------------------------------------------

Sha256 = Annotated[str, Meta(pattern="^[0-9a-fA-F]{64}$")]


class FileSource(Params):
    """A file to download into the sidecar's cache (docs/models-from-urls.md), wherever a file is taken."""

    src: str
    """`https://...`, or `hf://org/repo[@revision]/path/in/repo` (Hugging Face); `http://` only when
    the sidecar runs with `--allow-http`. A plain string in a file field is the same as `{src}`."""
    sha256: Sha256 | UnsetType = UNSET
    """The file's SHA-256 (hex): checked before the download is used; a cached copy with it is used
    without any request. Omitted: the one Hugging Face publishes, if any."""
    size: Annotated[int, Meta(ge=1)] | UnsetType = UNSET
    """The file's size in bytes, checked against what the server declares before downloading."""
    name: Annotated[str, Meta(min_length=1, max_length=255)] | UnsetType = UNSET
    """The name to save it as (its suffix tells the format); omitted: the URL's last path segment."""
    headers: dict[str, str] | UnsetType = UNSET
    """Sent with the request to the source's own host only, never to a host it redirects to
    (e.g. `{"Authorization": "Bearer ..."}`); never logged nor echoed in errors."""


FileRef = str | FileSource
"""A local path, or a source: a URL string or a `FileSource`."""



class ModelConfig(Params):
    """Load options, named as QVAC names them; omitted ones keep the native default."""

    threads: Annotated[int, Meta(ge=1, le=1024)] | UnsetType = UNSET
    """CPU threads; native default: the number of physical cores."""
    type: WeightType | UnsetType = UNSET
    """Weight type to convert to at load; native default: as stored in the file."""
    prediction: Prediction | UnsetType = UNSET
    rng: RngType | UnsetType = UNSET
    sampler_rng: RngType | UnsetType = UNSET
    clip_on_cpu: bool | UnsetType = UNSET
    vae_on_cpu: bool | UnsetType = UNSET
    vae_tiling: bool | UnsetType = UNSET
    """Default of `diffusion`'s `vae_tiling` for this model."""
    offload_to_cpu: bool | UnsetType = UNSET
    flash_attn: bool | UnsetType = UNSET
    diffusion_fa: bool | UnsetType = UNSET
    device: str | UnsetType = UNSET
    """The device to run on, by its name in `initialize`'s `backend.devices` (`CPU`, `Vulkan0`, ...);
    default: the native library's choice (the first GPU, else an integrated GPU, else the CPU)."""
    max_vram: Annotated[float, Meta(ge=0, le=65536)] | UnsetType = UNSET
    """GiB a compute graph may take on a GPU: larger graphs run in pieces (slower, but they fit);
    native default 0: no limit."""
    lora_apply_mode: LoraApplyMode | UnsetType = UNSET
    vaePath: FileRef | UnsetType = UNSET
    clipLPath: FileRef | UnsetType = UNSET
    clipGPath: FileRef | UnsetType = UNSET
    t5xxlPath: FileRef | UnsetType = UNSET
    llmPath: FileRef | UnsetType = UNSET
    taesdPath: FileRef | UnsetType = UNSET
    """A TAESD file (tiny autoencoder) for `preview_method: "tae"`; used for previews only, the
    final image still comes from the model's VAE. Without it, `tae` previews are refused."""
    upscalerPath: FileRef | UnsetType = UNSET
    """An ESRGAN upscaler file (RealESRGAN/BasicSR RRDBNet) attached to this model: `diffusion`'s
    `upscale` and the hires fix's `model` upscaler use it."""
    controlNetPath: FileRef | UnsetType = UNSET
    """A ControlNet for this model (`diffusion`'s `control_image` then steers it). It must fit the
    UNet: full SD1.x, SD2.x or SDXL ones. Refused on others (the library would abort at the first
    step): before the load when the model file's tensor names show a DiT or a UNet without a middle
    attention block (safetensors), else right after it by family, the worker ended."""
    controlnet_on_cpu: bool | UnsetType = UNSET
    """Keep the ControlNet on the CPU when the model runs on a GPU (no effect on the CPU)."""
    hash: bool | UnsetType = UNSET
    """Hash the model file for the PNGs' `Model hash` (A1111's: SHA-256, first 10 digits), once per
    file version, while the model loads; default true. `false` skips reading a very large file twice."""


COMPANION_FILES = (
    "vaePath", "clipLPath", "clipGPath", "t5xxlPath", "llmPath", "taesdPath", "upscalerPath", "controlNetPath"
)  # fmt: skip
TEXT_ENCODER_FILES = ("clipLPath", "clipGPath", "t5xxlPath", "llmPath")


class LoadModelParams(Params):
    modelPath: FileRef
    """A single .safetensors, .ckpt or .gguf file, or a diffusers folder. An ESRGAN upscaler file
    on its own loads an upscaler model, for the `upscale` method. Any file field (this one, the
    companion files, LoRAs) also takes a source: an `https://` or `hf://` URL, or a `FileSource`."""
    modelConfig: ModelConfig = msgspec.field(default_factory=ModelConfig)


class LoadModelResult(Struct, kw_only=True):
    modelId: str
    modelLoadMs: float
    """Worker start plus native load, as it took when this model was loaded."""
    modelFamily: str
    """The architecture stable-diffusion.cpp detected, e.g. "SD 1.x Tiny UNet"; for an upscaler
    model "ESRGAN upscaler (x4)"."""
    alreadyLoaded: bool
    """True when an identical load had already been done (or was under way): nothing was loaded."""
    sizeMultiple: int
    """`width` and `height` must be multiples of this for this model (64 for UNet models)."""
    upscaleFactor: int = 0
    """Scale of the model's upscaler (attached with `upscalerPath`, or the model itself); 0: none."""
    device: str = "CPU"
    """The device the model runs on (a name from `initialize`'s `backend.devices`). Text encoder and
    VAE run there too unless `clip_on_cpu` / `vae_on_cpu` keep them on the CPU."""
    weightTypes: dict[str, int] = {}
    """Tensors per weight type (`f16`, `q8_0`, ...), as the library counts them in the model's files.
    With `modelConfig.type` the library converts what it can at load, on top of these."""


class LoadModelProgress(Struct, kw_only=True):
    """Notification `loadModel/progress`: tensors loaded so far."""

    requestId: RequestId | None
    loaded: int
    total: int
    elapsedMs: float


class DownloadProgress(Struct, kw_only=True):
    """Notification `download/progress`: one file of a request's sources, with the request's totals.

    About 10 per second per file at most while it downloads, one at each change of phase, and
    always a last one (`done`, or `cached` when nothing was downloaded).
    """

    requestId: RequestId | None
    field: str
    """The request's field that named the file: `modelPath`, `modelConfig.vaePath`, `lora[0].path`."""
    role: str
    """What the file is: `model`, `vae`, `clipL`, `clipG`, `t5xxl`, `llm`, `taesd`, `upscaler`, `lora`."""
    src: str
    """The source as given (credentials in the URL left out)."""
    phase: str
    """`checking` (the cache, the server), `downloading`, `verifying` (SHA-256, size), `cached`
    (used from a cache, nothing downloaded) or `done`; a string, later versions may add phases."""
    bytesDone: int
    """Bytes of this file on disk so far (resumed ones included)."""
    bytesTotal: int | None
    """The file's size; null while the server has not said it (or never does)."""
    resumedFrom: int
    """Bytes a previous, interrupted download had left (0: this one started from the beginning)."""
    speedBytesPerSecond: float
    """Over the last second or so; 0 outside `downloading`."""
    totalBytesDone: int
    """`bytesDone` summed over every file of the request."""
    totalBytes: int | None
    """`bytesTotal` summed over every file of the request; null while any of them is unknown."""
    filesDone: int
    """Files of the request that are ready (`done` or `cached`)."""
    filesTotal: int
    """Files of the request that are sources."""
    elapsedMs: float
    """Since the request arrived."""


# --- diffusion ---------------------------------------------------------------------------------


class LoraSpec(Params):
    """One LoRA of a `diffusion` request."""

    path: FileRef
    """A LoRA file (kohya, peft, LoHa or LoKr layout): .safetensors, .ckpt, .pt, .pth or .gguf; or a source."""
    weight: LoraWeight = 1.0
    """A1111's prompt-tag weight, stable-diffusion.cpp's multiplier; negative weights invert it."""


class UpscaleSpec(Params):
    """`diffusion`'s `upscale` as an object."""

    repeats: Repeats = 1
    """How many times the upscaler runs on each image (each run multiplies the sides by its scale)."""


class HiresParams(Params):
    """Hires fix: a second sampling pass at a larger size, started from the upscaled first pass.

    Give `scale`, or `width` and `height`; not both.
    """

    scale: Annotated[float, Meta(gt=1, le=8)] | UnsetType = UNSET
    """Target size as a factor of `width` and `height`; the result must be a multiple of the
    model's `sizeMultiple`. Neither `scale` nor a size: 2."""
    width: Side | UnsetType = UNSET
    height: Side | UnsetType = UNSET
    steps: Annotated[int, Meta(ge=0)] = 0
    """Sampling steps of the second pass; 0: as many as the first pass."""
    denoising_strength: Annotated[float, Meta(gt=0, le=1)] = 0.7
    """How much the second pass changes the upscaled image (A1111's name and default)."""
    upscaler: str = "Latent"
    """One of sd-cli's names, case-insensitive: Latent, Latent (nearest), Latent (nearest-exact),
    Latent (antialiased), Latent (bicubic), Latent (bicubic antialiased), Lanczos, Nearest; or
    `model`: the ESRGAN file attached at load (`upscalerPath`)."""


class DiffusionParams(Params):
    """QVAC's `DiffusionClientParams`, field for field."""

    modelId: str
    prompt: str
    negative_prompt: str = ""
    width: Side | UnsetType = UNSET
    """Omitted: `init_image`'s width, else 512 (the native default)."""
    height: Side | UnsetType = UNSET
    """Omitted: `init_image`'s height, else 512 (the native default)."""
    steps: PositiveInt = 20
    cfg_scale: NonNegativeFloat = 7.0
    guidance: NonNegativeFloat = 3.5
    """Distilled guidance, used by FLUX-style models."""
    sampling_method: SamplingMethod | UnsetType = UNSET
    """Omitted: the native per-model choice."""
    scheduler: Scheduler | UnsetType = UNSET
    """Omitted: the native per-model choice for the sampling method."""
    seed: Seed = -1
    """-1: the sidecar draws one uniformly from [0, 2^32) and reports it."""
    batch_count: PositiveInt = 1
    vae_tiling: bool | UnsetType = UNSET
    """Omitted: the model's `vae_tiling` load option, else off."""
    cache_preset: CachePreset | UnsetType = UNSET
    """Step caching: UCache on UNet models, EasyCache on DiT models; omitted: no caching."""
    timeoutMs: Annotated[int, Meta(ge=1, le=MAX_SAFE_INTEGER)] | UnsetType = UNSET
    """A deadline from the request's arrival; past it the request is cancelled (`data.code` TIMEOUT)."""
    preview_method: PreviewMethod | UnsetType = UNSET
    """Live previews as `diffusion/preview` notifications; omitted: none. `proj`: a fixed linear map
    of the latent to RGB, latent-sized (width/8 x height/8), nearly free. `tae`: the TAESD file
    loaded with `modelConfig.taesdPath`, full size, cheap. `vae`: the model's VAE, full size, a
    whole VAE decode per preview (on a model loaded with `taesdPath` the library decodes these with
    the TAESD file too)."""
    preview_interval: PositiveInt = 1
    """A preview every this many sampling steps (at steps that are multiples of it)."""
    preview_noisy: bool = False
    """Preview the noisy latent the model is given at each step instead of its denoised estimate."""
    init_image: str | UnsetType = UNSET
    """img2img: the source image, base64 (a `data:image/...;base64,` prefix is accepted); PNG, JPEG,
    WebP, GIF or BMP. Its EXIF orientation is applied; transparency is flattened onto white."""
    strength: Strength = 0.75
    """img2img: how much of `init_image` is redrawn, 0..1. Sampling runs `int(steps * strength) + 1`
    of the `steps` (all of them at 1); 0 still runs one step at the lowest noise. Unused without
    `init_image`."""
    mask_image: str | UnsetType = UNSET
    """Inpainting (needs `init_image`): base64 like `init_image`; white = repaint, black = keep. Any
    mode is reduced to grey levels (transparent = black), resized to the output size, rounded at 50%."""
    img_cfg_scale: NonNegativeFloat | UnsetType = UNSET
    """With `init_image`: image guidance of instruct-pix2pix and inpainting models (other models
    ignore it); omitted: `cfg_scale` (the native default)."""
    ref_images: Annotated[list[str], Meta(min_length=1, max_length=MAX_REF_IMAGES)] | UnsetType = UNSET
    """Reference images, as FLUX Kontext uses them: each base64 like `init_image`; the model sees
    them beside the prompt (an edit of, or a subject from, each). Each is resized as stable-
    diffusion.cpp's CLI does (its aspect kept, about the output's pixel count, sides multiples of 16).
    Used by FLUX-family, Qwen-Image and Z-Image models (Instruct-Pix2Pix models: one); refused on
    models that would encode them and drop them (SD1.x/2.x/XL UNets)."""
    lora: str | list[LoraSpec] | UnsetType = UNSET
    """LoRAs for this request only: one path (weight 1, QVAC's form) or a list of `{path, weight}`.
    Files are checked like `loadModel`'s, before any work; at most `limits.maxLoras`."""
    upscale: bool | UpscaleSpec | UnsetType = UNSET
    """Upscale each image after generation with the model's `upscalerPath` file: `true` (once) or
    `{repeats}`. The final size counts against `maxPixels`."""
    hires: HiresParams | UnsetType = UNSET
    """Hires fix (A1111's): the first pass at `width` x `height`, a second at the hires size."""
    control_image: str | UnsetType = UNSET
    """A control image (base64 like `init_image`), resized to the output size: for a model loaded
    with `modelConfig.controlNetPath`, or a FLUX Control model. Refused on any other model."""
    control_strength: ControlStrength | UnsetType = UNSET
    """How much the ControlNet steers, 0..2 (A1111's weight range; 0 reproduces the picture without
    control); native default 0.9. ControlNet only: FLUX Control has no such weight (refused there)."""
    canny: bool = False
    """Replace `control_image` by its edges first (the library's canny preprocessor, as sd-cli's
    `--canny`): white edges on black."""


class DiffusionProgress(Struct, kw_only=True):
    """Notification `diffusion/progress`: per image, one tick as each phase starts and one per
    sampling step: `encode` (step 0), `sample` (steps 1..totalSteps), `decode` (step totalSteps)."""

    requestId: RequestId | None
    step: int
    """Sampling steps done for this image."""
    totalSteps: int
    """Steps this image runs: `steps`, or for img2img `int(steps * strength) + 1` (at most `steps`)."""
    elapsedMs: float
    """Since the request arrived."""
    image: int
    """Index of the image in the batch, from 0."""
    batchCount: int
    phase: Phase = "sample"
    """`encode` (text conditioning), `sample` (denoising), `decode` (VAE); more may come."""


class DiffusionPreview(Struct, kw_only=True):
    """Notification `diffusion/preview`: the picture as it forms, when `preview_method` is given.

    At most one per `preview_interval` sampling steps per image, numbered like the progress ticks.
    The last one of an image always arrives before the result; under load an earlier one may be
    skipped rather than slow the sampling down.
    """

    requestId: RequestId | None
    image: int
    """Index of the image in the batch, from 0."""
    step: int
    """The sampling step this preview shows (1..totalSteps)."""
    totalSteps: int
    width: int
    """Pixels: width/8 for `proj` (the latent's size), the image's width for `tae` and `vae`."""
    height: int
    png: str
    """Base64-encoded PNG (RGB, no text chunks)."""


class DiffusionStats(Struct, kw_only=True):
    """QVAC's `DiffusionStats`, all fields always present.

    The `total*` counters accumulate over the life of the loaded model, as QVAC keeps them.
    The four phase times (QVAC's per-call ones) cover the worker's whole time on the call:
    `conditionerMs + denoiseMs + vaeMs + postProcessMs` is `generationMs` less the hand-over
    between processes (a few milliseconds).
    """

    modelLoadMs: float
    """Time the model took to load (worker start plus native load)."""
    generationMs: float
    """This call, from the moment the model started on it (queue wait excluded) to its last image."""
    totalGenerationMs: float
    """Sum of `generationMs` over every completed call on this model."""
    totalWallMs: float
    """Wall-clock time since the model's load began, the load included."""
    totalSteps: int
    """Sampling steps run on this model: steps times images, over every completed call (img2img
    counts the steps it really runs, `int(steps * strength) + 1`)."""
    totalGenerations: int
    """Completed `diffusion` calls on this model."""
    totalImages: int
    totalPixels: int
    width: int
    height: int
    seed: int
    """Seed of the first image; `seeds` in the result has every image's."""
    conditionerMs: float = 0.0
    """This call's `encode` phase (prompt conditioning, LoRA application), over the batch."""
    denoiseMs: float = 0.0
    """This call's `sample` phase (previews computed by the library included), over the batch."""
    vaeMs: float = 0.0
    """This call's `decode` phase (the VAE decode of the final latents), over the batch."""
    postProcessMs: float = 0.0
    """This call's work after the library returned: the attached upscaler's runs (`upscale`),
    pixels copied out, PNG encoded, handed over."""
    stepsPerSecond: float = 0.0
    """Sampling steps run by this call divided by `denoiseMs`."""


class DiffusionResult(Struct, kw_only=True):
    outputs: list[str]
    """Base64-encoded PNG images, each with an A1111-style `parameters` text chunk."""
    seeds: list[int]
    """Seed of each image: image i used seed + i."""
    stats: DiffusionStats
    sampling_method: str
    """The sampling method the images were made with: the request's, else the model's native default."""
    scheduler: str
    """The scheduler the images were made with: the request's, else the model's native default."""


# --- upscale -----------------------------------------------------------------------------------


class UpscaleParams(Params):
    """Upscale one image with an upscaler model (`loadModel` of an ESRGAN file on its own)."""

    modelId: str
    image: str
    """The image, base64-encoded (PNG, JPEG, WebP, ...); its alpha channel, if any, is dropped."""
    repeats: Repeats = 1
    """How many times the upscaler runs (each run multiplies the sides by its scale)."""
    timeoutMs: Annotated[int, Meta(ge=1, le=MAX_SAFE_INTEGER)] | UnsetType = UNSET
    """A deadline from the request's arrival; past it the request is cancelled (`data.code` TIMEOUT)."""


class UpscaleProgress(Struct, kw_only=True):
    """Notification `upscale/progress`: one per tile the upscaler finished."""

    requestId: RequestId | None
    tile: int
    totalTiles: int
    """Tiles of this run."""
    repeat: int
    """Index of the run, from 0."""
    repeats: int
    elapsedMs: float
    """Since the request arrived."""


class UpscaleStats(Struct, kw_only=True):
    modelLoadMs: float
    """Time the upscaler model took to load (worker start plus native load)."""
    postProcessMs: float
    """This call, from the moment the model started on it (queue wait excluded) to the encoded PNG."""
    width: int
    height: int
    inputWidth: int
    inputHeight: int


class UpscaleResult(Struct, kw_only=True):
    output: str
    """The upscaled image: base64 PNG with an A1111-style `parameters` chunk naming the upscaler."""
    stats: UpscaleStats


# --- video -------------------------------------------------------------------------------------

VideoFrames = Annotated[int, Meta(ge=1, le=MAX_SIDE)]


class VideoParams(Params):
    """A clip from a video model (Wan): `diffusion`'s names where they mean the same."""

    modelId: str
    prompt: str
    negative_prompt: str = ""
    width: Side = 832
    """A multiple of the model's `sizeMultiple` (16 for Wan 2.1)."""
    height: Side = 480
    video_frames: VideoFrames = 33
    """Frames in the clip: 4n+1 (the VAE packs 4 frames per latent after the first); at most
    `limits.maxVideoFrames`, and `width * height * video_frames` at most `limits.maxVideoPixels`."""
    fps: Annotated[int, Meta(ge=1, le=120)] = 16
    """Frame rate written into the animated file (Wan 2.1 is trained at 16); generation ignores it."""
    steps: PositiveInt = 20
    cfg_scale: NonNegativeFloat = 7.0
    flow_shift: Annotated[float, Meta(ge=0, le=100)] | UnsetType = UNSET
    """The flow models' sigma shift; omitted: the library's per-model default (Wan: 5)."""
    sampling_method: SamplingMethod | UnsetType = UNSET
    scheduler: Scheduler | UnsetType = UNSET
    seed: Seed = -1
    """-1: the sidecar draws one uniformly from [0, 2^32) and reports it."""
    init_image: str | UnsetType = UNSET
    """Image-to-video: the start image, base64 like `diffusion`'s, resized to the clip's size. Taken
    by models that read one (Wan I2V, FLF2V, VACE as a reference, Wan 2.2 TI2V); refused elsewhere."""
    end_image: str | UnsetType = UNSET
    """The last frame to reach (Wan I2V and FLF2V models); refused elsewhere."""
    vae_tiling: bool | UnsetType = UNSET
    timeoutMs: Annotated[int, Meta(ge=1, le=MAX_SAFE_INTEGER)] | UnsetType = UNSET
    """A deadline from the request's arrival; past it the request is cancelled (`data.code` TIMEOUT)."""
    preview_method: PreviewMethod | UnsetType = UNSET
    """Live previews of the clip's first frame as `video/preview` notifications; omitted: none."""
    preview_interval: PositiveInt = 1


class VideoProgress(Struct, kw_only=True):
    """Notification `video/progress`: one tick as each phase starts and one per sampling step:
    `encode` (step 0), `sample` (steps 1..totalSteps), `decode` (step totalSteps)."""

    requestId: RequestId | None
    step: int
    totalSteps: int
    elapsedMs: float
    frames: int
    """Frames the clip will have."""
    phase: Phase = "sample"


class VideoPreview(Struct, kw_only=True):
    """Notification `video/preview`: the clip's first frame as it forms, as `diffusion/preview`."""

    requestId: RequestId | None
    step: int
    totalSteps: int
    width: int
    height: int
    png: str


class VideoStats(Struct, kw_only=True):
    modelLoadMs: float
    generationMs: float
    """This call, from the moment the model started on it (queue wait excluded) to the encoded files."""
    conditionerMs: float
    denoiseMs: float
    vaeMs: float
    postProcessMs: float
    """PNG and animated-file encoding."""
    stepsPerSecond: float
    """Sampling steps divided by `denoiseMs`."""
    framesPerSecond: float
    """Frames made divided by `generationMs`: the generation's speed, not the clip's `fps`."""
    frames: int
    width: int
    height: int
    seed: int


class VideoResult(Struct, kw_only=True):
    frames: list[str]
    """Each frame: base64 PNG with an A1111-style `parameters` chunk (as `diffusion`'s `outputs`)."""
    animation: str
    """The whole clip: base64 animated WebP (lossless, looping), its parameters in the EXIF
    ImageDescription."""
    animationFormat: Literal["webp"] = "webp"
    fps: int
    seed: int
    stats: VideoStats
    sampling_method: str
    scheduler: str


# --- cancel ------------------------------------------------------------------------------------


class CancelParams(Params):
    """Name exactly one: a request (by its JSON-RPC id) or a model (every request on it)."""

    requestId: RequestId | UnsetType = UNSET
    modelId: str | UnsetType = UNSET


class CancelResult(Struct, kw_only=True):
    cancelled: int
    """How many requests were cancelled; each is answered with error -32800 (`CANCELLED`)."""


class CancelRequestParams(Struct, kw_only=True):
    """Notification `$/cancelRequest` (the LSP form): cancel the request with this id."""

    id: RequestId


# --- unloadModel, shutdown ---------------------------------------------------------------------


class UnloadModelParams(Params):
    modelId: str


class UnloadModelResult(Struct, kw_only=True):
    modelId: str
    unloaded: bool


class NoParams(Params):
    pass


# --- listModels --------------------------------------------------------------------------------

ModelState = Literal["loading", "ready", "reloading"]


class ModelTotals(Struct, kw_only=True):
    """A model's counters over its life, as `DiffusionStats` reports them after each call."""

    modelLoadMs: float
    totalGenerationMs: float
    totalWallMs: float
    totalSteps: int
    totalGenerations: int
    totalImages: int
    totalPixels: int


class ListedRequest(Struct, kw_only=True):
    """A `diffusion` request that has taken its turn on a model (its input images are decoded)."""

    requestId: RequestId | None
    running: bool
    place: int | None
    """Requests of any model waiting for the same compute device that arrived before this one
    (0: it starts next once its model is free); null while it runs."""


class ListedModel(Struct, kw_only=True):
    modelId: str
    files: dict[str, str]
    """The files it was loaded from, by the `loadModel` field that named them (`modelPath`,
    `vaePath`, ...), as absolute paths."""
    state: ModelState
    """`loading` (its first load is under way), `ready`, or `reloading` (into a fresh worker,
    after a cancel or a crash; requests wait for it)."""
    modelFamily: str | None
    """The detected architecture; null while loading."""
    sizeMultiple: int | None
    """`width` and `height` must be multiples of this; null while loading."""
    weightTypes: dict[str, int] | None = None
    """Tensors per weight type, as in `loadModel`'s result; null while loading."""
    running: int
    """`diffusion` requests running on it now (0 or 1)."""
    queued: int
    """`diffusion` requests waiting for their turn on it."""
    requests: list[ListedRequest]
    """Its requests in arrival order, running first, each with its place on the compute device."""
    totals: ModelTotals | None
    """Null while loading."""


class ListModelsResult(Struct, kw_only=True):
    models: list[ListedModel]
    """Every model loaded or being loaded, in load order."""


class BackendChanged(Struct, kw_only=True):
    """Notification `backend/changed`: the backend differs from what `initialize` answered (from
    the cached probe answer): a driver, a GPU or the library changed since it was cached. Devices'
    free memory alone does not count as a change."""

    requestId: RequestId | None = None
    """Always null: no request caused it."""
    backend: BackendInfo


# --- convert -----------------------------------------------------------------------------------


class ConvertParams(Params):
    """Write a model at another weight type (GGUF, or safetensors for float types), as sd-cli's
    `-M convert` does, in a worker process."""

    modelPath: str
    """The model to convert: a .safetensors, .ckpt or .gguf file, or a diffusers folder (written as
    one file). A standalone diffusion model or text encoder is converted on its own and loaded with
    its companions as before."""
    outputPath: str
    """The file to write: `.gguf`, or `.safetensors` (float types only). Its folder must exist; it is
    written under a temporary name beside it and renamed once complete."""
    type: WeightType
    """Weight type of the tensors the library can convert; the others keep their stored type."""
    vaePath: str | UnsetType = UNSET
    """A VAE file to include, as `loadModel`'s `modelConfig.vaePath` would add it (its tensors are
    written under `vae.`)."""
    tensorTypeRules: Annotated[str, Meta(max_length=4096)] | UnsetType = UNSET
    """Types per tensor name: `pattern=type` pairs separated by commas (`^vae\\.=f16,model\\.=q8_0`);
    the first pattern found in a name decides, `type` does for the rest."""
    overwrite: bool = False
    """Replace `outputPath` when it exists (otherwise the request is refused)."""
    timeoutMs: Annotated[int, Meta(ge=1, le=MAX_SAFE_INTEGER)] | UnsetType = UNSET
    """A deadline from the request's arrival; past it the request is cancelled (`data.code` TIMEOUT)."""


class ConvertProgress(Struct, kw_only=True):
    """Notification `convert/progress`: tensors read and converted so far (`phase` `read`), then one
    tick as the file starts being written (`phase` `write`)."""

    requestId: RequestId | None
    phase: str
    done: int
    total: int
    elapsedMs: float


class ConvertResult(Struct, kw_only=True):
    outputPath: str
    """The file written (absolute)."""
    outputBytes: int
    tensors: int
    weightTypes: dict[str, int]
    """Tensors per weight type in the file written."""
    unquantized: dict[str, int]
    """Tensors left at another type than `type`, by why: `shape` (innermost dimension not a whole
    number of the type's blocks: every 3x3 conv), `bias`, `scale`, `embedding` (embeddings and the
    input/output layers the library keeps by name), `rule` (`tensorTypeRules`), `other`."""
    convertMs: float
    """From the start of the native conversion to the file under its name (queue wait excluded)."""


NOTIFICATIONS: dict[str, type[Struct]] = {
    "backend/changed": BackendChanged,
    "download/progress": DownloadProgress,
    "loadModel/progress": LoadModelProgress,
    "diffusion/progress": DiffusionProgress,
    "diffusion/preview": DiffusionPreview,
    "upscale/progress": UpscaleProgress,
    "convert/progress": ConvertProgress,
    "video/progress": VideoProgress,
    "video/preview": VideoPreview,
}
"""Notifications the sidecar sends, by method name."""
