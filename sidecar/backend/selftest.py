"""`diffusion-sidecar selftest`: run real native work here and say which CPU code ran it.

For bug reports ("which variant did the user's CPU get?") and for checking that a machine can run
the library at all: it upscales a small picture with an ESRGAN model (a synthetic one unless one is
named), through the same native library and CPU variant selection that the model workers use. One
JSON object on stdout; native log lines go to stderr.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from ..rpc.stdio_guard import claim_stdout

SIDE = 16  # pixels: enough to run every kernel of the network, small enough for an emulated CPU


def _gradient(side: int) -> bytes:
    return bytes(value for y in range(side) for x in range(side) for value in (x * 16 % 256, y * 16 % 256, 128))


def run(upscaler_path: str | None, threads: int) -> None:
    out = claim_stdout()  # before the native library loads: it may print to fd 1
    from ..worker import cpu_backend, messages, native

    with tempfile.TemporaryDirectory() as folder:
        if upscaler_path is None:
            from ..synth.esrgan import write_synthetic_esrgan

            upscaler_path = str(write_synthetic_esrgan(Path(folder) / "esrgan-synthetic.safetensors"))
        started = time.perf_counter()
        upscaler = native.load_upscaler(messages.Load(upscaler_path=upscaler_path, n_threads=threads), "warn")
        try:
            rgb, width, height = upscaler.upscale(_gradient(SIDE), SIDE, SIDE, lambda _tile, _tiles: None)
        finally:
            upscaler.close()
    report = {
        "cpuVariant": cpu_backend.variant(),
        "cpuFeatures": cpu_backend.features(),
        "input": [SIDE, SIDE],
        "output": [width, height],
        "distinctValues": len(set(rgb)),
        "seconds": round(time.perf_counter() - started, 3),
    }
    out.write((json.dumps(report) + "\n").encode())
