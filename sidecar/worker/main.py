"""A model worker process: one native model, one request at a time, over its stdin/stdout pipe.

The front process starts it as `diffusion-sidecar worker`. A thread reads requests; when the pipe
from the front closes (the front exited, was killed, or unloads the model), the process ends at
once, even in the middle of a native call, so a dead front never leaves a worker behind.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from typing import BinaryIO

import msgspec

from ..rpc.errors import SidecarError
from ..rpc.stdio_guard import claim_stdout, write_all
from . import messages, native_files


class _Pipe:
    """This worker's end of the private pipe."""

    def __init__(self, inbound: BinaryIO, outbound: BinaryIO) -> None:
        self._inbound = inbound
        self._outbound = outbound
        self._lock = threading.Lock()
        self.requests: queue.Queue[messages.ToWorker] = queue.Queue()
        self.leftovers: set[str] = set()
        """Files being written that are of no use half done: removed if the front goes away."""

    def send(self, message: msgspec.Struct) -> None:
        data = messages.frame(message)
        with self._lock:
            write_all(self._outbound, data)

    def read_requests(self) -> None:
        """Runs in a thread. End of the pipe ends the process: nothing is left to answer to."""
        try:
            while header := self._read_exactly(messages.HEADER.size):
                (size,) = messages.HEADER.unpack(header)
                payload = self._read_exactly(size)
                if payload is None:
                    break
                self.requests.put(messages.to_worker_decoder.decode(payload))
        finally:
            for path in list(self.leftovers):
                with contextlib.suppress(OSError):
                    os.unlink(path)
            os._exit(0)

    def _read_exactly(self, size: int) -> bytes | None:
        data = self._inbound.read(size)
        return data if data is not None and len(data) == size else None


def probe() -> None:
    """`diffusion-sidecar probe`: the backend's facts as one frame on stdout, then the end."""
    out = claim_stdout()
    from . import native  # after stdout is guarded: loading the library may print

    write_all(out, messages.frame(native.probe()))


def run(log_level: str) -> None:
    inbound = os.fdopen(os.dup(0), "rb")
    pipe = _Pipe(inbound, claim_stdout())
    threading.Thread(target=pipe.read_requests, name="pipe-reader", daemon=True).start()

    # Imported only now, after stdout is guarded: loading the library may print.
    from . import native
    from .convert import convert
    from .generate import generate
    from .upscale import upscale
    from .video import generate_video

    model: native.NativeModel | native.NativeUpscaler | None = None
    files: native_files.Generations | None = None
    while True:
        request = pipe.requests.get()
        if isinstance(request, messages.Load):
            try:
                native_files.check_all(native_files.opened_by_load(request), request.models_root)
                model = _load(request, log_level, pipe)
                files = native_files.Generations(request)
            except native.NativeError as error:
                pipe.send(messages.Failed(str(error)))
            except SidecarError as error:
                pipe.send(messages.Failed(error.message, error.data))
        elif isinstance(request, messages.Convert):  # needs no model: a worker of its own does it
            try:
                native_files.check_all(native_files.opened_by_convert(request), request.models_root)
                convert(request, log_level, pipe.send, pipe.leftovers)
            except native.NativeError as error:
                pipe.send(messages.Failed(str(error)))
            except SidecarError as error:
                pipe.send(messages.Failed(error.message, error.data))
        elif model is None or files is None:
            pipe.send(messages.Failed("no model is loaded in this worker"))
        else:
            try:
                if isinstance(request, messages.Upscale) and isinstance(model, native.NativeUpscaler):
                    upscale(model, request, pipe.send)
                elif isinstance(request, messages.Generate) and isinstance(model, native.NativeModel):
                    generate(model, request, pipe.send, files)
                elif isinstance(request, messages.Video) and isinstance(model, native.NativeModel):
                    generate_video(model, request, pipe.send)
                else:
                    pipe.send(messages.Failed(f"this model cannot take a {type(request).__name__} request"))
            except native.NativeError as error:
                pipe.send(messages.Failed(str(error)))
            except SidecarError as error:
                pipe.send(messages.Failed(error.message, error.data))


def _load(request: messages.Load, log_level: str, pipe: _Pipe) -> object:
    """A diffusion model (with its upscaler, if one is attached), or an ESRGAN file alone."""
    from . import native

    if not (request.model_path or request.diffusion_model_path):
        upscaler = native.load_upscaler(request, log_level)
        pipe.send(messages.Loaded(f"ESRGAN upscaler (x{upscaler.factor})", 1, upscaler.factor))
        return upscaler
    model = native.NativeModel(request, log_level, lambda done, total: pipe.send(messages.LoadProgress(done, total)))
    factor = model.upscaler.factor if model.upscaler else 0
    pipe.send(messages.Loaded(model.family, model.size_multiple, factor, model.device, model.weight_types, model.video_model))
    return model
