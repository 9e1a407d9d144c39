"""Python host client for diffusion-sidecar: spawn it, load models, generate images."""

from diffusion_sidecar_protocol.types import DiffusionPreview, DiffusionProgress, DiffusionStats, LoadModelProgress

from .client import DiffusionCall, Preview, Sidecar, SidecarError, SidecarExited, default_command
from .sync import SyncSidecar

__all__ = [
    "DiffusionCall",
    "DiffusionPreview",
    "DiffusionProgress",
    "DiffusionStats",
    "LoadModelProgress",
    "Preview",
    "Sidecar",
    "SidecarError",
    "SidecarExited",
    "SyncSidecar",
    "default_command",
]
