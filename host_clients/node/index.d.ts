// Types of diffusion-sidecar-client. The protocol types mirror the JSON Schemas in schemas/ (which
// are generated from the sidecar's own msgspec Structs); test/types.test.js fails when a property,
// its optionality or its type differs from them.

import type { Readable, Writable } from "node:stream";

// --- value lists ---------------------------------------------------------------------------------

export type SamplingMethod =
  | "euler" | "euler_a" | "heun" | "dpm2" | "dpm++2s_a" | "dpm++2m" | "dpm++2mv2" | "ipndm"
  | "ipndm_v" | "lcm" | "ddim_trailing" | "tcd" | "res_multistep" | "res_2s" | "er_sde";
export type Scheduler =
  | "discrete" | "karras" | "exponential" | "ays" | "gits" | "sgm_uniform" | "simple"
  | "smoothstep" | "kl_optimal" | "lcm" | "bong_tangent";
export type CachePreset = "slow" | "medium" | "fast" | "ultra";
export type WeightType =
  | "f32" | "f16" | "bf16" | "q4_0" | "q4_1" | "q5_0" | "q5_1" | "q8_0" | "q2_K" | "q3_K"
  | "q4_K" | "q5_K" | "q6_K";
export type Prediction = "eps" | "v" | "edm_v" | "sd3_flow" | "flux_flow" | "flux2_flow";
export type RngType = "std_default" | "cuda" | "cpu";
export type LoraApplyMode = "auto" | "immediately" | "at_runtime";
export type PreviewMethod = "proj" | "tae" | "vae";
export type RequestId = number | string;

/** `error.data.code` of every error the sidecar sends, plus the client's own SIDECAR_EXITED. */
export type ErrorCode =
  | "PARSE_ERROR" | "INVALID_REQUEST" | "METHOD_NOT_FOUND" | "INVALID_PARAMS" | "INTERNAL_ERROR"
  | "MODEL_NOT_LOADED" | "MODEL_LOAD_FAILED" | "WORKER_CRASHED" | "GENERATION_FAILED"
  | "SHUTTING_DOWN" | "QUEUE_FULL" | "LIMIT_EXCEEDED" | "PATH_NOT_ALLOWED" | "DOWNLOAD_FAILED"
  | "AUTH_REQUIRED" | "CHECKSUM_MISMATCH" | "INSUFFICIENT_DISK" | "OFFLINE_NOT_CACHED"
  | "DOWNLOAD_STALLED" | "TOO_MANY_REDIRECTS" | "CONVERT_FAILED"
  | "CANCELLED" | "TIMEOUT" | "SIDECAR_EXITED";

// --- diffusion (QVAC's names) --------------------------------------------------------------------

