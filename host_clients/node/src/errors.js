/** An error response: the JSON-RPC `code`, the stable `data.code` string, and all of `data`. */
export class SidecarError extends Error {
  constructor(code, message, data = {}) {
    super(message);
    this.name = "SidecarError";
    this.code = code;
    this.data = data;
    this.dataCode = data.code;
  }
}

/** The sidecar process ended while a call was waiting for it, or before the call was made. */
export class SidecarExitedError extends SidecarError {
  constructor(exitCode, signal) {
    const how = signal ? `was killed by ${signal}` : `exited with status ${exitCode}`;
    super(-32099, `The sidecar ${how} before answering`, { code: "SIDECAR_EXITED", exitCode, signal });
    this.name = "SidecarExitedError";
    this.exitCode = exitCode;
    this.signal = signal;
  }
}
