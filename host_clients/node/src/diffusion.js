/**
 * What `diffusion()` returns at once, as QVAC's does: a stream of ticks, then the images and stats.
 */

/** Previews kept for a reader of `previewStream` that falls behind (or never reads): the oldest go. */
export const PREVIEW_BUFFER = 8;
/** Progress notifications (downloads, load ticks) kept for a reader that falls behind: the oldest go. */
export const PROGRESS_BUFFER = 64;

/**
 * Ticks arrive before, during or after the caller's loop: they wait here until taken. With a
 * `limit`, only the most recent `limit` items wait (previews: a host that never reads holds no more).
 */
export class TickQueue {
  #ticks = [];
  #ended = false;
  #wake = null;
  #limit;

  constructor(limit = Infinity) {
    this.#limit = limit;
  }

  push(tick) {
    this.#ticks.push(tick);
    if (this.#ticks.length > this.#limit) this.#ticks.shift();
    this.#wakeUp();
  }

  end() {
    this.#ended = true;
    this.#wakeUp();
  }

  #wakeUp() {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  async *stream() {
    for (;;) {
      while (this.#ticks.length) yield this.#ticks.shift();
      if (this.#ended) return;
      await new Promise((resolve) => (this.#wake = resolve));
    }
  }
}

/** PNG bytes as a plain Uint8Array, the type QVAC's `outputs` promises (no copy). */
export function decodeImage(base64) {
  const bytes = Buffer.from(base64, "base64");
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** `diffusion` params that carry an image file. */
const IMAGE_PARAMS = ["init_image", "mask_image", "control_image", "end_image"];

/**
 * Params as the protocol carries them: image files given as bytes (Uint8Array, Buffer) become
 * base64; strings are sent as they are (base64, or a `data:image/...;base64,` URL).
 */
export function encodeImages(params) {
  const encoded = { ...params };
  for (const key of IMAGE_PARAMS) if (key in encoded) encoded[key] = encodeImage(encoded[key]);
  if (Array.isArray(encoded.ref_images)) encoded.ref_images = encoded.ref_images.map(encodeImage);
  return encoded;
}

function encodeImage(image) {
  return image instanceof Uint8Array
    ? Buffer.from(image.buffer, image.byteOffset, image.byteLength).toString("base64")
    : image;
}

/** A cancelled or timed-out generation still hands over the images it finished. */
function withFinishedImages(error) {
  if (Array.isArray(error.data?.outputs)) {
    error.outputs = error.data.outputs.map(decodeImage);
    error.seeds = error.data.seeds;
  }
  throw error;
}

function handled(promise) {
  // A caller may await only one of the promises: the others must not reject as unhandled.
  promise.catch(() => {});
  return promise;
}

/**
 * @param start sends the request; gets the tick callback, returns `{ id, answer }`.
 * @param cancel cancels a request by id; resolves to the `cancel` result.
 */
export function diffusionCall(start, cancel) {
  const ticks = new TickQueue();
  const previews = new TickQueue(PREVIEW_BUFFER);
  const downloads = new TickQueue(PROGRESS_BUFFER);
  const { id, answer } = start((params, method) => {
    if (method === "download/progress") {
      downloads.push(params);
    } else if (method === "diffusion/preview") {
      const { image, step, totalSteps, width, height, png } = params;
      previews.push({ image, step, totalSteps, width, height, png: decodeImage(png) });
    } else if (method === "diffusion/progress") {
      ticks.push(params);
    }
  });
  const result = answer.catch(withFinishedImages);
  const end = () => {
    ticks.end();
    previews.end();
    downloads.end();
  };
  result.then(end, end);
  return {
    requestId: id,
    progressStream: ticks.stream(),
    /** `{ image, step, totalSteps, width, height, png }` as previews arrive (with `preview_method`). */
    previewStream: previews.stream(),
    /** `download/progress` of LoRAs given as URLs. */
    downloadStream: downloads.stream(),
    outputs: handled(result.then((r) => r.outputs.map(decodeImage))),
    stats: handled(result.then((r) => r.stats)),
    seeds: handled(result.then((r) => r.seeds)),
    sampling: handled(result.then((r) => ({ sampling_method: r.sampling_method, scheduler: r.scheduler }))),
    /** Resolves to true if the call was still pending (it then rejects with CANCELLED). */
    cancel: async () => (await cancel(id)).cancelled > 0,
  };
}
