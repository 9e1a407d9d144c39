"""`convert` in a worker: stable-diffusion.cpp's converter, sd-cli's `-M convert`, which reads every
tensor, converts what it can to the asked type, and writes one GGUF (or safetensors) file.

It holds the whole converted model in memory before writing (the output's size, plus one tensor
being read), and has no cancel: the front ends the worker to stop it. The file it writes is the
front's temporary name; if the front goes away mid-write, the pipe reader removes it.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import stable_diffusion_cpp.stable_diffusion_cpp as sd

from . import messages
from .native import hooks, weight_type

# convert.cpp logs this between reading the last tensor and writing the file.
READ_DONE = "load tensors done"
# sd-cli's default: names are written as the source has them, and the loader maps them as it maps the source's.
CONVERT_NAMES = False


def convert(
    job: messages.Convert, log_level: str, send: Callable[[msgspec.Struct], None], leftovers: set[str]
) -> None:
    type_id = weight_type(job.weight_type)
    log, progress = hooks(log_level)
    read = messages.ConvertTick("read", 0, 0)

    def on_read(done: int, total: int) -> None:
        read.done, read.total = done, total
        send(read)

    def on_log(message: str) -> None:
        if message.startswith(READ_DONE):
            send(messages.ConvertTick("write", read.total, read.total))

    progress.listener, log.listener = on_read, on_log
    leftovers.add(job.output_path)
    try:
        # Rules as a string always: NULL rules end the process inside the library.
        converted = sd.convert(
            job.input_path.encode(), job.vae_path.encode(), job.output_path.encode(), type_id,
            job.tensor_type_rules.encode(), CONVERT_NAMES,
        )  # fmt: skip
    finally:
        progress.listener = log.listener = None
        leftovers.discard(job.output_path)
    if not converted:
        raise log.failure("the native library could not convert this model")
    send(messages.Converted())

