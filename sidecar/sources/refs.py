"""What a file field holds: a local path (a plain string), or a source to download.

A source is a URL string or a `FileSource` object. Everything about it is checked here, before any
request is made: the scheme, the Hugging Face form, the name it is saved as, its headers. Which
credentials go to which host is decided here too, once: a request's own headers and any user name
and password in its URL go to the URL's own origin, the Hugging Face token only to the endpoint's.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import msgspec
from diffusion_sidecar_protocol.types import FileRef, FileSource

from ..rpc.errors import invalid_params, limit_exceeded
from . import hf
from .hf import HfFile
from .settings import Settings

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# RFC 9110 token characters, for header names; values must hold no control characters.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")
# Query parameters that carry credentials in signed URLs (S3, GCS, CDNs) or APIs: never shown.
_SECRET_QUERY = re.compile(r"token|key|sig|signature|secret|password|credential|auth|session", re.IGNORECASE)
REDACTED = "REDACTED"

Origin = tuple[str, str, int]


def is_source(value: FileRef) -> bool:
    return isinstance(value, FileSource) or _SCHEME.match(value) is not None


def origin(url: str) -> Origin:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


def public(url: str) -> str:
    """A URL as it may be shown and logged: no user name or password, signed query values redacted."""
    parts = urlsplit(url)
    if parts.scheme.lower() == "hf":
        return url
    netloc = parts.hostname or ""
    if ":" in netloc:  # an IPv6 address
        netloc = f"[{netloc}]"
    if parts.port:
        netloc += f":{parts.port}"
    query = urlencode(
        [(key, REDACTED if _SECRET_QUERY.search(key) else value) for key, value in parse_qsl(parts.query, True)]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


@dataclass(frozen=True)
class Source:
    field: str
    """The request's field that named it, for errors and progress."""
    role: str
    given: str
    """The source as given, without credentials: what progress and errors show."""
    url: str
    """What is downloaded: an http(s) URL without user name or password."""
    name: str
    """The file name it is saved as."""
    sha256: str | None = None
    size: int | None = None
    hf_file: HfFile | None = None
    credentials: dict[Origin, dict[str, str]] = field(default_factory=dict, hash=False, compare=False, repr=False)
    """Headers sent only to requests whose origin is the key's."""

    def headers_for(self, url: str) -> dict[str, str]:
        return dict(self.credentials.get(origin(url), {}))

    def sends_credentials(self) -> bool:
        return any(self.credentials.values())


def parse(field: str, role: str, value: FileRef, settings: Settings) -> Source:
    """The source a field names, every rule checked; errors name the field."""
    spec = value if isinstance(value, FileSource) else FileSource(src=value)
    src_field = f"{field}.src" if isinstance(value, FileSource) else field
    match = _SCHEME.match(spec.src)
    scheme = match[1].lower() if match else ""
    if scheme == "hf":
        hf_file = hf.parse(src_field, spec.src)
        url = hf_file.url(settings.hf_endpoint)
        _check_scheme(src_field, url, settings, what="HF_ENDPOINT")
        given, credentials = hf_file.source, {}
    elif scheme in ("https", "http"):
        _check_scheme(src_field, spec.src, settings)
        url, credentials = _without_user_info(src_field, spec.src)
        hf_file = hf.from_url(settings.hf_endpoint, url)
        given = public(spec.src)
    else:
        raise invalid_params(
            src_field, "must be a local path, an https:// URL or hf://org/repo[@revision]/path/in/repo"
        )
    if spec.headers is not msgspec.UNSET:
        own = credentials.setdefault(origin(url), {})
        for name, header in spec.headers.items():
            if not _HEADER_NAME.fullmatch(name) or not _HEADER_VALUE.fullmatch(header):
                raise invalid_params(
                    f"{field}.headers", "header names must be tokens and values must hold no line breaks"
                )
            own[name] = header
    if settings.hf_token and origin(url) == origin(settings.hf_endpoint):
        token = credentials.setdefault(origin(url), {})
        if not any(name.lower() == "authorization" for name in token):
            token["Authorization"] = f"Bearer {settings.hf_token}"
    size = None if spec.size is msgspec.UNSET else spec.size
    if size is not None and size > settings.max_bytes:
        raise limit_exceeded(f"{field}.size", "maxDownloadBytes", settings.max_bytes, size)
    return Source(
        field=field,
        role=role,
        given=given,
        url=url,
        name=_name(field, spec, url, hf_file),
        sha256=None if spec.sha256 is msgspec.UNSET else spec.sha256.lower(),
        size=size,
        hf_file=hf_file,
        credentials={key: headers for key, headers in credentials.items() if headers},
    )


def _check_scheme(field: str, url: str, settings: Settings, what: str = "") -> None:
    parts = urlsplit(url)
    if parts.scheme.lower() == "http" and not settings.allow_http:
        where = f" ({what} is {url.split('/resolve/')[0]})" if what else ""
        raise invalid_params(field, f"plain http:// needs the sidecar's --allow-http flag{where}; use https://")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        raise invalid_params(field, "must be a URL with a valid port") from None
    if not parts.hostname:
        raise invalid_params(field, "must be a URL with a host name")


def _without_user_info(field: str, url: str) -> tuple[str, dict[Origin, dict[str, str]]]:
    """A user name and password in the URL become a Basic header for its own origin only."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    bare = urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))
    if parts.username is None:
        return bare, {}
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    return bare, {origin(bare): {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}}


def _name(field: str, spec: FileSource, url: str, hf_file: HfFile | None) -> str:
    if spec.name is not msgspec.UNSET:
        name, name_field = spec.name, f"{field}.name"
    else:
        name = (hf_file.path if hf_file else unquote(urlsplit(url).path)).rsplit("/", 1)[-1]
        name_field = field
    if not name or name in (".", "..") or name.startswith(".") or any(c in name for c in "/\\\0") or len(name) > 255:
        raise invalid_params(
            name_field, "must name a file: give `name` when the URL's last segment is not a usable file name"
        )
    return name
