"""A stand-in sidecar for the client's start-up tests: `initialize` reports the protocol version in
FAKE_PROTOCOL_VERSION (omitted when unset) and `serverVersion` the name given as argv[1]; its pid
goes to FAKE_PID_FILE when set. Everything else is answered with null; `shutdown` ends it."""

import json
import os
import sys

if pid_file := os.environ.get("FAKE_PID_FILE"):
    with open(pid_file, "w") as file:
        file.write(str(os.getpid()))
for line in sys.stdin:
    request = json.loads(line)
    result = None
    if request["method"] == "initialize":
        result = {"serverName": "diffusion-sidecar", "serverVersion": sys.argv[1]}
        if "FAKE_PROTOCOL_VERSION" in os.environ:
            result["protocolVersion"] = os.environ["FAKE_PROTOCOL_VERSION"]
    print(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}), flush=True)
    if request["method"] == "shutdown":
        break
