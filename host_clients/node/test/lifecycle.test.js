// Spawning, closing, and the two ways a process can go away: the sidecar, or its host.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { createInterface } from "node:readline";
import { test } from "node:test";

import { SidecarExitedError, startSidecar } from "../src/index.js";
import {
  PACKAGE_DIR,
  SMALL,
  VENV_BIN,
  processGone,
  startTestSidecar,
  syntheticModel,
  until,
} from "../test-support/harness.js";

const LIMIT = { timeout: 60_000 }; // a hang fails the test instead of stalling the suite

test("startSidecar rejects when the command cannot be spawned", LIMIT, async () => {
  await assert.rejects(startSidecar({ command: "/no/such/diffusion-sidecar" }), { code: "ENOENT" });
});

test("with no command it runs `diffusion-sidecar` from PATH", LIMIT, async () => {
  const sidecar = await startSidecar({ env: { PATH: `${VENV_BIN}${path.delimiter}${process.env.PATH}` }, stderr: "ignore" });
  assert.equal((await sidecar.initialize()).serverName, "diffusion-sidecar");
  assert.equal(await sidecar.close(), 0);
});

test("when the sidecar dies, every pending call rejects at once, and later calls too", LIMIT, async () => {
  const sidecar = await startTestSidecar();
  const modelId = await sidecar.loadModel({ modelPath: syntheticModel() });
  const running = sidecar.diffusion({ modelId, ...SMALL, steps: 30 });
  const queued = sidecar.diffusion({ modelId, ...SMALL });
  await running.progressStream.next();

  process.kill(sidecar.pid, "SIGKILL");
  const killedAt = Date.now();
  for (const pending of [running.outputs, running.stats, queued.outputs]) {
    await assert.rejects(pending, (error) => error instanceof SidecarExitedError && error.signal === "SIGKILL");
  }
  assert.ok(Date.now() - killedAt < 2000, "the pending calls waited for something after the sidecar died");
  for await (const tick of running.progressStream) assert.equal(tick.requestId, running.requestId); // it ends
  assert.deepEqual(await sidecar.exited, { code: null, signal: "SIGKILL" });

  await assert.rejects(sidecar.initialize(), { dataCode: "SIDECAR_EXITED", code: -32099 });
  await assert.rejects(sidecar.diffusion({ modelId, ...SMALL }).outputs, SidecarExitedError);
  assert.equal(await sidecar.close(), null);
});

test("close() ends calls in flight with SHUTTING_DOWN and the sidecar exits 0", LIMIT, async () => {
  const sidecar = await startTestSidecar();
  const modelId = await sidecar.loadModel({ modelPath: syntheticModel() });
  const running = sidecar.diffusion({ modelId, ...SMALL, steps: 30 });
  await running.progressStream.next();
  assert.equal(await sidecar.close(), 0);
  await assert.rejects(running.outputs, { code: -32005, dataCode: "SHUTTING_DOWN" });
});

async function hostedSidecarPid(host) {
  const [line] = await once(createInterface({ input: host.stdout }), "line");
  return JSON.parse(line).pid;
}

for (const [how, leave] of [
  ["is killed", (host) => host.kill("SIGKILL")],
  ["calls process.exit() with a call in flight", (host) => host.stdin.write("exit\n")],
]) {
  test(`a host that ${how} leaves no sidecar running`, LIMIT, async () => {
    const host = spawn(process.execPath, [path.join(PACKAGE_DIR, "test-support", "host.js")], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    const pid = await hostedSidecarPid(host);
    assert.ok(!processGone(pid), "the sidecar runs while its host does");
    leave(host);
    await once(host, "close");
    await until(() => processGone(pid), 10_000, `sidecar ${pid} to exit after its host`);
  });
}
