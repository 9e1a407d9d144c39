"""The files the native library opens, and the rules each must pass before it does.

stable-diffusion.cpp opens more than the paths it is given (`ModelLoader::init_from_file`):
- a path that names a folder, in any slot, is read as a diffusers folder: four fixed files inside
  it, the UNet required, the others read when present (`init_from_diffusers_file`); this version
  reads no index files and follows no path written inside a model file;
- every generation opens its LoRAs again, and with LoRAs applied immediately (`immediately`, or
  `auto` on unquantized weights) also the previous generation's, to subtract them;
- the hires fix's `model` upscaler opens the ESRGAN file attached at load on every generation.

`opened_by_load` and `Generations.opened_by` list them; `tests/test_native_opens.py` holds the
lists to what a traced worker really opens. `check` holds each file to the rules of a path given
in a request. The front checks them before any native work, for errors that name the field; the
worker checks them again right before each native call that opens them, so that a file changed in
between (a symlink pointed elsewhere, a FIFO put in its place) is refused rather than read. What
is left between that last check and the native open: docs/security.md.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from ..rpc.errors import SidecarError
from . import messages

DIFFUSERS_UNET = "unet/diffusion_pytorch_model.safetensors"
DIFFUSERS_PARTS = (
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/model.safetensors",
    "text_encoder_2/model.safetensors",
)
MODEL_UPSCALER = "Model"
"""The hires fix's native name for the ESRGAN file attached at load."""

# The request field behind each path of a load.
LOAD_FIELDS = {
    "model_path": "modelPath",
    "diffusion_model_path": "modelPath",
    "vae_path": "modelConfig.vaePath",
    "clip_l_path": "modelConfig.clipLPath",
    "clip_g_path": "modelConfig.clipGPath",
    "t5xxl_path": "modelConfig.t5xxlPath",
    "llm_path": "modelConfig.llmPath",
    "taesd_path": "modelConfig.taesdPath",
    "upscaler_path": "modelConfig.upscalerPath",
    "control_net_path": "modelConfig.controlNetPath",
}

_NOT_REGULAR = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}
# Opening a file only by its path: no driver's open runs for a device (opening a watchdog arms it)
# and a FIFO does not block; /proc then says where the file really is. Linux only; elsewhere the
# checks stat the path and open it for reading, and trust the resolved path.
_O_PATH = getattr(os, "O_PATH", 0) if os.path.isdir("/proc/self/fd") else 0


@dataclass(frozen=True)
class NativeFile:
    """One file the native library will open, and the request field it comes from."""

    field: str
    path: str
    file: str = ""
    """How errors name the file when the field alone does not: a diffusers part's path inside the
    folder, or an earlier request's LoRA."""
    missing: str | None = "must name an existing file"
    """The rule a missing file breaks; None where the library goes on without it."""


def opened_for(field: str, path: str) -> list[NativeFile]:
    """What the native library opens when given `path`: a folder's diffusers files, or the file."""
    if not os.path.isdir(path):
        return [NativeFile(field, path)]
    unet = NativeFile(
        field,
        os.path.join(path, DIFFUSERS_UNET),
        DIFFUSERS_UNET,
        f"a model folder must be in the diffusers layout, with {DIFFUSERS_UNET}",
    )
    return [unet, *(NativeFile(field, os.path.join(path, part), part, missing=None) for part in DIFFUSERS_PARTS)]


def opened_by_load(load: messages.Load) -> list[NativeFile]:
    """Every file creating the native context (or the upscaler context) for `load` opens."""
    alone = not (load.model_path or load.diffusion_model_path)  # an ESRGAN file loaded as the model
    return [
        file
        for slot, field in LOAD_FIELDS.items()
        if (path := getattr(load, slot))
        for file in opened_for("modelPath" if alone else field, path)
    ]


def opened_by_convert(job: messages.Convert) -> list[NativeFile]:
    """Every file the converter reads for `job`."""
    vae = opened_for("vaePath", job.vae_path) if job.vae_path else []
    return opened_for("modelPath", job.input_path) + vae


