#!/usr/bin/env node
// A stand-in sidecar for the start-up tests: `initialize` reports the protocol version in
// FAKE_PROTOCOL_VERSION (omitted when unset) and `serverVersion` the name given as argv[2];
// everything else is answered with null; `shutdown` ends it. Its pid goes to FAKE_PID_FILE when set.
import { writeFileSync } from "node:fs";
import { createInterface } from "node:readline";

if (process.env.FAKE_PID_FILE) writeFileSync(process.env.FAKE_PID_FILE, String(process.pid));

for await (const line of createInterface({ input: process.stdin })) {
  const { id, method } = JSON.parse(line);
  let result = null;
  if (method === "initialize") {
    result = { serverName: "diffusion-sidecar", serverVersion: process.argv[2], protocolVersion: process.env.FAKE_PROTOCOL_VERSION };
  }
  process.stdout.write(`${JSON.stringify({ jsonrpc: "2.0", id, result })}\n`);
  if (method === "shutdown") break;
}
