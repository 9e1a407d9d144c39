"""Python host client for diffusion-sidecar: spawn it, load models, generate images."""

from diffusion_sidecar_protocol import PROTOCOL_VERSION, __version__
from diffusion_sidecar_protocol.types import (
    DiffusionPreview,
    DiffusionProgress,
    DiffusionStats,
    DownloadProgress,
    FileSource,
    LoadModelProgress,
    UpscaleProgress,
    UpscaleStats,
    VideoPreview,
    VideoProgress,
    VideoResult,
    VideoStats,
)

from .client import (
    DiffusionCall,
    FileInput,
    ImageInput,
    LoadCall,
    Preview,
    ProtocolMismatch,
    Sidecar,
    SidecarError,
    SidecarExited,
    VideoClip,
)
from .discovery import SidecarNotFound, default_command
from .sync import SyncSidecar

__all__ = [
    "PROTOCOL_VERSION",
    "DiffusionCall",
    "DiffusionPreview",
    "DiffusionProgress",
    "DiffusionStats",
    "DownloadProgress",
    "FileInput",
    "FileSource",
    "ImageInput",
    "LoadCall",
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
    "VideoClip",
    "VideoPreview",
    "VideoProgress",
    "VideoResult",
    "VideoStats",
    "__version__",
    "default_command",
]
