"""Request inputs checked and resolved before any native work: images (one module decodes and checks
every input image), img2img, hires, LoRA, reference images, post-processing, file paths, what a
model file's header says, ESRGAN files. Imports `rpc`, `worker` and `runtime` only."""
