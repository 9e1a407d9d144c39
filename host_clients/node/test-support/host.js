// A host program for the lifecycle tests: starts a sidecar, prints its pid, and waits. A line on
// its stdin makes it leave through process.exit() with a call still in flight; or it is killed.
import { SIDECAR } from "./harness.js";
import { startSidecar } from "../src/index.js";

const sidecar = await startSidecar({ ...SIDECAR, stderr: "ignore" });
await sidecar.initialize();
process.stdout.write(`${JSON.stringify({ pid: sidecar.pid })}\n`);
process.stdin.once("data", () => {
  sidecar.initialize();
  process.exit(0);
});
