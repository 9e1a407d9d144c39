// Models from URLs: `load()`'s downloadStream and `loadModel()`'s onDownload, against a real
// sidecar and a loopback HTTP server serving the synthetic ESRGAN x4 file (its output is noise).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";

import { SIDECAR, startTestSidecar } from "../test-support/harness.js";

const LIMIT = { timeout: 120_000 };
let folder;
let server;
let sidecar;
let body;
const requests = [];

before(async () => {
  folder = mkdtempSync(path.join(os.tmpdir(), "downloads-test-"));
  const file = path.join(folder, "esrgan-x4.safetensors");
  execFileSync(SIDECAR.command, [...SIDECAR.args, "synth-model", "--kind", "esrgan", file]);
  body = readFileSync(file);
  server = http.createServer((request, response) => {
    requests.push(request.url);
    if (!request.url.startsWith("/files/")) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { "Content-Length": body.length, ETag: '"1"' }).end(body);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const cache = path.join(folder, "cache");
  sidecar = await startTestSidecar({ args: [...SIDECAR.args, "--allow-http", "--cache-dir", cache] });
}, LIMIT);

after(async () => {
  assert.equal(await sidecar.close(), 0);
  await new Promise((resolve) => server.close(resolve));
  rmSync(folder, { recursive: true, force: true });
}, LIMIT);

const url = (name) => `http://127.0.0.1:${server.address().port}/files/${name}`;

test("load(): downloadStream reports each phase and the totals, then the result", LIMIT, async () => {
  const call = sidecar.load({ modelPath: url("a/esrgan.safetensors") });
  const seen = [];
  for await (const progress of call.downloadStream) seen.push(progress);
  const { modelId, modelFamily } = await call.result;
  assert.match(modelId, /^model-/);
  assert.equal(modelFamily, "ESRGAN upscaler (x4)");
  const phases = seen.map((p) => p.phase).filter((phase, i, all) => i === 0 || all[i - 1] !== phase);
  assert.deepEqual(phases, ["checking", "downloading", "verifying", "done"]);
  const last = seen.at(-1);
  assert.deepEqual(
    [last.requestId, last.field, last.role, last.bytesDone, last.totalBytes, last.filesDone, last.filesTotal],
    [call.requestId, "modelPath", "model", body.length, body.length, 1, 1],
  );
});

test("loadModel(): onDownload, and a source with its sha256 comes from the cache", LIMIT, async () => {
  const sha256 = createHash("sha256").update(body).digest("hex");
  const before = requests.length;
  const seen = [];
  const modelId = await sidecar.loadModel({
    modelPath: { src: url("a/esrgan.safetensors"), sha256 },
    modelConfig: { threads: 1 },
    onDownload: (progress) => seen.push(progress.phase),
  });
  assert.match(modelId, /^model-/);
  assert.deepEqual(seen, ["checking", "cached"]);
  assert.equal(requests.length, before, "a cached file needs no request");
});

test("a failed download rejects with its code and data; the stream ends", LIMIT, async () => {
  const call = sidecar.load({ modelPath: `http://127.0.0.1:${server.address().port}/missing/x.safetensors` });
  for await (const _ of call.downloadStream);
  await assert.rejects(call.result, (error) => {
    assert.equal(error.dataCode, "DOWNLOAD_FAILED");
    assert.equal(error.data.status, 404);
    assert.equal(error.data.field, "modelPath");
    return true;
  });
});
