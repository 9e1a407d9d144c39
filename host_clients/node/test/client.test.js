// The seed API against a real sidecar running the synthetic model (its pictures are noise).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { SidecarError } from "../src/index.js";
import { SMALL, pngSize, startTestSidecar, syntheticModel } from "../test-support/harness.js";

const LIMIT = { timeout: 60_000 }; // a hang fails the test instead of stalling the suite
let sidecar;
let modelId;
const unhandled = [];
const onUnhandled = (reason) => unhandled.push(reason);

before(async () => {
  process.on("unhandledRejection", onUnhandled);
  sidecar = await startTestSidecar();
  const progress = [];
  modelId = await sidecar.loadModel({ modelPath: syntheticModel(), onProgress: (p) => progress.push(p) });
  assert.match(modelId, /^model-/);
  assert.ok(progress.length > 0 && progress.at(-1).loaded === progress.at(-1).total, "load progress reached the end");
}, LIMIT);

after(async () => {
  assert.equal(await sidecar.close(), 0);
  process.off("unhandledRejection", onUnhandled);
  assert.deepEqual(unhandled, [], "a promise rejected with nobody to handle it");
}, LIMIT);

test("the seed's example: progress loop, then the images, then the stats", LIMIT, async () => {
  const { progressStream, outputs: images, stats } = sidecar.diffusion({
    modelId,
    prompt: "a cat sitting on a windowsill",
    width: 64,
    height: 64,
    steps: 3,
    cfg_scale: 7,
  });
  const seen = [];
  for await (const { step, totalSteps, phase } of progressStream) seen.push(`${phase} ${step}/${totalSteps}`);
  assert.deepEqual(seen, ["encode 0/3", "sample 1/3", "sample 2/3", "sample 3/3", "decode 3/3"]);
  const imageBuffers = await images;
  assert.equal(imageBuffers.length, 1);
  assert.equal(Object.getPrototypeOf(imageBuffers[0]), Uint8Array.prototype);
  assert.deepEqual(pngSize(imageBuffers[0]), { width: 64, height: 64 });
  const { width, height, totalImages, generationMs, seed } = await stats;
  assert.deepEqual({ width, height }, { width: 64, height: 64 });
  assert.ok(totalImages >= 1 && generationMs > 0 && Number.isInteger(seed) && seed >= 0);
});

test("basic usage: only the outputs awaited", LIMIT, async () => {
  const { outputs } = sidecar.diffusion({ modelId, ...SMALL, seed: 3 });
  const buffers = await outputs;
  assert.deepEqual(pngSize(buffers[0]), { width: 64, height: 64 });
});

test("a batch: one image per seed, ticks naming each image, stats of the whole call", LIMIT, async () => {
  const call = sidecar.diffusion({ modelId, ...SMALL, seed: 40, batch_count: 2 });
  const ticks = [];
  for await (const tick of call.progressStream) if (tick.phase === "sample") ticks.push(tick);
  assert.deepEqual(
    ticks.map(({ image, step, totalSteps, batchCount }) => [image, step, totalSteps, batchCount]),
    [
      [0, 1, 1, 2],
      [1, 1, 1, 2],
    ],
  );
  assert.ok(ticks.every((tick) => tick.requestId === call.requestId));
  const [images, stats, seeds] = await Promise.all([call.outputs, call.stats, call.seeds]);
  assert.deepEqual(seeds, [40, 41]);
  assert.equal(images.length, 2);
  assert.notDeepEqual(images[0], images[1]);
  assert.equal(stats.seed, 40);

  const alone = await sidecar.diffusion({ modelId, ...SMALL, seed: 41 }).outputs;
  assert.deepEqual(alone[0], images[1], "image i of a batch is the image of seed + i");
});

test("cancel mid-batch: the call rejects with CANCELLED and hands over the finished image", LIMIT, async () => {
  const call = sidecar.diffusion({ modelId, ...SMALL, steps: 3, seed: 70, batch_count: 3 });
  const ticks = [];
  for await (const tick of call.progressStream) {
    ticks.push(tick);
    if (tick.image === 1 && tick.step === 1) {
      assert.deepEqual(await sidecar.cancel({ requestId: call.requestId }), { cancelled: 1 });
    }
  }
  assert.ok(ticks.every((tick) => tick.image <= 1), "no tick after the cancel reached image 2");
  const error = await call.outputs.then(
    () => assert.fail("a cancelled call resolved"),
    (rejection) => rejection,
  );
  assert.ok(error instanceof SidecarError);
  assert.equal(error.code, -32800);
  assert.equal(error.dataCode, "CANCELLED");
  assert.deepEqual(error.seeds, [70]);
  assert.equal(error.outputs.length, 1);
  assert.deepEqual(pngSize(error.outputs[0]), { width: 64, height: 64 });
  await assert.rejects(call.stats, (rejection) => rejection === error);
});

test("cancel one call from its handle, then every call on the model", LIMIT, async () => {
  const running = sidecar.diffusion({ modelId, ...SMALL, steps: 30 });
  const queued = [sidecar.diffusion({ modelId, ...SMALL }), sidecar.diffusion({ modelId, ...SMALL })];
  await running.progressStream.next(); // the first tick: it runs, the others wait behind it
  assert.equal(await queued[0].cancel(), true);
  await assert.rejects(queued[0].outputs, { code: -32800, dataCode: "CANCELLED" });
  assert.equal(await queued[0].cancel(), false, "a call that has ended cannot be cancelled again");
  assert.deepEqual(await sidecar.cancel({ modelId }), { cancelled: 2 });
  for (const call of [running, queued[1]]) {
    await assert.rejects(call.outputs, { code: -32800, dataCode: "CANCELLED" });
  }
  const after = await sidecar.diffusion({ modelId, ...SMALL }).outputs;
  assert.equal(after.length, 1, "the model serves again after its worker was replaced");
});

