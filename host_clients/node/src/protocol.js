/**
 * The protocol version this client speaks, `major.minor`: a sidecar of the same major version is
 * accepted (a minor bump only adds). The same literal as the Python package's PROTOCOL_VERSION
 * (diffusion_sidecar_protocol); tests check they agree, and that package.json's version is the
 * sidecar's.
 */
export const PROTOCOL_VERSION = "1.1";

/** Whether a sidecar reporting `version` speaks this client's major version of the protocol. */
export function compatible(version) {
  return typeof version === "string" && version.split(".")[0] === PROTOCOL_VERSION.split(".")[0];
}
