"""Python host client for diffusion-sidecar: spawn it, load models, generate images."""

from diffusion_sidecar_protocol.types import (
    DiffusionProgress,
    DiffusionStats,
    LoadModelProgress,
    UpscaleProgress,
    UpscaleStats,
)

from .client import DiffusionCall, Sidecar, SidecarError, SidecarExited, default_command
from .sync import SyncSidecar

__all__ = [
    "DiffusionCall",
    "DiffusionProgress",
    "DiffusionStats",
    "LoadModelProgress",
    "Sidecar",
    "SidecarError",
    "SidecarExited",
    "SyncSidecar",
    "UpscaleProgress",
    "UpscaleStats",
    "default_command",
]