test("previewStream: decoded PNG previews as the picture forms, ending with the call", LIMIT, async () => {
  const call = sidecar.diffusion({ modelId, ...SMALL, steps: 2, seed: 9, preview_method: "proj" });
  const previews = [];
  for await (const preview of call.previewStream) previews.push(preview);
  // Under load an earlier preview may be skipped (latest wins); the last one always comes.
  const steps = previews.map(({ step }) => step);
  assert.deepEqual(steps, [...new Set(steps)].sort());
  assert.equal(steps.at(-1), 2);
  assert.ok(previews.every(({ image, totalSteps }) => image === 0 && totalSteps === 2));
  for (const preview of previews) {
    assert.equal(Object.getPrototypeOf(preview.png), Uint8Array.prototype);
    // proj previews are the latent's size: an eighth of the image's.
    assert.deepEqual(pngSize(preview.png), { width: 8, height: 8 });
    assert.deepEqual({ width: preview.width, height: preview.height }, { width: 8, height: 8 });
  }
  assert.equal((await call.outputs).length, 1);
});

test("errors reject with the JSON-RPC code and data.code, and the stream just ends", LIMIT, async () => {
  const call = sidecar.diffusion({ modelId, ...SMALL, width: 100 });
  const ticks = [];
  for await (const tick of call.progressStream) ticks.push(tick);
  assert.deepEqual(ticks, []);
  await assert.rejects(call.outputs, (error) => {
    assert.ok(error instanceof SidecarError);
    assert.equal(error.code, -32602);
    assert.equal(error.dataCode, "INVALID_PARAMS");
    assert.equal(error.data.field, "width");
    return true;
  });
  await assert.rejects(call.stats, { dataCode: "INVALID_PARAMS" });

  await assert.rejects(sidecar.diffusion({ ...SMALL, modelId: "no-such-model" }).outputs, {
    code: -32001,
    dataCode: "MODEL_NOT_LOADED",
  });
  await assert.rejects(sidecar.loadModel({ modelPath: "/no/such/model.safetensors" }), (error) => {
    assert.deepEqual([error.code, error.dataCode, error.data.field], [-32602, "INVALID_PARAMS", "modelPath"]);
    return true;
  });
  await assert.rejects(sidecar.request("noSuchMethod", {}), { code: -32601, dataCode: "METHOD_NOT_FOUND" });
  await assert.rejects(sidecar.cancel({}), { code: -32602, dataCode: "INVALID_PARAMS" });
  // Nobody awaits `stats` or `seeds` of this failed call: that must not be an unhandled rejection.
  await assert.rejects(sidecar.diffusion({ ...SMALL, modelId: "no-such-model" }).outputs);
  await new Promise((resolve) => setImmediate(resolve)); // Node reports unhandled rejections by now
});

test("initialize reports the server and its limits", LIMIT, async () => {
  const info = await sidecar.initialize({ clientName: "node-test" });
  assert.equal(info.serverName, "diffusion-sidecar");
  assert.ok(info.samplingMethods.includes("euler_a"));
  assert.ok(Number.isInteger(info.limits.maxBatchCount));
});

test("img2img: init_image as Uint8Array or Buffer is the same request; the output takes its size", LIMIT, async () => {
  const [source] = await sidecar.diffusion({ modelId, ...SMALL, width: 128, height: 64, seed: 8 }).outputs;
  const edit = (init_image) => sidecar.diffusion({ modelId, prompt: "a cat", steps: 1, seed: 9, strength: 0.5, init_image });
  const [fromBytes] = await edit(source).outputs;
  const [fromBuffer] = await edit(Buffer.from(source)).outputs;
  assert.deepEqual(pngSize(fromBytes), { width: 128, height: 64 });
  assert.deepEqual(fromBuffer, fromBytes);
  await assert.rejects(edit(new Uint8Array([1, 2, 3])).outputs, (error) => {
    assert.ok(error instanceof SidecarError);
    assert.equal(error.dataCode, "INVALID_PARAMS");
    assert.equal(error.data.field, "init_image");
    return true;
  });
});

test("a prompt cut through an emoji (a lone surrogate) generates, read as U+FFFD", LIMIT, async () => {
  const prompt = "a cat 🐱".slice(0, -1); // ends in the lone high surrogate \ud83d
  const [png] = await sidecar.diffusion({ modelId, ...SMALL, prompt, seed: 5 }).outputs;
  // The PNG's parameters text (UTF-8 in an iTXt chunk) starts with the prompt as the sidecar read it.
  assert.ok(Buffer.from(png).includes(Buffer.from("a cat \ufffd\n")), "the prompt reads with U+FFFD");
});

test("listModels finds the loaded model, ready, with its files and totals", LIMIT, async () => {
  const { models } = await sidecar.listModels();
  const listed = models.find((model) => model.modelId === modelId);
  assert.equal(listed.state, "ready");
  assert.equal(listed.files.modelPath, syntheticModel());
  assert.ok(listed.totals.totalGenerations >= 0 && listed.sizeMultiple === 64);
});
