"""diffusion-sidecar: local image generation behind newline-delimited JSON-RPC on stdio."""

__version__ = "0.1.0"
