"""How this sidecar downloads: from its flags (`Limits`) and the environment, read once at start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from diffusion_sidecar_protocol.types import Limits

from . import hf

MAX_REDIRECTS = 10
STALL_RETRIES = 3
"""Attempts after a stall or a cut connection that brought no new byte; one that did resets the count."""


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    """$DIFFUSION_SIDECAR_CACHE, else $XDG_CACHE_HOME/diffusion-sidecar, else ~/.cache/diffusion-sidecar:
    where the binary unpacks itself and the synthetic models live too (build/launcher.c)."""
    if chosen := environ.get("DIFFUSION_SIDECAR_CACHE"):
        return Path(chosen)
    return Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "diffusion-sidecar"


@dataclass(frozen=True)
class Settings:
    cache_dir: Path
    offline: bool = False
    allow_http: bool = False
    max_bytes: int = Limits().maxDownloadBytes
    stall_seconds: float = Limits().downloadStallSeconds
    hf_endpoint: str = hf.DEFAULT_ENDPOINT
    hf_token: str | None = None
    hf_hub_cache: Path | None = None

    @classmethod
    def from_limits(cls, limits: Limits, environ: Mapping[str, str] = os.environ) -> Settings:
        return cls(
            cache_dir=Path(limits.cacheDir) if limits.cacheDir else default_cache_dir(environ),
            offline=limits.offline,
            allow_http=limits.allowHttp,
            max_bytes=limits.maxDownloadBytes,
            stall_seconds=limits.downloadStallSeconds,
            hf_endpoint=hf.endpoint(environ),
            hf_token=hf.token(environ),
            hf_hub_cache=hf.hub_cache(environ),
        )

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"
