/**
 * diffusion-sidecar-client: spawn diffusion-sidecar and use QVAC's diffusion() API against it.
 *
 *   const sidecar = await startSidecar();
 *   const modelId = await sidecar.loadModel({ modelPath: "/models/tiny-sd" });
 *   const { progressStream, outputs, stats } = sidecar.diffusion({ modelId, prompt: "a cat" });
 */
export { startSidecar, Sidecar } from "./sidecar.js";
export { DEFAULT_COMMAND, ENV_VAR, SidecarNotFoundError, findSidecar } from "./discovery.js";
export { PROTOCOL_VERSION } from "./protocol.js";
export { ProtocolMismatchError, SidecarError, SidecarExitedError } from "./errors.js";
