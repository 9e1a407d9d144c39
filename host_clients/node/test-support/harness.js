// What the tests share: how to start the sidecar under test, the synthetic model, PNG checks.
// (Kept out of test/, where `node --test test/` would run every file as a test.)
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
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

const written = new Map();
/**
 * A synthetic-weights model of `kind` (its path), written once per machine into the cache place the
 * Python tests share (`synth-model` without PATH) and reused: the Wan kind alone is 3.2 GB.
 */
function synthetic(kind) {
  if (!written.has(kind)) {
    const args = [...SIDECAR.args, "synth-model", "--kind", kind];
    written.set(kind, execFileSync(SIDECAR.command, args, { encoding: "utf8" }).trim());
  }
  return written.get(kind);
}

/** The synthetic SD1 model's folder. */
export const syntheticModel = () => synthetic("sd1");
/** The synthetic Wan folder: diffusion.safetensors, vae.safetensors. */
export const syntheticWan = () => synthetic("wan");

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