class Generations:
    """The files a loaded model's generations open: they change with every request."""

    def __init__(self, load: messages.Load) -> None:
        self._root = load.models_root
        self._upscaler = load.upscaler_path
        # `auto` decides at load from the weight types; count it as immediately (checks more, never fewer).
        self._reopens_applied = load.lora_apply_mode != "at_runtime"
        self._applied: list[str] = []

    def opened_by(self, job: messages.Generate) -> list[NativeFile]:
        """What one native generation of `job` opens."""
        files = [file for lora in job.loras for file in opened_for(lora.field, lora.path)]
        if self._reopens_applied:
            current = {lora.path for lora in job.loras}
            files += [NativeFile("lora", path, path) for path in self._applied if path not in current]
        if job.hires is not None and job.hires.upscaler == MODEL_UPSCALER:
            files += opened_for("hires.upscaler", self._upscaler)
        return files

    @contextmanager
    def generating(self, job: messages.Generate) -> Iterator[None]:
        """Check what one native generation of `job` opens, right before it runs; then keep the
        LoRAs it leaves applied."""
        check_all(self.opened_by(job), self._root)
        paths = [lora.path for lora in job.loras]
        try:
            yield
        except BaseException:
            # The library may or may not have applied them before failing: the next call may open either.
            self._applied = list(dict.fromkeys(self._applied + paths))
            raise
        self._applied = paths


def check_all(files: list[NativeFile], root: str | None) -> None:
    """Each file checked (blocking: off the event loop in the front)."""
    for file in files:
        check(file, root)


def resolved(file: NativeFile, root: str | None) -> str:
    """The file's path with every symlink and `..` resolved, refused when that is outside `root`.

    Checked before the file is touched, so that an answer never tells whether a file outside exists.
    """
    real = os.path.realpath(file.path)
    if root is not None:
        _refuse_outside(file, real, root)
    return real


def check(file: NativeFile, root: str | None) -> str | None:
    """The file's real path, once it passes every rule; None for a missing file the library can do
    without. Refused, naming the field, the file and the rule: outside `root` (symlinks followed at
    every level), missing, not a regular file, unreadable or empty."""
    real = resolved(file, root)
    handle = None
    try:
        if _O_PATH:
            handle = os.open(real, _O_PATH | os.O_CLOEXEC)
            status = os.fstat(handle)
            # Where the file that was opened is, whatever was swapped since `realpath`.
            real = os.readlink(f"/proc/self/fd/{handle}")
            if root is not None:
                _refuse_outside(file, real, root)
        else:
            status = os.stat(real)
        if stat.S_ISDIR(status.st_mode):
            raise refused(file, "must name a file, not a folder")
        if not stat.S_ISREG(status.st_mode):
            what = _NOT_REGULAR.get(stat.S_IFMT(status.st_mode), "something else")
            raise refused(file, f"must name a regular file, not {what}")
        _refuse_unreadable(file, f"/proc/self/fd/{handle}" if handle is not None else real)
    except FileNotFoundError:
        if file.missing is None:
            return None
        raise refused(file, file.missing, message=f"{file.missing} (no such file: {file.path!r})") from None
    except OSError as error:
        raise refused(file, f"must be readable ({error.strerror})") from None
    finally:
        if handle is not None:
            os.close(handle)
    return real


def _refuse_unreadable(file: NativeFile, path: str) -> None:
    with open_regular(path) as opened:
        if not opened.read(8):
            raise refused(file, "must not be empty")


def open_regular(path: str) -> BinaryIO:
    """`path` opened for reading, or OSError when it is not a regular file. For reads after a check
    (headers, hashes): a FIFO put in the file's place since must not block them (O_NONBLOCK)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise OSError(errno.EINVAL, "not a regular file", path)
    return os.fdopen(descriptor, "rb")


def _refuse_outside(file: NativeFile, real: str, root: str) -> None:
    allowed = os.path.realpath(root)
    if real != allowed and not real.startswith(allowed.rstrip(os.sep) + os.sep):
        raise refused(
            file,
            f"must resolve inside {allowed}",
            "PATH_NOT_ALLOWED",
            f"resolves outside the models folder this sidecar may read ({allowed})",
        )


def refused(file: NativeFile, rule: str, code: str = "INVALID_PARAMS", message: str | None = None) -> SidecarError:
    """An error naming the field, the file within it when that is not the field itself, and the rule."""
    where = f"`{file.field}`" + (f" ({file.file})" if file.file else "")
    named = {"file": file.file} if file.file else {}
    return SidecarError(code, f"{where}: {message or rule}", field=file.field, rule=rule, **named)
