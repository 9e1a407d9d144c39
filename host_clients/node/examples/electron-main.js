// The Electron main-process pattern, runnable with plain Node:
//
//   node examples/electron-main.js --model /models/tiny-sd --out out/ [--size 512] [--steps 20]
//
// Spawn the sidecar once when the app starts, load the model once, serve many requests from the
// renderer (concurrent ones queue in the sidecar), and close the sidecar before the app quits.
// The three places Electron calls into are marked ELECTRON.
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";

import { startSidecar } from "diffusion-sidecar-client";

class ImageService {
  #sidecar;
  #modelId;
  #size;
  #steps;

  constructor(sidecar, modelId, { size, steps }) {
    this.#sidecar = sidecar;
    this.#modelId = modelId;
    this.#size = size;
    this.#steps = steps;
  }

  static async start({ command, args, model, size, steps }) {
    const sidecar = await startSidecar({ command, args });
    // A sidecar that dies (killed, out of memory) fails every pending call at once; an app would
    // tell the user and start a new one here.
    sidecar.exited.then(({ code, signal }) => console.log(`sidecar ended (code ${code}, signal ${signal})`));
    const modelId = await sidecar.loadModel({ modelPath: model });
    return new ImageService(sidecar, modelId, { size, steps });
  }

  /** One renderer request: progress goes back to the window as it comes, then the PNG bytes. */
  async generate(prompt, sendProgress) {
    const { progressStream, outputs, stats } = this.#sidecar.diffusion({
      modelId: this.#modelId,
      prompt,
      width: this.#size,
      height: this.#size,
      steps: this.#steps,
    });
    for await (const tick of progressStream) sendProgress(tick);
    const [png] = await outputs;
    return { png, seed: (await stats).seed };
  }

  stop() {
    return this.#sidecar.close();
  }
}

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    out: { type: "string", default: "out" },
    size: { type: "string", default: "512" },
    steps: { type: "string", default: "20" },
    sidecar: { type: "string", default: "diffusion-sidecar" },
  },
});
if (!values.model) throw new Error("--model PATH is required");
const [command, ...args] = values.sidecar.split(" ");

// ELECTRON: app.whenReady().then(...)
const service = await ImageService.start({
  command,
  args,
  model: values.model,
  size: Number(values.size),
  steps: Number(values.steps),
});

// ELECTRON: ipcMain.handle("generate", (event, prompt) =>
//   service.generate(prompt, (tick) => event.sender.send("generate:progress", tick)));
const prompts = ["a red fox in the snow", "a lighthouse at dusk", "a bowl of ramen"];
mkdirSync(values.out, { recursive: true });
const results = await Promise.all(
  prompts.map((prompt, index) =>
    service.generate(prompt, ({ step, totalSteps }) => console.log(`[${index}] ${step}/${totalSteps}`)),
  ),
);
results.forEach(({ png, seed }, index) => {
  const file = path.join(values.out, `electron-${index}.png`);
  writeFileSync(file, png);
  console.log(`${file} (seed ${seed})`);
});

// ELECTRON: app.on("will-quit", (event) => { event.preventDefault(); service.stop().then(() => app.exit()); });
console.log(`sidecar exit status ${await service.stop()}`);
