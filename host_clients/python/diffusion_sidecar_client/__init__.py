"""Python host client for diffusion-sidecar: spawn it, load models, generate images."""

from diffusion_sidecar_protocol.types import DiffusionProgress, DiffusionStats, LoadModelProgress

from .client import DiffusionCall, ImageInput, Sidecar, SidecarError, SidecarExited, default_command
from .sync import SyncSidecar

__all__ = [
    "DiffusionCall",
    "DiffusionProgress",
    "DiffusionStats",
    "ImageInput",
    "LoadModelProgress",
    "Sidecar",
    "SidecarError",
    "SidecarExited",
    "SyncSidecar",
    "default_command",
]
