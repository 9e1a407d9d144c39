"""Where a file's download stands, and how one fails: shared by the transfer and its listeners
without importing the HTTP client (which the sidecar imports only once a source is fetched)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FINAL_PHASES = ("done", "cached")


@dataclass(frozen=True)
class FileState:
    """Where a file's download stands, as `download/progress` reports it."""

    phase: str = "checking"
    done: int = 0
    total: int | None = None
    resumed_from: int = 0
    speed: float = 0.0


class Failure(Exception):
    """How a download failed, without the request's field: every caller that shares it adds its own."""

    def __init__(self, code: str, message: str, **data: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data
