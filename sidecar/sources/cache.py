"""The download cache on disk.

Each source has its own folder, `<cache>/models/<host or hf--org--repo>/<key>/`, the key a digest
of the URL and the name it is saved as. In it: the file under its name once it is complete and
verified, `<name>.part` while it downloads (renamed to `<name>` at the end, so a half-written file
never has the final name), `download.json` (what is known about both: the server's validator for a
resume, and the finished file's size, SHA-256, ETag and mtime), and `download.lock`, held while
one process downloads it. Everything here blocks: callers run it in a thread.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from .refs import Source, public

HASH_CHUNK = 1 << 20
_LABEL = re.compile(r"[^A-Za-z0-9._-]+")


class Complete(msgspec.Struct, kw_only=True):
    size: int
    mtimeNs: int
    """Of the file as recorded: a file changed since is checked again before it is trusted."""
    sha256: str | None = None
    etag: str | None = None
    lastModified: str | None = None
    origin: str = "download"
    """`download`, or `hf-cache` for a file taken from the user's Hugging Face cache."""


class Partial(msgspec.Struct, kw_only=True):
    validator: str | None
    """The strong ETag (else Last-Modified) the `.part` bytes came with: the resume's `If-Range`."""
    total: int | None = None


class Record(msgspec.Struct, kw_only=True):
    url: str
    name: str
    complete: Complete | None = None
    partial: Partial | None = None


@dataclass(frozen=True)
class Entry:
    folder: Path
    name: str
    url: str

    @property
    def path(self) -> Path:
        return self.folder / self.name

    @property
    def part(self) -> Path:
        return self.folder / f"{self.name}.part"

    @property
    def record_file(self) -> Path:
        return self.folder / "download.json"

    def read(self) -> Record:
        try:
            record = msgspec.json.decode(self.record_file.read_bytes(), type=Record)
        except (OSError, msgspec.MsgspecError):
            return Record(url=self.url, name=self.name)
        return record if (record.url, record.name) == (self.url, self.name) else Record(url=self.url, name=self.name)

    def write(self, record: Record) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.record_file.with_suffix(".json.tmp")
        temporary.write_bytes(msgspec.json.encode(record))
        os.replace(temporary, self.record_file)


def entry_for(models_dir: Path, source: Source) -> Entry:
    if source.hf_file is not None:
        label = "hf--" + source.hf_file.repo.replace("/", "--")
    else:
        host, _, port = source.url.split("/")[2].rpartition("@")[2].partition(":")
        label = _LABEL.sub("_", host.strip("[]").lower()) + (f"_{port}" if port else "")
    key = hashlib.sha256(f"{source.url}\n{source.name}".encode()).hexdigest()[:16]
    return Entry(models_dir / label / key, source.name, public(source.url))


def hash_file(path: Path, upto: int | None = None, on_bytes: Callable[[int], None] | None = None) -> hashlib._Hash:
    """SHA-256 of the file's first `upto` bytes (all of it by default)."""
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as file:
        while upto is None or done < upto:
            chunk = file.read(HASH_CHUNK if upto is None else min(HASH_CHUNK, upto - done))
            if not chunk:
                break
            digest.update(chunk)
            done += len(chunk)
            if on_bytes is not None:
                on_bytes(done)
    return digest


def cached(entry: Entry, source: Source, on_verifying: Callable[[int, int], None]) -> Path | None:
    """The complete file, when its record says it is the one the source asks for; no request made.

    A file changed on disk since it was recorded is hashed again (when its SHA-256 is known), as is
    one recorded without a SHA-256 when the source gives one.
    """
    record = entry.read()
    complete = record.complete
    if complete is None:
        return None
    try:
        stat = entry.path.stat()
    except OSError:
        return None
    if stat.st_size != complete.size or (source.size is not None and source.size != complete.size):
        return None
    changed = stat.st_mtime_ns != complete.mtimeNs
    if changed or (source.sha256 and complete.sha256 is None):
        if changed and complete.sha256 is None and not source.sha256:
            return None  # nothing to check it against
        digest = hash_file(entry.path, on_bytes=lambda done: on_verifying(done, stat.st_size)).hexdigest()
        if digest != (complete.sha256 or source.sha256):
            return None
        complete.sha256, complete.mtimeNs = digest, stat.st_mtime_ns
        entry.write(record)
    if source.sha256 and source.sha256 != complete.sha256:
        return None
    return entry.path


def adopt(entry: Entry, found: Path, sha256: str | None) -> Path:
    """Make a file of the Hugging Face cache this entry's file: a hard link (no space, no copy), or a
    copy where the two caches are on different file systems. Its own name keeps its suffix, which
    the blob it links to lacks."""
    entry.folder.mkdir(parents=True, exist_ok=True)
    temporary = entry.folder / f"{entry.name}.adopting"
    temporary.unlink(missing_ok=True)
    try:
        os.link(found.resolve(), temporary)
    except OSError as error:
        if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copyfile(found, temporary)
    os.replace(temporary, entry.path)
    stat = entry.path.stat()
    record = entry.read()
    record.complete = Complete(size=stat.st_size, mtimeNs=stat.st_mtime_ns, sha256=sha256, origin="hf-cache")
    entry.write(record)
    return entry.path


class FolderLock:
    """An exclusive lock on an entry's folder, so two sidecars never write one `.part` at once."""

    def __init__(self, entry: Entry) -> None:
        entry.folder.mkdir(parents=True, exist_ok=True)
        self._descriptor = os.open(entry.folder / "download.lock", os.O_RDWR | os.O_CREAT, 0o644)

    def try_acquire(self) -> bool:
        try:
            fcntl.flock(self._descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        os.close(self._descriptor)  # releases the lock
