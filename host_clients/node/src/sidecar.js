import { spawn } from "node:child_process";

import { PROGRESS_BUFFER, TickQueue, diffusionCall, encodeImages } from "./diffusion.js";
import { findSidecar } from "./discovery.js";
import { ProtocolMismatchError, SidecarError, SidecarExitedError } from "./errors.js";
import { LineSplitter } from "./lines.js";
import { PROTOCOL_VERSION, compatible } from "./protocol.js";

const CLOSE_TIMEOUT_MS = 10_000;

/**
 * Strings cut through an emoji hold a lone UTF-16 surrogate, which JSON.stringify sends as an
 * escape like `\\ud83d`; send U+FFFD instead, as UTF-8 encoders do (keys are left to the sidecar,
 * which reads lone surrogates the same way).
 */
function wellFormed(_key, value) {
  return typeof value === "string" ? value.toWellFormed() : value;
}

/**
 * Spawns the sidecar and resolves once it has answered `initialize` with a protocol version of
 * this client's major version. With no `command`, `findSidecar()` finds it (looking at `env` over
 * this process's environment). The sidecar's log (its stderr) goes to ours unless `stderr` says
 * otherwise. Rejects with SidecarNotFoundError, or ProtocolMismatchError (after ending the sidecar).
 */
export async function startSidecar({ command, args = [], env, stderr = "inherit" } = {}) {
  const environment = env ? { ...process.env, ...env } : process.env;
  const child = spawn(command ?? findSidecar(environment), args, {
    stdio: ["pipe", "pipe", stderr],
    env: environment,
    windowsHide: true,
  });
  await new Promise((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", reject);
  });
  const sidecar = new Sidecar(child);
  try {
    const { serverVersion, protocolVersion } = (await sidecar.initialize()) ?? {};
    if (!compatible(protocolVersion)) throw new ProtocolMismatchError(protocolVersion, serverVersion, PROTOCOL_VERSION);
    sidecar.serverVersion = serverVersion;
    sidecar.protocolVersion = protocolVersion;
  } catch (error) {
    child.kill(); // SIGTERM: it shuts down as on end of input
    await sidecar.exited;
    throw error;
  }
  return sidecar;
}

export class Sidecar {
  #child;
  #nextId = 1;
  #calls = new Map();
  #exit = null;
  #killOnHostExit;

  /** Resolves with `{ code, signal }` once the sidecar process has ended, for whatever reason. */
  exited;

  /** The sidecar's version and its protocol version, as `initialize` reported them at start. */
  serverVersion;
  protocolVersion;

