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

/** The sidecar speaks another major version of the protocol than this client: `startSidecar` refuses it. */
export class ProtocolMismatchError extends SidecarError {
  constructor(protocolVersion, serverVersion, clientProtocolVersion) {
    super(
      -32098,
      `The sidecar (diffusion-sidecar ${serverVersion ?? "?"}) speaks protocol ${protocolVersion ?? "?"}, ` +
        `this client speaks ${clientProtocolVersion}: their major versions must match. ` +
        "Install the client and the sidecar of one release.",
      { code: "PROTOCOL_MISMATCH", protocolVersion, serverVersion, clientProtocolVersion },
    );
    this.name = "ProtocolMismatchError";
    this.protocolVersion = protocolVersion;
    this.serverVersion = serverVersion;
  }
}
