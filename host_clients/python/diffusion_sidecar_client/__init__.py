"""Python host client for diffusion-sidecar: spawn it, load models, generate images."""

from diffusion_sidecar_protocol import PROTOCOL_VERSION, __version__
from diffusion_sidecar_protocol.types import (
    DiffusionPreview,
    DiffusionProgress,
    DiffusionStats,
    LoadModelProgress,
    UpscaleProgress,
    UpscaleStats,
)

from .client import DiffusionCall, ImageInput, Preview, ProtocolMismatch, Sidecar, SidecarError, SidecarExited
from .discovery import SidecarNotFound, default_command
from .sync import SyncSidecar

__all__ = [
    "PROTOCOL_VERSION",
    "DiffusionCall",
    "DiffusionPreview",
    "DiffusionProgress",
    "DiffusionStats",
    "ImageInput",
    "LoadModelProgress",
    "Preview",
    "ProtocolMismatch",
    "Sidecar",
    "SidecarError",
    "SidecarExited",
    "SidecarNotFound",
    "SyncSidecar",
    "UpscaleProgress",
    "UpscaleStats",
    "__version__",
    "default_command",
]