/** QVAC's `DiffusionClientParams`; omitted fields take the native library's defaults. */
export interface DiffusionClientParams {
  modelId: string;
  prompt: string;
  negative_prompt?: string;
  /** Pixels; a multiple of the model's `sizeMultiple` (64 for UNet models). Default 512. */
  width?: number;
  height?: number;
  steps?: number;
  cfg_scale?: number;
  guidance?: number;
  sampling_method?: SamplingMethod;
  scheduler?: Scheduler;
  /** -1 or omitted: the sidecar draws one and reports it in `stats.seed`. Image i uses seed + i. */
  seed?: number;
  batch_count?: number;
  vae_tiling?: boolean;
  cache_preset?: CachePreset;
  /** A deadline from the request's arrival; past it the call rejects with `TIMEOUT`. */
  timeoutMs?: number;
  /**
   * Live previews (`previewStream`); omitted: none. `proj`: latent-sized (width/8), nearly free;
   * `tae`: full size, needs `modelConfig.taesdPath`; `vae`: full size, a VAE decode each.
   */
  preview_method?: PreviewMethod;
  /** A preview every this many sampling steps. Default 1. */
  preview_interval?: number;
  /** Preview the noisy latent instead of the denoised estimate. Default false. */
  preview_noisy?: boolean;
  /**
   * img2img: the source image file (PNG, JPEG, WebP, GIF or BMP) as base64, a `data:image/...;base64,`
   * URL also accepted. Without `width`/`height` the output takes its size (EXIF orientation applied).
   */
  init_image?: string;
  /** img2img: how much is redrawn, 0..1 (default 0.75); runs `int(steps * strength) + 1` steps. */
  strength?: number;
  /** Inpainting (needs `init_image`): white = repaint, black = keep; resized to the output. */
  mask_image?: string;
  /** With `init_image`: image guidance of instruct-pix2pix and inpainting models; default: `cfg_scale`. */
  img_cfg_scale?: number;
  /**
   * Reference images (FLUX Kontext-style), each base64 like `init_image`; 1 to 8. FLUX-family,
   * Qwen-Image and Z-Image models use them; refused on models that would drop them (UNets).
   */
  ref_images?: string[];
  /** LoRAs for this request only: one path (weight 1) or a list of `{ path, weight }`. */
  lora?: string | LoraSpec[];
  /** Upscale each image with the model's `upscalerPath` file: `true` (once) or `{ repeats }`. */
  upscale?: boolean | UpscaleSpec;
  /** Hires fix: a second pass at the larger size. */
  hires?: HiresParams;
  /**
   * A control image, base64 like `init_image`, resized to the output: for a model loaded with
   * `controlNetPath` or a FLUX Control model; refused on others (and with `hires`).
   */
  control_image?: string;
  /** The ControlNet's weight, 0..2 (default 0.9); refused without a ControlNet (FLUX Control has none). */
  control_strength?: number;
  /** Replace `control_image` by its canny edges first (the library's preprocessor). Default false. */
  canny?: boolean;
}

export interface LoraSpec {
  /** A LoRA file's path, or a source (docs/models-from-urls.md). */
  path: FileRef;
  /** A1111's prompt-tag weight (-10..10); default 1. */
  weight?: number;
}

export interface UpscaleSpec {
  /** Runs of the upscaler (1-4); each multiplies the sides by its scale. */
  repeats?: number;
}

/** Give `scale`, or `width` and `height`. */
export interface HiresParams {
  scale?: number;
  width?: number;
  height?: number;
  /** Second-pass steps; 0: as many as the first pass. */
  steps?: number;
  /** Default 0.7. */
  denoising_strength?: number;
  /** sd-cli's names, any case (`Latent`, `Latent (nearest)`, ..., `Lanczos`, `Nearest`), or `model`. */
  upscaler?: string;
}

/** An image file: its bytes (encoded to base64 by the client), or a base64 string as is. */
export type ImageInput = string | Uint8Array;

/** What `diffusion()` takes: the protocol's params, with image files also as bytes (Buffer too). */
export interface DiffusionOptions extends Omit<DiffusionClientParams, "init_image" | "mask_image" | "control_image" | "ref_images"> {
  init_image?: ImageInput;
  mask_image?: ImageInput;
  control_image?: ImageInput;
  ref_images?: ImageInput[];
}

/**
 * QVAC's `DiffusionProgressTick`, plus the image's place and phase: per image, one tick as each
 * phase starts (`encode` at step 0, `decode` at step totalSteps) and one per sampling step.
 */
export interface DiffusionProgressTick {
  requestId: RequestId | null;
  step: number;
  totalSteps: number;
  /** Since the request arrived. */
  elapsedMs: number;
  /** Index of the image in the batch, from 0. */
  image: number;
  batchCount: number;
  /** "encode" | "sample" | "decode" today; later versions may add phases (always sent). */
  phase: string;
}

/** A `diffusion/preview` notification as the protocol carries it (base64 PNG). */
export interface DiffusionPreview {
  requestId: RequestId | null;
  image: number;
  /** The sampling step it shows, numbered like the progress ticks. */
  step: number;
  totalSteps: number;
  /** Pixels: width/8 for `proj`, the image's size for `tae` and `vae`. */
  width: number;
  height: number;
  png: string;
}

/** What `previewStream` yields: a preview with its PNG decoded. */
export interface PreviewImage {
  image: number;
  step: number;
  totalSteps: number;
  width: number;
  height: number;
  png: Uint8Array;
}

