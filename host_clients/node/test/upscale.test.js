// `upscale()` against a real sidecar running the synthetic ESRGAN x4 file (its output is noise).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { deflateSync } from "node:zlib";

import { SidecarError } from "../src/index.js";
import { SIDECAR, pngSize, startTestSidecar } from "../test-support/harness.js";

const LIMIT = { timeout: 120_000 };
let sidecar;
let folder;
let modelId;

/** A tiny RGB PNG (a grey ramp), built by hand: the client depends on nothing to make one. */
function rampPng(width, height) {
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([length, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const rows = [];
  for (let y = 0; y < height; y++) rows.push(Buffer.from([0, ...Array.from({ length: width * 3 }, (_, i) => (i * 7 + y * 11) % 256)]));
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return new Uint8Array(
    Buffer.concat([signature, chunk("IHDR", header), chunk("IDAT", deflateSync(Buffer.concat(rows))), chunk("IEND", Buffer.alloc(0))]),
  );
}

function crc32(bytes) {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return (crc ^ 0xffffffff) >>> 0;
}

before(async () => {
  folder = mkdtempSync(path.join(os.tmpdir(), "upscale-test-"));
  const esrgan = execFileSync(SIDECAR.command, [...SIDECAR.args, "synth-model", "--kind", "esrgan", path.join(folder, "x4.safetensors")], {
    encoding: "utf8",
  }).trim();
  sidecar = await startTestSidecar();
  modelId = await sidecar.loadModel({ modelPath: esrgan });
}, LIMIT);

after(async () => {
  assert.equal(await sidecar.close(), 0);
  rmSync(folder, { recursive: true, force: true });
}, LIMIT);

test("upscale(): PNG bytes four times the size, a tick per tile, stats", LIMIT, async () => {
  const ticks = [];
  const { output, stats } = await sidecar.upscale({ modelId, image: rampPng(12, 8), onProgress: (t) => ticks.push(t) });
  assert.equal(Object.getPrototypeOf(output), Uint8Array.prototype);
  assert.deepEqual(pngSize(output), { width: 48, height: 32 });
  assert.deepEqual([stats.width, stats.height, stats.inputWidth, stats.inputHeight], [48, 32, 12, 8]);
  assert.ok(ticks.length > 0 && ticks.at(-1).tile === ticks.at(-1).totalTiles);
});

test("upscale() of bytes that are not an image rejects with INVALID_PARAMS", LIMIT, async () => {
  await assert.rejects(sidecar.upscale({ modelId, image: new Uint8Array([1, 2, 3]) }), (error) => {
    assert.ok(error instanceof SidecarError);
    assert.equal(error.dataCode, "INVALID_PARAMS");
    assert.equal(error.data.field, "image");
    return true;
  });
});
