"""Put on PYTHONPATH by bench/progress.py only: stamps each native progress callback in the
sidecar's worker processes, so that the benchmark can time a tick from the native library to the
host. Python imports this module at start-up in every process it starts with that PYTHONPATH.

When the worker imports `sidecar.worker.native`, its progress callback is wrapped to append
"step steps monotonic_ns" to $BENCH_TICK_STAMPS (CLOCK_MONOTONIC is one clock for every process
on the machine). The sidecar's own code is not changed and nothing else is touched.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
import time

_TARGET = "sidecar.worker.native"


def _stamped(on_progress):
    stamps = open(os.environ["BENCH_TICK_STAMPS"], "a", buffering=1)

    def wrapper(self, step, steps, seconds, data):
        stamps.write(f"{step} {steps} {time.monotonic_ns()}\n")
        return on_progress(self, step, steps, seconds, data)

    return wrapper


class _WrapOnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != _TARGET:
            return None
        sys.meta_path.remove(self)  # find the real module the usual way, once
        spec = importlib.util.find_spec(name)
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            module._Progress._on_progress = _stamped(module._Progress._on_progress)

        spec.loader.exec_module = exec_module
        return spec


if "BENCH_TICK_STAMPS" in os.environ:
    sys.meta_path.insert(0, _WrapOnImport())