/** QVAC's `DiffusionStats`; the sidecar always sends every field. `total*` count since the load. */
export interface DiffusionStats {
  modelLoadMs: number;
  generationMs: number;
  totalGenerationMs: number;
  totalWallMs: number;
  totalSteps: number;
  totalGenerations: number;
  totalImages: number;
  totalPixels: number;
  width: number;
  height: number;
  seed: number;
  /** This call's phase times (always sent); the four add up to `generationMs` less a few ms. */
  conditionerMs: number;
  denoiseMs: number;
  vaeMs: number;
  postProcessMs: number;
  /** Sampling steps of this call divided by `denoiseMs`. */
  stepsPerSecond: number;
}

/** The `diffusion` result as the protocol carries it (base64 PNGs); `diffusion()` decodes it. */
export interface DiffusionResult {
  outputs: string[];
  seeds: number[];
  stats: DiffusionStats;
  /** The sampling method used: the request's, else the model's native default. */
  sampling_method: string;
  /** The scheduler used: the request's, else the model's native default. */
  scheduler: string;
}

/** What `diffusion()` returns at once. Only the first three are QVAC's; the rest are extras. */
export interface DiffusionCall {
  /** One tick per sampling step per image; ends (never throws) when the call ends. */
  progressStream: AsyncGenerator<DiffusionProgressTick>;
  /**
   * Previews as they arrive (with `preview_method`); ends when the call ends. Only the 8 most
   * recent wait for a reader that falls behind or never reads.
   */
  previewStream: AsyncGenerator<PreviewImage>;
  /** `download/progress` of LoRAs given as URLs; ends when the call ends. */
  downloadStream: AsyncGenerator<DownloadProgress>;
  /** PNG bytes, one per image. */
  outputs: Promise<Uint8Array[]>;
  stats: Promise<DiffusionStats | undefined>;
  /** The seed of each image. */
  seeds: Promise<number[]>;
  /** The sampling method and scheduler the images were made with (the model's defaults where omitted). */
  sampling: Promise<{ sampling_method: string; scheduler: string }>;
  /** The JSON-RPC id of this call, for `cancel({ requestId })`. */
  requestId: number;
  /** Cancels this call; true if it was still pending (it then rejects with `CANCELLED`). */
  cancel(): Promise<boolean>;
}

// --- models --------------------------------------------------------------------------------------

/** Load options under QVAC's names; omitted ones keep the native library's defaults. */
export interface ModelConfig {
  threads?: number;
  type?: WeightType;
  prediction?: Prediction;
  rng?: RngType;
  sampler_rng?: RngType;
  clip_on_cpu?: boolean;
  vae_on_cpu?: boolean;
  vae_tiling?: boolean;
  offload_to_cpu?: boolean;
  flash_attn?: boolean;
  diffusion_fa?: boolean;
  /** The device to run on, by its name in `initialize`'s `backend.devices`; default: the native library's choice. */
  device?: string;
  /** GiB a compute graph may take on a GPU: larger graphs run in pieces; 0: no limit. */
  max_vram?: number;
  lora_apply_mode?: LoraApplyMode;
  vaePath?: FileRef;
  clipLPath?: FileRef;
  clipGPath?: FileRef;
  t5xxlPath?: FileRef;
  llmPath?: FileRef;
  /** A TAESD file for `preview_method: "tae"` (previews only; the final image keeps the VAE). */
  taesdPath?: FileRef;
  /** An ESRGAN file attached to the model, for `upscale` and the hires fix's `model` upscaler. */
  upscalerPath?: FileRef;
  /** A ControlNet (full SD1.x, SD2.x or SDXL UNets only; refused on others, before the load where the file shows it). */
  controlNetPath?: FileRef;
  /** Keep the ControlNet on the CPU when the model runs on a GPU. */
  controlnet_on_cpu?: boolean;
  /** Hash the model file for the PNGs' `Model hash` (default true); false skips it for very large files. */
  hash?: boolean;
}

/**
 * A file to download into the sidecar's cache: `https://...` or `hf://org/repo[@revision]/path`.
 * Every file field takes a path, a URL string, or this (docs/models-from-urls.md).
 */
export interface FileSource {
  src: string;
  /** Checked before the file is used; a cached copy with it is used without any request. */
  sha256?: string;
  /** Bytes, checked against what the server declares before downloading. */
  size?: number;
  /** The name to save it as (its suffix tells the format); default: the URL's last segment. */
  name?: string;
  /** Sent to the source's own host only, never to a host it redirects to; never logged. */
  headers?: Record<string, string>;
}

