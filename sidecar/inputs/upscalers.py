"""ESRGAN files: told apart from diffusion models by their tensor names, before any worker starts.

stable-diffusion.cpp reads RealESRGAN/BasicSR RRDBNet files (`conv_first.weight`, `body.N...`) and
the original ESRGAN layout (`model.0.weight`, ...). The names are read from a safetensors header,
or from the pickle of a PyTorch zip checkpoint (.pth/.pt/.ckpt), where they appear as plain
strings. Other formats (GGUF) are taken for diffusion models. Blocking file reads: call off the
event loop.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from ..worker.native_files import open_regular

ESRGAN_MARKERS = (b"conv_first.weight", b"model.0.weight")
DIFFUSION_MARKER = b"diffusion_model"
MAX_HEADER_BYTES = 100 * 1024 * 1024


def is_esrgan_file(path: str) -> bool:
    """Whether the file at `path` holds an ESRGAN upscaler (False for anything it cannot read)."""
    try:
        names = _tensor_name_bytes(Path(path))
    except (OSError, ValueError, RecursionError, zipfile.BadZipFile):
        return False
    return any(marker in names for marker in ESRGAN_MARKERS) and DIFFUSION_MARKER not in names


def _tensor_name_bytes(path: Path) -> bytes:
    with open_regular(str(path)) as file:
        if path.suffix.lower() == ".safetensors":
            size = int.from_bytes(file.read(8), "little")
            if size > MAX_HEADER_BYTES:
                return b""
            header = json.loads(file.read(size))
            return "\n".join(header if isinstance(header, dict) else []).encode()
        if zipfile.is_zipfile(file):
            with zipfile.ZipFile(file) as archive:
                pickles = [name for name in archive.namelist() if name.endswith("data.pkl")]
                if pickles and archive.getinfo(pickles[0]).file_size <= MAX_HEADER_BYTES:
                    return archive.read(pickles[0])
    return b""
