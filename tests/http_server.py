"""A loopback HTTP/1.1 server for the download tests, scripted per path; it records every request.

It serves only on 127.0.0.x. Every wait in it is bounded (WAIT_LIMIT), so a test that fails halfway
never leaves a handler thread behind for long. Behaviours a test can ask of a route: honour `Range`
and `If-Range` or ignore them, leave out `Content-Length` (the body then ends when the connection
closes), cut the connection after some bytes, stall at a byte until released, pause once at
a byte until released, answer with a status or a redirect, require an `Authorization` value.
"""

from __future__ import annotations

import select
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

WAIT_LIMIT = 30.0
SEND_CHUNK = 64 * 1024


@dataclass
class Route:
    body: bytes = b""
    etag: str | None = '"v1"'
    ranges: bool = True
    """Honour `Range` (with `If-Range`); False: always the whole file, 200."""
    content_length: bool = True
    declared_length: int | None = None
    """A `Content-Length` to declare instead of the body's (the body sent is the real one)."""
    status: int = 200
    location: str | None = None
    """With a 3xx status: where it redirects."""
    headers: dict[str, str] = field(default_factory=dict)
    auth: str | None = None
    """The `Authorization` value required; anything else is answered 401."""
    cut_after: int | None = None
    """Close the connection after this many body bytes of each of the first `cuts` answers."""
    cuts: int = 1
    stall_at: int | None = None
    """Stop sending at the file's byte `stall_at` in every answer that reaches it, until `release` is set."""
    pause_at: int | None = None
    """Stop once when the file's byte `pause_at` is reached, until `release` is set."""
    paused: threading.Event = field(default_factory=threading.Event)
    """Set when a stall or the pause begins."""
    disconnected: threading.Event = field(default_factory=threading.Event)
    """Set when the client closed the connection during a stall or the pause."""
    release: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased names."""
    server: str
    """The address the request came to: `127.0.0.1:port`."""


class LoopbackServer:
    def __init__(self, host: str = "127.0.0.1", tls: tuple[Path, Path] | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.host, self.port = host, self._server.server_address[1]
        self.scheme = "https" if tls else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def url(self, path: str, host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    def add(self, path: str, route: Route) -> Route:
        self.routes[path] = route
        return route

    def seen(self, path: str) -> list[Seen]:
        with self._lock:
            return [request for request in self.requests if request.path == path]

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)

    def close(self) -> None:
        for route in self.routes.values():
            route.release.set()
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_owner: LoopbackServer

    def log_message(self, *args: object) -> None:  # quiet: the tests assert on `requests`
        pass

    def do_GET(self) -> None:
        owner = self.server_owner
        headers = {name.lower(): value for name, value in self.headers.items()}
        owner.record(Seen("GET", self.path, headers, f"{self.server.server_address[0]}:{owner.port}"))
        route = owner.routes.get(self.path)
        if route is None:
            return self._answer(404, b"not found")
        if route.auth is not None and headers.get("authorization") != route.auth:
            return self._answer(401, b"unauthorized", {"WWW-Authenticate": 'Bearer realm="test"'})
        if route.location is not None or route.status >= 300:
            extra = {"Location": route.location} if route.location else {}
            return self._answer(route.status, b"", {**route.headers, **extra})
        start = self._range_start(route, headers)
        if start is not None and start >= len(route.body):
            return self._answer(416, b"", {"Content-Range": f"bytes */{len(route.body)}"})
        body = route.body[start or 0 :]
        self.send_response(206 if start is not None else route.status)
        if route.etag:
            self.send_header("ETag", route.etag)
        for name, value in route.headers.items():
            self.send_header(name, value)
        if start is not None:
            self.send_header("Content-Range", f"bytes {start}-{len(route.body) - 1}/{len(route.body)}")
        if route.content_length:
            self.send_header("Content-Length", str(route.declared_length or len(body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self._send_body(route, body, start or 0)

    def _range_start(self, route: Route, headers: dict[str, str]) -> int | None:
        wanted = headers.get("range", "")
        if not route.ranges or not wanted.startswith("bytes=") or not wanted.endswith("-"):
            return None
        if "if-range" in headers and headers["if-range"] != route.etag:
            return None  # the file changed since: the whole new file
        return int(wanted[len("bytes=") : -1])

    def _send_body(self, route: Route, body: bytes, offset: int) -> None:
        limit = len(body)
        cut = route.cut_after is not None and route.cuts > 0
        if cut:
            route.cuts -= 1
            limit = min(limit, route.cut_after)  # type: ignore[type-var]
        stall = route.stall_at - offset if route.stall_at is not None and route.stall_at >= offset else None
        pause = route.pause_at - offset if route.pause_at is not None and route.pause_at >= offset else None
        sent = 0
        try:
            while sent < limit:
                stop = min(limit, sent + SEND_CHUNK)
                for point in (stall, pause):
                    if point is not None and sent <= point < stop:
                        stop = point
                if stop > sent:
                    self.wfile.write(body[sent:stop])
                    self.wfile.flush()
                    sent = stop
                if (stall is not None and sent == stall) or (pause is not None and sent == pause):
                    if pause is not None and sent == pause:
                        route.pause_at, pause = None, None
                    else:
                        stall = None
                    if not self._hold(route):
                        return
        except (BrokenPipeError, ConnectionResetError):
            return
        if cut or not route.content_length:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    def _hold(self, route: Route) -> bool:
        """Send nothing until released; False when the client hung up meanwhile."""
        route.paused.set()
        waited = 0.0
        while not route.release.is_set() and waited < WAIT_LIMIT:
            readable, _, _ = select.select([self.connection], [], [], 0.05)
            waited += 0.05
            if readable:
                try:
                    hung_up = not self.connection.recv(1, socket.MSG_PEEK)
                except ConnectionResetError:  # closed with our bytes unread: a reset, not an end
                    hung_up = True
                if hung_up:
                    route.disconnected.set()
                    self.close_connection = True
                    return False
        return True

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key (openssl, a few milliseconds)."""
    certificate, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(certificate), "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True, capture_output=True,
    )  # fmt: skip
    return certificate, key
