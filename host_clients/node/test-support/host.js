// A host program for the lifecycle tests: starts a sidecar, prints its pid, then either waits to be
// killed ("wait") or leaves through process.exit() while a call is still in flight ("exit").
import { SIDECAR } from "./harness.js";
import { startSidecar } from "../src/index.js";

const sidecar = await startSidecar({ ...SIDECAR, stderr: "ignore" });
const inFlight = sidecar.initialize();
process.stdout.write(`${JSON.stringify({ pid: sidecar.pid })}\n`);
if (process.argv[2] === "exit") process.exit(0);
await inFlight;
