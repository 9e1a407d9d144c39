// The seed's example with the Node client: load a model, follow the progress, save the image, print the stats.
//
//   npm install diffusion-sidecar-client
//   DIFFUSION_SIDECAR=/path/to/diffusion-sidecar node seed-example.js /models/tiny-sd
//
// tests/test_packaging.py runs it from an empty folder holding only the `npm pack` tarball, against
// the frozen binary.
import fs from "node:fs";
import { parseArgs } from "node:util";

import { startSidecar } from "diffusion-sidecar-client";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { size: { type: "string", default: "512" }, steps: { type: "string", default: "20" }, out: { type: "string", default: "output.png" } },
});

const sidecar = await startSidecar(); // or startSidecar({ command: "/path/to/diffusion-sidecar" })
const modelId = await sidecar.loadModel({ modelPath: positionals[0] });

const { progressStream, outputs: images, stats } = sidecar.diffusion({
  modelId,
  prompt: "a cat sitting on a windowsill",
  width: Number(values.size),
  height: Number(values.size),
  steps: Number(values.steps),
  cfg_scale: 7,
});

for await (const { step, totalSteps } of progressStream) {
  console.log(`${step}/${totalSteps}`);
}

const imageBuffers = await images;
fs.writeFileSync(values.out, imageBuffers[0]);
console.log(`stats ${JSON.stringify(await stats)}`);
await sidecar.close();
