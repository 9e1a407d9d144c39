// `video()` against a real sidecar running the synthetic Wan (its frames are noise, its prompt is
// ignored: nothing here asserts what a frame looks like). The model is loaded once; the one clip
// is the smallest the model makes (32x32, 5 frames, 1 step at cfg 1), about 20 s on 2 cores.
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";

import { SidecarError } from "../src/index.js";
import { pngSize, startTestSidecar, syntheticWan } from "../test-support/harness.js";

// Writing the model the first time on a machine (~40 s) and loading it (~13 s) come before the clip.
const LIMIT = { timeout: 600_000 };
const CLIP = { prompt: "a lighthouse at dusk", width: 32, height: 32, video_frames: 5, steps: 1, cfg_scale: 1 };
let sidecar;
let modelId;

/** The fourCCs of a RIFF file's top-level chunks (after "RIFF", the size and the form type). */
function riffChunks(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ascii = (at) => Buffer.from(bytes.subarray(at, at + 4)).toString("latin1");
  assert.equal(view.getUint32(4, true), bytes.length - 8, "the RIFF size covers the whole file");
  const chunks = [];
  for (let at = 12; at < bytes.length; ) {
    const size = view.getUint32(at + 4, true);
    chunks.push(ascii(at));
    at += 8 + size + (size % 2); // chunks are padded to an even length
  }
  return chunks;
}

before(async () => {
  const folder = syntheticWan();
  sidecar = await startTestSidecar();
  const loaded = await sidecar.load({
    modelPath: path.join(folder, "diffusion.safetensors"),
    modelConfig: { vaePath: path.join(folder, "vae.safetensors") },
  }).result;
  assert.equal(loaded.modelFamily, "Wan 2.x"); // the files the harness wrote are a Wan
  modelId = loaded.modelId;
}, LIMIT);

after(async () => {
  assert.equal(await sidecar.close(), 0);
}, LIMIT);

test("video(): a PNG per frame, an animated WebP of them, a tick per phase", LIMIT, async () => {
  const ticks = [];
  const onProgress = (tick) => ticks.push(tick);
  const { frames, animation, result } = await sidecar.video({ modelId, ...CLIP, seed: 1, onProgress });
  assert.equal(frames.length, 5);
  for (const frame of frames) {
    assert.equal(Object.getPrototypeOf(frame), Uint8Array.prototype);
    assert.deepEqual(pngSize(frame), { width: 32, height: 32 });
  }
  // Distinct frames: the client hands back each frame, not one decoded five times.
  assert.equal(new Set(frames.map((frame) => Buffer.from(frame).toString("base64"))).size, 5);
  assert.equal(Object.getPrototypeOf(animation), Uint8Array.prototype);
  const latin1 = Buffer.from(animation).toString("latin1");
  assert.equal(latin1.slice(0, 4), "RIFF");
  assert.equal(latin1.slice(8, 12), "WEBP");
  // An animated WebP: the extended header, the animation header, one ANMF chunk per frame, then
  // the EXIF that carries the generation parameters.
  assert.deepEqual(riffChunks(animation), ["VP8X", "ANIM", "ANMF", "ANMF", "ANMF", "ANMF", "ANMF", "EXIF"]);
  assert.ok(latin1.includes("Frames: 5"));
  assert.deepEqual(
    ticks.map(({ phase, step, totalSteps, frames: count }) => [phase, step, totalSteps, count]),
    [
      ["encode", 0, 1, 5],
      ["sample", 1, 1, 5],
      ["decode", 1, 1, 5],
    ],
  );
  assert.ok(ticks.every((tick) => tick.requestId === ticks[0].requestId));
  assert.deepEqual([result.stats.frames, result.stats.seed, result.fps], [5, 1, 16]);
});

test("video() with video_frames not 4n+1 rejects with INVALID_PARAMS naming the field", LIMIT, async () => {
  const ticks = [];
  const onProgress = (tick) => ticks.push(tick);
  await assert.rejects(sidecar.video({ modelId, ...CLIP, video_frames: 4, onProgress }), (error) => {
    assert.ok(error instanceof SidecarError);
    assert.equal(error.dataCode, "INVALID_PARAMS");
    assert.equal(error.data.field, "video_frames");
    return true;
  });
  assert.deepEqual(ticks, []); // refused before any native work
});
