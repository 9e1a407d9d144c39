"""diffusion-sidecar: local image generation behind newline-delimited JSON-RPC on stdio."""

from diffusion_sidecar_protocol import __version__

__all__ = ["__version__"]
