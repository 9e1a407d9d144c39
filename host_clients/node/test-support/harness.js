// What the tests share: how to start the sidecar under test, the synthetic model, PNG checks.
// (Kept out of test/, where `node --test test/` would run every file as a test.)
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { startSidecar } from "../src/index.js";

export const PACKAGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const REPO_DIR = path.resolve(PACKAGE_DIR, "../..");
export const VENV_BIN = path.join(REPO_DIR, ".venv", "bin");

/** SIDECAR_COMMAND (e.g. a frozen binary) when set, else the repository's virtualenv. */
export const SIDECAR = (() => {
  const words = process.env.SIDECAR_COMMAND?.trim().split(/\s+/) ?? [path.join(VENV_BIN, "python"), "-m", "sidecar"];
  return { command: words[0], args: words.slice(1) };
})();

export function startTestSidecar(options = {}) {
  return startSidecar({ ...SIDECAR, stderr: "ignore", ...options });
}

const CACHE = process.env.DIFFUSION_SIDECAR_CACHE ?? path.join(os.homedir(), ".cache", "diffusion-sidecar");

let model;
/** The synthetic-weights model, written once per machine into the sidecar's cache and reused. */
export function syntheticModel() {
  model ??= execFileSync(SIDECAR.command, [...SIDECAR.args, "synth-model", CACHE], { encoding: "utf8" }).trim();
  return model;
}

/**
 * The synthetic Wan folder (diffusion.safetensors, vae.safetensors; 3.2 GB, about 40 s to write),
 * written once per machine into the cache and reused. The folder name carries a digest of the
 * generator's source, so a changed architecture is written anew rather than a stale copy loaded
 * (the Python tests' folder is named by a digest only Python computes, hence a folder of its own).
 */
export function syntheticWan() {
  const generator = readFileSync(path.join(REPO_DIR, "sidecar", "synth", "wan.py"));
  const digest = createHash("sha256").update(generator).digest("hex").slice(0, 12);
  const folder = path.join(CACHE, `synthetic-wan-node-${digest}`);
  const args = [...SIDECAR.args, "synth-model", "--kind", "wan", folder];
  return execFileSync(SIDECAR.command, args, { encoding: "utf8" }).trim();
}

export const SMALL = { prompt: "a lighthouse at dusk", width: 64, height: 64, steps: 1 };

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Width and height from a PNG's IHDR chunk; throws if the bytes are not a PNG. */
export function pngSize(bytes) {
  if (!PNG_SIGNATURE.every((byte, i) => bytes[i] === byte)) throw new Error("not a PNG");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

export function readJson(relative) {
  return JSON.parse(readFileSync(path.join(REPO_DIR, relative), "utf8"));
}

/** Whether process `pid` has ended (a zombie that nobody reaped counts as ended). */
export function processGone(pid) {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].startsWith("Z");
  } catch {
    return true;
  }
}

/** Resolves once `condition()` holds; rejects after `timeoutMs`. For what sends no event. */
export async function until(condition, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
