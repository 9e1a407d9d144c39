"""Make dist/diffusion-sidecar: build/launcher.c compiled, followed by the PyInstaller folder.

Run by `make binary` after PyInstaller: `python build/pack_binary.py FOLDER LAUNCHER_C OUTPUT`.
The payload and trailer layout is described at the top of build/launcher.c. The bundle's name
(its cache folder) is the sidecar's version and a digest of the payload, so every build unpacks
into a folder of its own and a launch never runs another build's files.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

MAGIC = b"DSBUNDL1"
NAME_BYTES = 32
CHUNK = 1 << 20


def _entries(folder: Path) -> Iterator[tuple[bytes, Path]]:
    """(kind, path) for everything below folder, each folder before what it holds, sorted."""
    for current, folders, files in os.walk(folder):
        folders.sort()
        for name in sorted(folders + files):
            path = Path(current) / name
            if path.is_symlink():
                yield b"l", path
            elif path.is_dir():
                yield b"d", path
            else:
                yield b"f", path
        folders[:] = [name for name in folders if not (Path(current) / name).is_symlink()]


def _record(kind: bytes, path: Path, folder: Path) -> tuple[bytes, bytes | Path]:
    """A record's header, and what follows it: bytes, or a file to copy."""
    relative = path.relative_to(folder).as_posix().encode()
    if kind == b"l":
        target = os.readlink(path).encode()
        return struct.pack("<cH", kind, len(relative)) + relative + struct.pack("<IQ", 0o777, len(target)), target
    info = path.lstat()
    size = 0 if kind == b"d" else info.st_size
    return struct.pack("<cH", kind, len(relative)) + relative + struct.pack("<IQ", info.st_mode & 0o777, size), path


def _write_payload(folder: Path, out, digest) -> int:
    written = 0

    def emit(data: bytes) -> None:
        nonlocal written
        out.write(data)
        digest.update(data)
        written += len(data)

    for kind, path in _entries(folder):
        header, body = _record(kind, path, folder)
        emit(header)
        if isinstance(body, bytes):
            emit(body)
        elif kind == b"f":
            with open(body, "rb") as source:
                while chunk := source.read(CHUNK):
                    emit(chunk)
    return written


def _compile(launcher_c: Path, output: Path) -> None:
    # No -march: the launcher must run on any x86-64 CPU, like the bundle it starts.
    compiler = os.environ.get("CC") or shutil.which("cc") or "gcc"
    subprocess.run([compiler, "-O2", "-Wall", "-Werror", "-o", str(output), str(launcher_c)], check=True)


def pack(folder: Path, launcher_c: Path, output: Path, version: str) -> str:
    """Write output; return the bundle's name."""
    with tempfile.TemporaryDirectory() as work:
        launcher = Path(work) / "launcher"
        _compile(launcher_c, launcher)
        output.parent.mkdir(parents=True, exist_ok=True)  # dist/ in a clean clone
        partial = output.with_name(output.name + ".partial")
        digest = hashlib.sha256()
        with open(partial, "wb") as out:
            out.write(launcher.read_bytes())
            offset = out.tell()
            size = _write_payload(folder, out, digest)
            name = f"{version}-{digest.hexdigest()[:16]}".encode()
            out.write(MAGIC + struct.pack("<QQ", offset, size) + name.ljust(NAME_BYTES, b"\0"))
        partial.chmod(0o755)
        partial.replace(output)
    return name.decode()


if __name__ == "__main__":
    folder, launcher_c, output = (Path(argument) for argument in sys.argv[1:4])
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "host_clients" / "python"))
    from diffusion_sidecar_protocol import __version__

    print(f"{output}: bundle {pack(folder, launcher_c, output, __version__)}", file=sys.stderr)