/** A local path, or a source: a URL string or a `FileSource`. */
export type FileRef = string | FileSource;

export interface LoadModelParams {
  /** A .safetensors, .ckpt or .gguf file, or a diffusers folder; or a source. */
  modelPath: FileRef;
  modelConfig?: ModelConfig;
}

/** One file of a request's sources (`download/progress`), with the request's totals. */
export interface DownloadProgress {
  requestId: RequestId | null;
  /** `modelPath`, `modelConfig.vaePath`, `lora[0].path`, ... */
  field: string;
  /** `model`, `vae`, `clipL`, `clipG`, `t5xxl`, `llm`, `taesd`, `upscaler`, `lora`. */
  role: string;
  /** The source as given, without credentials. */
  src: string;
  /** `checking`, `downloading`, `verifying`, `cached` or `done` (more may come). */
  phase: string;
  bytesDone: number;
  bytesTotal: number | null;
  resumedFrom: number;
  speedBytesPerSecond: number;
  /** Summed over every file of the request: one bar for a host. */
  totalBytesDone: number;
  /** Null while any file's size is unknown. */
  totalBytes: number | null;
  filesDone: number;
  filesTotal: number;
  elapsedMs: number;
}

export interface LoadModelProgress {
  requestId: RequestId | null;
  loaded: number;
  total: number;
  elapsedMs: number;
}

export interface LoadModelOptions extends LoadModelParams {
  onProgress?: (progress: LoadModelProgress) => void;
  /** Each `download/progress` of the files given as sources. */
  onDownload?: (progress: DownloadProgress) => void;
}

/** What `load()` returns at once. */
export interface LoadCall {
  requestId: number;
  /** `download/progress` per file, with the request's totals; ends (never throws) with the call. */
  downloadStream: AsyncGenerator<DownloadProgress>;
  /** `loadModel/progress` ticks; ends with the call. */
  progressStream: AsyncGenerator<LoadModelProgress>;
  result: Promise<LoadModelResult>;
  /** Cancels the load; true if it was still pending (it then rejects with `CANCELLED`). */
  cancel(): Promise<boolean>;
}

export interface LoadModelResult {
  modelId: string;
  modelLoadMs: number;
  modelFamily: string;
  alreadyLoaded: boolean;
  /** `width` and `height` must be multiples of this. */
  sizeMultiple: number;
  /** Scale of the model's upscaler (attached, or the model itself); 0: none. */
  upscaleFactor: number;
  /** The device the model runs on (a name from `initialize`'s `backend.devices`). */
  device: string;
  /** Tensors per weight type (`f16`, `q8_0`, ...) in the model's files. */
  weightTypes: Record<string, number>;
}

// --- upscale -------------------------------------------------------------------------------------

export interface UpscaleParams {
  /** An upscaler model: `loadModel` of an ESRGAN file on its own. */
  modelId: string;
  /** The image file (PNG, JPEG, WebP, ...), base64. */
  image: string;
  repeats?: number;
  timeoutMs?: number;
}

/** One tile of the upscaler finished. */
export interface UpscaleProgress {
  requestId: RequestId | null;
  tile: number;
  totalTiles: number;
  repeat: number;
  repeats: number;
  elapsedMs: number;
}

export interface UpscaleStats {
  modelLoadMs: number;
  postProcessMs: number;
  width: number;
  height: number;
  inputWidth: number;
  inputHeight: number;
}

// --- convert -------------------------------------------------------------------------------------

/** Write a model at another weight type (GGUF; safetensors for float types), in a worker. */
export interface ConvertParams {
  /** A .safetensors, .ckpt or .gguf file, or a diffusers folder. */
  modelPath: string;
  /** `.gguf`, or `.safetensors` for f32/f16/bf16; written under a temporary name, then renamed. */
  outputPath: string;
  type: WeightType;
  /** A VAE to include (under `vae.`). */
  vaePath?: string;
  /** `pattern=type` pairs, comma-separated; the first pattern found in a tensor's name decides. */
  tensorTypeRules?: string;
  /** Replace `outputPath` when it exists (otherwise refused). */
  overwrite?: boolean;
  timeoutMs?: number;
}

