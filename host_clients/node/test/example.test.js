// examples/electron-main.js runs as documented: one sidecar, many requests, a clean exit.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";

import { PACKAGE_DIR, SIDECAR, pngSize, syntheticModel } from "../test-support/harness.js";

test("the Electron main-process example", { timeout: 120_000 }, async () => {
  const out = mkdtempSync(path.join(os.tmpdir(), "electron-example-"));
  const sidecar = [SIDECAR.command, ...SIDECAR.args].join(" ");
  const args = ["--model", syntheticModel(), "--out", out, "--size", "64", "--steps", "1", "--sidecar", sidecar];
  // Resolves only once the example's process has exited: it must not be held open by the sidecar.
  const example = path.join(PACKAGE_DIR, "examples", "electron-main.js");
  const { stdout } = await promisify(execFile)(process.execPath, [example, ...args], { maxBuffer: 64 << 20 });
  for (const index of [0, 1, 2]) {
    assert.match(stdout, new RegExp(`^\\[${index}\\] 1/1$`, "m"));
    assert.deepEqual(pngSize(readFileSync(path.join(out, `electron-${index}.png`))), { width: 64, height: 64 });
  }
  assert.match(stdout, /^sidecar exit status 0$/m);
  assert.match(stdout, /^sidecar ended \(code 0, signal null\)$/m);
});
