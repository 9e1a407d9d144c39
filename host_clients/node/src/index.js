/**
 * diffusion-sidecar-client: spawn diffusion-sidecar and use QVAC's diffusion() API against it.
 *
 *   const sidecar = await startSidecar();
 *   const modelId = await sidecar.loadModel({ modelPath: "/models/tiny-sd" });
 *   const { progressStream, outputs, stats } = sidecar.diffusion({ modelId, prompt: "a cat" });
 */
export { startSidecar, Sidecar, DEFAULT_COMMAND } from "./sidecar.js";
export { SidecarError, SidecarExitedError } from "./errors.js";
