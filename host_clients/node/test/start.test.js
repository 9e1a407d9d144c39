// How startSidecar finds the sidecar, and the protocol version check it makes (against a fake).
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";

import {
  PROTOCOL_VERSION,
  ProtocolMismatchError,
  SidecarError,
  SidecarNotFoundError,
  findSidecar,
  startSidecar,
} from "../src/index.js";
import { PACKAGE_DIR, processGone, readJson } from "../test-support/harness.js";

const LIMIT = { timeout: 30_000 };
const FAKE = path.join(PACKAGE_DIR, "test-support", "fake-sidecar.js");
const scratch = mkdtempSync(path.join(os.tmpdir(), "sidecar-start-"));

/** An executable `folder/diffusion-sidecar` running the fake, which reports `name` as its version. */
function fakeExecutable(folder, name) {
  const file = path.join(scratch, folder, "diffusion-sidecar");
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `#!/bin/sh\nexec "${process.execPath}" "${FAKE}" ${name}\n`);
  chmodSync(file, 0o755);
  return file;
}

test("the protocol version is the one the Python package declares (schemas/openrpc.json)", () => {
  assert.equal(PROTOCOL_VERSION, readJson("schemas/openrpc.json").info.version);
});

test("DIFFUSION_SIDECAR comes before PATH", () => {
  const named = fakeExecutable("named", "named");
  const onPath = fakeExecutable("on-path", "on-path");
  assert.equal(findSidecar({ DIFFUSION_SIDECAR: named, PATH: path.dirname(onPath) }), named);
  assert.equal(findSidecar({ PATH: `/no/such${path.delimiter}${path.dirname(onPath)}` }), onPath);
});

test("not found: the error names everything it tried", () => {
  const empty = path.join(scratch, "empty");
  mkdirSync(empty, { recursive: true });
  assert.throws(
    () => findSidecar({ PATH: empty }),
    (error) =>
      error instanceof SidecarNotFoundError &&
      error.code === "SIDECAR_NOT_FOUND" &&
      error.tried.length === 2 &&
      error.message.includes("DIFFUSION_SIDECAR (not set)") &&
      error.message.includes(`diffusion-sidecar on PATH (${empty})`),
  );
});

test("a DIFFUSION_SIDECAR naming nothing runnable is an error, not a fallback to PATH", () => {
  const onPath = fakeExecutable("on-path", "on-path");
  const notExecutable = path.join(scratch, "sidecar.txt");
  writeFileSync(notExecutable, "");
  for (const value of [path.join(scratch, "missing"), notExecutable]) {
    assert.throws(() => findSidecar({ DIFFUSION_SIDECAR: value, PATH: path.dirname(onPath) }), {
      name: "SidecarNotFoundError",
      tried: [`DIFFUSION_SIDECAR=${value} (not an executable file)`],
    });
  }
});

test("startSidecar looks in `env` over this process's environment", LIMIT, async () => {
  const env = { DIFFUSION_SIDECAR: fakeExecutable("named", "named"), FAKE_PROTOCOL_VERSION: PROTOCOL_VERSION };
  const sidecar = await startSidecar({ env });
  assert.deepEqual([sidecar.serverVersion, sidecar.protocolVersion], ["named", PROTOCOL_VERSION]);
  assert.equal(await sidecar.close(), 0);
});

for (const version of ["1.0", "1.9"]) {
  test(`protocol ${version}: the same major version is accepted`, LIMIT, async () => {
    const sidecar = await startSidecar({ command: FAKE, args: ["fake"], env: { FAKE_PROTOCOL_VERSION: version } });
    assert.equal(sidecar.protocolVersion, version);
    assert.equal(await sidecar.close(), 0);
  });
}

for (const version of ["2.0", "0.9", "", undefined]) {
  test(`protocol ${JSON.stringify(version)}: another major version is refused and the sidecar ended`, LIMIT, async () => {
    const pidFile = path.join(scratch, `pid-${version}`);
    const env = { FAKE_PID_FILE: pidFile, ...(version === undefined ? {} : { FAKE_PROTOCOL_VERSION: version }) };
    await assert.rejects(startSidecar({ command: FAKE, args: ["9.0.0"], env }), (error) => {
      assert.ok(error instanceof ProtocolMismatchError && error instanceof SidecarError);
      assert.deepEqual([error.dataCode, error.protocolVersion, error.serverVersion], ["PROTOCOL_MISMATCH", version, "9.0.0"]);
      assert.match(error.message, new RegExp(`speaks ${PROTOCOL_VERSION.replace(".", "\\.")}: `));
      return true;
    });
    assert.ok(processGone(Number(readFileSync(pidFile, "utf8"))), "the refused sidecar still runs");
  });
}
