// previewStream's buffer, without a sidecar: a host that never reads holds a bounded number.
import assert from "node:assert/strict";
import { test } from "node:test";

import { PREVIEW_BUFFER, diffusionCall } from "../src/diffusion.js";

function fakeCall() {
  let notify;
  let settle;
  const call = diffusionCall(
    (onNotification) => {
      notify = onNotification;
      return { id: 1, answer: new Promise((resolve) => (settle = resolve)) };
    },
    async () => ({ cancelled: 0 }),
  );
  return { call, notify, settle };
}

const preview = (step) => ({ requestId: 1, image: 0, step, totalSteps: 100, width: 8, height: 8, png: "iVBORw0KGgo=" });

test("only the most recent previews wait for a reader; ticks still all arrive", async () => {
  const { call, notify, settle } = fakeCall();
  for (let step = 1; step <= 100; step++) {
    notify(preview(step), "diffusion/preview");
    notify({ requestId: 1, step, totalSteps: 100, phase: "sample" }, "diffusion/progress");
  }
  settle({ outputs: [], seeds: [1], stats: {} });
  const steps = [];
  for await (const { step, png } of call.previewStream) {
    assert.ok(png instanceof Uint8Array);
    steps.push(step);
  }
  assert.deepEqual(steps, Array.from({ length: PREVIEW_BUFFER }, (_, i) => 100 - PREVIEW_BUFFER + 1 + i));
  const ticks = [];
  for await (const tick of call.progressStream) ticks.push(tick.step);
  assert.equal(ticks.length, 100);
});