/** Tensors read so far (`phase` "read"), then one tick as writing starts ("write"). */
export interface ConvertProgress {
  requestId: RequestId | null;
  phase: string;
  done: number;
  total: number;
  elapsedMs: number;
}

export interface ConvertResult {
  outputPath: string;
  outputBytes: number;
  tensors: number;
  /** Tensors per weight type in the file written. */
  weightTypes: Record<string, number>;
  /** Tensors left at another type than `type`, by why: shape, bias, scale, embedding, rule, other. */
  unquantized: Record<string, number>;
  convertMs: number;
}

/** The `upscale` result as the protocol carries it; `upscale()` decodes the PNG. */
export interface UpscaleResult {
  output: string;
  stats: UpscaleStats;
}

export interface UpscaleOptions {
  modelId: string;
  /** The image file: its bytes, or base64 as is. */
  image: ImageInput;
  repeats?: number;
  timeoutMs?: number;
  onProgress?: (progress: UpscaleProgress) => void;
}

// --- video ---------------------------------------------------------------------------------------

/** A clip from a video model (Wan); `diffusion`'s names where they mean the same. */
export interface VideoParams {
  modelId: string;
  prompt: string;
  negative_prompt?: string;
  width?: number;
  height?: number;
  /** 4n+1 frames, at most `limits.maxVideoFrames`. */
  video_frames?: number;
  /** Frame rate written into the animated file. */
  fps?: number;
  steps?: number;
  cfg_scale?: number;
  flow_shift?: number;
  sampling_method?: SamplingMethod;
  scheduler?: Scheduler;
  seed?: number;
  /** Image-to-video: the start image (models that read one). */
  init_image?: string;
  /** The last frame to reach (Wan I2V and FLF2V models). */
  end_image?: string;
  vae_tiling?: boolean;
  timeoutMs?: number;
  preview_method?: PreviewMethod;
  preview_interval?: number;
}

/** `video/progress`: a tick as each phase starts and one per sampling step. */
export interface VideoProgress {
  requestId: RequestId | null;
  step: number;
  totalSteps: number;
  elapsedMs: number;
  frames: number;
  /** "encode" | "sample" | "decode" today; later versions may add phases. */
  phase: string;
}

/** `video/preview`: the clip's first frame as it forms. */
export interface VideoPreview {
  requestId: RequestId | null;
  step: number;
  totalSteps: number;
  width: number;
  height: number;
  png: string;
}

export interface VideoStats {
  modelLoadMs: number;
  generationMs: number;
  conditionerMs: number;
  denoiseMs: number;
  vaeMs: number;
  postProcessMs: number;
  stepsPerSecond: number;
  /** Frames made per second of generation (not the clip's fps). */
  framesPerSecond: number;
  frames: number;
  width: number;
  height: number;
  seed: number;
}

/** The `video` result as the protocol carries it; `video()` decodes the files. */
export interface VideoResult {
  frames: string[];
  animation: string;
  animationFormat: "webp";
  fps: number;
  seed: number;
  stats: VideoStats;
  sampling_method: string;
  scheduler: string;
}

export interface VideoOptions extends Omit<VideoParams, "init_image" | "end_image"> {
  init_image?: ImageInput;
  end_image?: ImageInput;
  onProgress?: (progress: VideoProgress) => void;
  onPreview?: (preview: VideoPreview) => void;
}

export interface UnloadModelParams {
  modelId: string;
}

export interface UnloadModelResult {
  modelId: string;
  unloaded: boolean;
}

export type ModelState = "loading" | "ready" | "reloading";

export interface ModelTotals {
  modelLoadMs: number;
  totalGenerationMs: number;
  totalWallMs: number;
  totalSteps: number;
  totalGenerations: number;
  totalImages: number;
  totalPixels: number;
}

