"""Hugging Face: `hf://org/repo[@revision]/path` sources, the endpoint and token, and the user's cache.

The hub cache (`~/.cache/huggingface/hub`, moved by `HF_HUB_CACHE` or `HF_HOME`) is shared by many
tools: `models--org--repo/refs/<revision>` names a commit, `snapshots/<commit>/<path>` links to
`blobs/<name>`, and a large (LFS) file's blob is named by its SHA-256. A file found there is used
instead of downloading it again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from ..rpc.errors import invalid_params

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_REVISION = "main"
PREFIX = "hf://"
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_SOURCE = re.compile(rf"hf://(?P<repo>{_NAME}/{_NAME})(?:@(?P<revision>[^/]+))?/(?P<path>.+)")
_RESOLVE = re.compile(rf"/(?P<repo>{_NAME}/{_NAME})/resolve/(?P<revision>[^/]+)/(?P<path>.+)")
COMMIT = re.compile(r"[0-9a-f]{40}")
SHA256 = re.compile(r"[0-9a-f]{64}")
RULE = "must be hf://org/repo[@revision]/path/in/repo"


@dataclass(frozen=True)
class HfFile:
    repo: str
    """`org/name`."""
    revision: str
    """A branch, tag or commit (`main` when the source names none)."""
    path: str
    """The file's path in the repository."""

    def url(self, endpoint: str) -> str:
        return f"{endpoint}/{self.repo}/resolve/{quote(self.revision, safe='')}/{quote(self.path)}"

    @property
    def source(self) -> str:
        return f"{PREFIX}{self.repo}@{self.revision}/{self.path}"


def parse(field: str, text: str) -> HfFile:
    match = _SOURCE.fullmatch(text)
    if match is None:
        raise invalid_params(field, RULE)
    revision = unquote(match["revision"] or DEFAULT_REVISION)
    path = unquote(match["path"])
    for part in (revision, path):
        if not _plain_path(part):
            raise invalid_params(field, f"{RULE}, without empty, `.` or `..` parts")
    return HfFile(match["repo"], revision, path)


def from_url(endpoint: str, url: str) -> HfFile | None:
    """The file an `https://` URL of the endpoint's `resolve` route names, if it is one."""
    base, target = urlsplit(endpoint), urlsplit(url)
    if (target.scheme, target.netloc) != (base.scheme, base.netloc):
        return None
    prefix = base.path.rstrip("/")
    if not target.path.startswith(prefix + "/") or not (match := _RESOLVE.fullmatch(target.path[len(prefix) :])):
        return None
    revision, path = unquote(match["revision"]), unquote(match["path"])
    return HfFile(match["repo"], revision, path) if _plain_path(revision) and _plain_path(path) else None


def _plain_path(text: str) -> bool:
    return "\\" not in text and "\0" not in text and all(part not in ("", ".", "..") for part in text.split("/"))


def published_sha256(value: str | None) -> str | None:
    """The SHA-256 in an `X-Linked-Etag` header (`"<hex>"`, maybe weak), if it holds one."""
    if value is None:
        return None
    digest = value.removeprefix("W/").strip('"').lower()
    return digest if SHA256.fullmatch(digest) else None


def endpoint(environ: Mapping[str, str]) -> str:
    return (environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _home(environ: Mapping[str, str]) -> Path:
    if home := environ.get("HF_HOME"):
        return Path(home)
    return Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"


def hub_cache(environ: Mapping[str, str]) -> Path:
    chosen = environ.get("HF_HUB_CACHE") or environ.get("HUGGINGFACE_HUB_CACHE")
    return Path(chosen) if chosen else _home(environ) / "hub"


def token(environ: Mapping[str, str]) -> str | None:
    """`HF_TOKEN`, else the file `huggingface-cli login` writes ($HF_TOKEN_PATH, else $HF_HOME/token)."""
    if value := (environ.get("HF_TOKEN") or environ.get("HUGGING_FACE_HUB_TOKEN") or "").strip():
        return value
    path = Path(environ["HF_TOKEN_PATH"]) if environ.get("HF_TOKEN_PATH") else _home(environ) / "token"
    try:
        return path.read_text().strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def find_cached(hub: Path, file: HfFile) -> Path | None:
    """The file in the user's hub cache, if it is there (blocking: runs in a thread)."""
    folder = hub / f"models--{file.repo.replace('/', '--')}"
    commit = file.revision
    if not COMMIT.fullmatch(commit):
        try:
            commit = (folder / "refs" / file.revision).read_text().strip()
        except (OSError, UnicodeDecodeError):
            return None
        if not COMMIT.fullmatch(commit):
            return None
    candidate = folder / "snapshots" / commit / file.path
    try:
        return candidate if candidate.is_file() and candidate.stat().st_size > 0 else None
    except OSError:
        return None


def blob_sha256(path: Path) -> str | None:
    """The SHA-256 the hub cache names a large file's blob by (small files' blobs are git hashes)."""
    name = path.resolve().name
    return name if SHA256.fullmatch(name) else None