  constructor(child) {
    this.#child = child;
    const lines = new LineSplitter();
    child.stdout.on("data", (chunk) => lines.push(chunk).forEach((line) => this.#receive(line)));
    // Writing to a sidecar that just died fails with EPIPE; its death is reported by "close".
    child.stdin.on("error", () => {});
    child.on("error", (error) => process.emitWarning(`diffusion-sidecar: ${error.message}`));
    this.exited = new Promise((resolve) => {
      // "close" comes after the last stdout byte: every answer already written has been routed.
      child.once("close", (code, signal) => {
        this.#exit = { code, signal };
        process.off("exit", this.#killOnHostExit);
        for (const call of this.#calls.values()) call.reject(new SidecarExitedError(code, signal));
        this.#calls.clear();
        resolve(this.#exit);
      });
    });
    // The sidecar also stops when its stdin closes, which a dying host does anyway; this makes it
    // immediate when the host leaves through process.exit() with calls still running.
    this.#killOnHostExit = () => child.kill();
    process.on("exit", this.#killOnHostExit);
  }

  get pid() {
    return this.#child.pid;
  }

  #receive(line) {
    let message;
    try {
      message = JSON.parse(line);
    } catch {
      process.emitWarning(`diffusion-sidecar: skipped a stdout line that is not JSON: ${line.slice(0, 200)}`);
      return;
    }
    if (typeof message.method === "string") {
      this.#calls.get(message.params?.requestId)?.onNotification?.(message.params, message.method);
      return;
    }
    const call = this.#calls.get(message.id);
    if (call === undefined) return;
    this.#calls.delete(message.id);
    if (message.error) {
      const { code, message: text, data } = message.error;
      call.reject(new SidecarError(code, text, data ?? {}));
    } else {
      call.resolve(message.result ?? null);
    }
  }

  #start(method, params, onNotification) {
    const id = this.#nextId++;
    const answer = new Promise((resolve, reject) => {
      if (this.#exit) {
        reject(new SidecarExitedError(this.#exit.code, this.#exit.signal));
        return;
      }
      this.#calls.set(id, { resolve, reject, onNotification });
      const message = { jsonrpc: "2.0", id, method, ...(params === undefined ? {} : { params }) };
      this.#child.stdin.write(`${JSON.stringify(message, wellFormed)}\n`);
    });
    return { id, answer };
  }

  /**
   * Any method: resolves to its `result`, or rejects with a SidecarError. `onNotification(params,
   * method)` gets the notifications that name this request.
   */
  request(method, params, onNotification) {
    return this.#start(method, params, onNotification).answer;
  }

  initialize(params = {}) {
    return this.request("initialize", params);
  }

  /**
   * Loads a model and resolves to its id. `onProgress` gets each `loadModel/progress` tick,
   * `onDownload` each `download/progress` of the files given as sources (URLs).
   */
  async loadModel({ modelPath, modelConfig = {}, onProgress, onDownload } = {}) {
    const result = await this.load({ modelPath, modelConfig, onProgress, onDownload }).result;
    return result.modelId;
  }

  /**
   * Starts a load: `{ requestId, downloadStream, progressStream, result, cancel }` at once. The
   * streams end with the call; `result` resolves to the `loadModel` result.
   */
  load({ modelPath, modelConfig = {}, onProgress, onDownload } = {}) {
    const downloads = new TickQueue(PROGRESS_BUFFER);
    const ticks = new TickQueue(PROGRESS_BUFFER);
    const { id, answer } = this.#start("loadModel", { modelPath, modelConfig }, (params, method) => {
      if (method === "download/progress") {
        downloads.push(params);
        onDownload?.(params);
      } else if (method === "loadModel/progress") {
        ticks.push(params);
        onProgress?.(params);
      }
    });
    const end = () => {
      downloads.end();
      ticks.end();
    };
    answer.then(end, end);
    answer.catch(() => {}); // a caller that reads only a stream must not see an unhandled rejection
    return {
      requestId: id,
      downloadStream: downloads.stream(),
      progressStream: ticks.stream(),
      result: answer,
      /** Resolves to true if the load was still pending (it then rejects with CANCELLED). */
      cancel: async () => (await this.cancel({ requestId: id })).cancelled > 0,
    };
  }

  /** QVAC's `diffusion()`: `{ progressStream, outputs, stats }` at once (plus `seeds`, `requestId`, `cancel`). */
  diffusion(params) {
    return diffusionCall(
      (onTick) => this.#start("diffusion", encodeImages(params), onTick),
      (requestId) => this.cancel({ requestId }),
    );
  }

  /**
   * Upscales an image file's bytes with an upscaler model (`loadModel` of an ESRGAN file); resolves
   * to `{ output, stats }` with the PNG bytes. `onProgress` gets each tile; its `requestId` cancels.
   */
  async upscale({ modelId, image, repeats, timeoutMs, onProgress } = {}) {
    const encoded = image instanceof Uint8Array ? Buffer.from(image.buffer, image.byteOffset, image.byteLength) : null;
    const params = { modelId, image: encoded ? encoded.toString("base64") : image, repeats, timeoutMs };
    const result = await this.request("upscale", params, onProgress);
    return { output: new Uint8Array(Buffer.from(result.output, "base64")), stats: result.stats };
  }

  /**
   * A clip from a video model (Wan); resolves to `{ frames, animation, result }`: each frame's PNG
   * bytes, the animated WebP's bytes, and the result (fps, seed, stats). `init_image` and
   * `end_image` take bytes or base64. `onProgress` gets each tick; its `requestId` cancels.
   */
  async video({ onProgress, onPreview, ...params } = {}) {
    const result = await this.request("video", encodeImages(params), (notified, method) => {
      if (method === "video/preview") onPreview?.(notified);
      else if (method === "video/progress") onProgress?.(notified);
    });
    const decode = (text) => new Uint8Array(Buffer.from(text, "base64"));
    return { frames: result.frames.map(decode), animation: decode(result.animation), result };
  }

  /** Cancels one request (`{ requestId }`) or every request on a model (`{ modelId }`). */
  cancel(target) {
    return this.request("cancel", target);
  }

  async unloadModel({ modelId }) {
    await this.request("unloadModel", { modelId });
  }

  /** Every model loaded or being loaded: its files, state, queue and totals. */
  listModels() {
    return this.request("listModels", {});
  }

  /**
   * Shuts the sidecar down (pending calls end with SHUTTING_DOWN) and resolves to its exit status.
   * A sidecar that has not exited after `timeoutMs` is killed.
   */
  async close({ timeoutMs = CLOSE_TIMEOUT_MS } = {}) {
    if (this.#exit === null) {
      const timer = setTimeout(() => this.#child.kill("SIGKILL"), timeoutMs);
      try {
        // Whatever shutdown answers (or if the sidecar is gone already), closing stdin ends it too.
        await this.request("shutdown").catch(() => {});
        this.#child.stdin.end();
        await this.exited;
      } finally {
        clearTimeout(timer);
      }
    }
    return this.#exit.code;
  }
}