export interface ListedModel {
  modelId: string;
  /** Absolute paths by the `loadModel` field that named them (`modelPath`, `vaePath`, ...). */
  files: Record<string, string>;
  state: ModelState;
  /** null while loading. */
  modelFamily: string | null;
  sizeMultiple: number | null;
  /** Tensors per weight type; null while loading. */
  weightTypes: Record<string, number> | null;
  running: number;
  queued: number;
  /** Its requests in arrival order, each with its place on the compute device. */
  requests: ListedRequest[];
  totals: ModelTotals | null;
}

/** A `diffusion` request on a model, with its place in the compute device's line. */
export interface ListedRequest {
  requestId: RequestId | null;
  running: boolean;
  /** Requests waiting for the same device that arrived before it (0: next); null while it runs. */
  place: number | null;
}

export interface ListModelsResult {
  models: ListedModel[];
}

/** Give exactly one. */
export interface CancelParams {
  requestId?: RequestId;
  modelId?: string;
}

export interface CancelResult {
  /** How many requests were cancelled; each rejects with `CANCELLED` (code -32800). */
  cancelled: number;
}

// --- initialize ----------------------------------------------------------------------------------

export interface InitializeParams {
  clientName?: string;
}

export interface BackendInfo {
  name: string;
  bindingVersion: string;
  nativeVersion: string;
  nativeCommit: string;
  systemInfo: string;
  physicalCores: number;
  /** Which build of ggml's CPU code runs: the portable binary's variant for this CPU (`x64`, `sse42`, `haswell`, `skylakex`, `zen4`); null where the library has a single CPU build compiled in. */
  cpuVariant: string | null;
  /** Instruction sets and options that CPU code uses, as ggml names them (`AVX2`, `AVX512`, `OPENMP`, ...). */
  cpuFeatures: string[];
  /** Every device a model can run on, GPUs first, `CPU` last; without `modelConfig.device` a model runs on the first GPU, else an integrated GPU, else the CPU. */
  devices: Device[];
  /** True when this answer is the one cached for this build and machine (no probe ran before it); `backend/changed` follows if it no longer holds. */
  fromCache: boolean;
  /** Why a GPU backend this build ships found no device, where that is so: models then run on the CPU. */
  warnings: string[];
}

/** Notification `backend/changed`: the backend differs from the cached answer `initialize` gave. */
export interface BackendChanged {
  /** Always null: no request caused it. */
  requestId: RequestId | null;
  backend: BackendInfo;
}

/** A compute device the native library can run a model on. */
export interface Device {
  /** What `modelConfig.device` takes: `CPU`, `Vulkan0`, ... */
  name: string;
  /** The driver's name for it. */
  description: string;
  type: "cpu" | "gpu" | "igpu" | "accel" | "unknown";
  /** Bytes, as the driver reports them. */
  memoryTotal: number;
  /** Bytes free when the sidecar started; equal to `memoryTotal` where the driver does not say. */
  memoryFree: number;
}

export interface Limits {
  maxSide: number;
  maxSeed: number;
  maxPixels: number;
  maxSteps: number;
  maxBatchCount: number;
  maxQueue: number;
  maxModels: number;
  /** Generations running at once across every model; the others wait, queued, in arrival order. */
  maxRunning: number;
  maxLineBytes: number;
  /** Largest input image file, in bytes. */
  maxImageBytes: number;
  /** Largest input image, in pixels (read from its header before decoding). */
  maxImagePixels: number;
  modelsRoot: string | null;
  maxPromptBytes: number;
  maxLoras: number;
  /** Largest file a source may download, declared or counted. */
  maxDownloadBytes: number;
  /** A download that receives nothing this long is resumed (3 times in a row at most), then fails. */
  downloadStallSeconds: number;
  /** Sources come from the caches only. */
  offline: boolean;
  /** Whether plain `http://` sources are accepted. */
  allowHttp: boolean;
  /** Where downloads are kept (its `models/` subfolder). */
  cacheDir: string | null;
  /** Most `video_frames` in one `video` request. */
  maxVideoFrames: number;
  /** Largest `width * height * video_frames` of one clip. */
  maxVideoPixels: number;
}

export interface InitializeResult {
  serverName: string;
  serverVersion: string;
  protocolVersion: string;
  backend: BackendInfo;
  samplingMethods: string[];
  schedulers: string[];
  cachePresets: string[];
  weightTypes: string[];
  limits: Limits;
}

