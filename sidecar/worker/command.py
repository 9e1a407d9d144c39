"""How to start a worker process (light: the front asks before its heavy imports)."""

from __future__ import annotations

import sys


def worker_command(log_level: str) -> list[str]:
    """How to start a worker: the same program as this one, in its worker role."""
    if getattr(sys, "frozen", False):  # a PyInstaller binary is its own interpreter
        return [sys.executable, "worker", "--log-level", log_level]
    return [sys.executable, "-m", "sidecar", "worker", "--log-level", log_level]


def probe_command() -> list[str]:
    """The backend probe: the same program, reporting on the native library once."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "probe"]
    return [sys.executable, "-m", "sidecar", "probe"]
