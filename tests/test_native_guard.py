"""The native library dereferences a NULL context without a check: a call after a failed load would
kill the process. A worker whose load failed answers every request instead, and stays alive.

Driven on the worker's own pipe (the front stops a worker whose load failed, so only this shows what
the worker itself does after one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sidecar.worker import messages

SMALL = {
    "prompt": "a lighthouse", "negative_prompt": "", "width": 64, "height": 64, "steps": 1, "cfg_scale": 7.0,
    "guidance": 3.5, "sampling_method": None, "scheduler": None, "seeds": [1], "vae_tiling": False,
    "cache_preset": None, "model_name": "m",
}  # fmt: skip


class _Worker:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sidecar", "worker", "--log-level", "error"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def ask(self, message: messages.ToWorker) -> messages.FromWorker:
        """Send a request; the message that ends it (events on the way skipped)."""
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(messages.frame(message))
        self.process.stdin.flush()
        while True:
            (size,) = messages.HEADER.unpack(self.process.stdout.read(messages.HEADER.size))
            reply = messages.from_worker_decoder.decode(self.process.stdout.read(size))
            if isinstance(reply, messages.FINAL):
                return reply

    def close(self) -> int:
        assert self.process.stdin
        self.process.stdin.close()
        return self.process.wait(timeout=30)


def test_a_failed_load_leaves_a_worker_that_answers_every_request(synthetic_model: str) -> None:
    worker = _Worker()
    try:
        # A VAE alone is no model: the library logs why and returns a NULL context.
        vae = str(Path(synthetic_model) / "vae" / "diffusion_pytorch_model.safetensors")
        failed = worker.ask(messages.Load(model_path=vae))
        assert isinstance(failed, messages.Failed)
        for request in (messages.Generate(**SMALL), messages.Upscale(rgb=b"\0" * 12, width=2, height=2, repeats=1)):
            answer = worker.ask(request)
            assert isinstance(answer, messages.Failed) and "no model" in answer.reason
        assert worker.process.poll() is None
        # The same worker still loads a good model and generates with it.
        assert isinstance(worker.ask(messages.Load(model_path=synthetic_model, n_threads=2)), messages.Loaded)
        assert isinstance(worker.ask(messages.Generate(**SMALL)), messages.Generated)
    finally:
        assert worker.close() == 0


def test_a_model_without_a_context_refuses_native_calls_instead_of_crashing() -> None:
    """What a context freed after a refused load (a DiT without a text encoder) looks like inside."""
    code = (
        "from sidecar.worker import native\n"
        "model = native.NativeModel.__new__(native.NativeModel)\n"
        "model._ctx = None\n"
        "try:\n"
        "    model.resolve_sampling(None, None)\n"
        "except native.NativeError as error:\n"
        "    print('refused:', error)\n"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.startswith("refused: this worker has no loaded model")