// --- the client ----------------------------------------------------------------------------------

/** An error response: JSON-RPC `code`, the stable `data.code` string (`dataCode`) and all of `data`. */
export declare class SidecarError extends Error {
  code: number;
  dataCode: ErrorCode | undefined;
  data: { code?: ErrorCode; [key: string]: unknown };
  /** A cancelled or timed-out `diffusion` call: the images it had finished (PNG bytes). */
  outputs?: Uint8Array[];
  /** ... and their seeds. */
  seeds?: number[];
}

/** The sidecar ended before answering (code -32099, `dataCode` SIDECAR_EXITED). */
export declare class SidecarExitedError extends SidecarError {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
}

/** The sidecar speaks another major version of the protocol (code -32098, `dataCode` PROTOCOL_MISMATCH). */
export declare class ProtocolMismatchError extends SidecarError {
  /** What the sidecar reported; undefined if it reported none. */
  protocolVersion: string | undefined;
  serverVersion: string | undefined;
}

/** No command was given and none was found; `tried` lists every place looked at, in order. */
export declare class SidecarNotFoundError extends Error {
  code: "SIDECAR_NOT_FOUND";
  tried: string[];
}

/** The protocol version this client speaks (`major.minor`); a sidecar of another major version is refused. */
export declare const PROTOCOL_VERSION: string;

/** The environment variable naming the sidecar's executable: "DIFFUSION_SIDECAR". */
export declare const ENV_VAR: "DIFFUSION_SIDECAR";

/** The sidecar startSidecar() runs when given no command: `DIFFUSION_SIDECAR`, else `diffusion-sidecar` on PATH. */
export declare function findSidecar(env?: Record<string, string | undefined>): string;

export interface SidecarExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StartOptions {
  /** Default: `findSidecar()` (`DIFFUSION_SIDECAR`, else `diffusion-sidecar` on PATH). Any command that speaks the protocol will do. */
  command?: string;
  args?: string[];
  /** Added to this process's environment. */
  env?: Record<string, string>;
  /** Where the sidecar's log goes; default: this process's stderr. */
  stderr?: "inherit" | "ignore" | "pipe" | number | Readable | Writable;
}

export declare const DEFAULT_COMMAND: "diffusion-sidecar";

export declare class Sidecar {
  readonly pid: number;
  /** Resolves once the sidecar process has ended, whatever the reason. */
  readonly exited: Promise<SidecarExit>;
  /** The sidecar's version and protocol version, as `initialize` reported them at start. */
  readonly serverVersion: string;
  readonly protocolVersion: string;
  initialize(params?: InitializeParams): Promise<InitializeResult>;
  /** Resolves to the model's id. */
  loadModel(options: LoadModelOptions): Promise<string>;
  /** Starts a load: its downloads as a stream, then its result. */
  load(options: LoadModelOptions): LoadCall;
  /** QVAC's `diffusion()`; `init_image`, `mask_image` and `ref_images` may be bytes. */
  diffusion(params: DiffusionOptions): DiffusionCall;
  /** Upscales an image with an upscaler model: the PNG bytes and stats. Ticks carry the `requestId` to cancel. */
  upscale(options: UpscaleOptions): Promise<{ output: Uint8Array; stats: UpscaleStats }>;
  /** A clip: each frame's PNG bytes, the animated WebP's bytes, and the rest of the result. */
  video(options: VideoOptions): Promise<{ frames: Uint8Array[]; animation: Uint8Array; result: VideoResult }>;
  cancel(target: { requestId: RequestId } | { modelId: string }): Promise<CancelResult>;
  unloadModel(params: UnloadModelParams): Promise<void>;
  listModels(): Promise<ListModelsResult>;
  /** Any method by name; `onNotification` gets the notifications that name this request. */
  request(method: string, params?: object, onNotification?: (params: any, method: string) => void): Promise<any>;
  /** Shuts the sidecar down (killing it after `timeoutMs`); resolves to its exit status. */
  close(options?: { timeoutMs?: number }): Promise<number | null>;
}

/** Spawns the sidecar; resolves once it has answered `initialize` with a compatible protocol version. */
export declare function startSidecar(options?: StartOptions): Promise<Sidecar>;
