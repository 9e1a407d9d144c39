"""The download machinery in process (sidecar/sources), against a loopback server: resume, verify,
cache, share, cancel, redirects and credentials, errors. tests/test_sources.py drives the same
through a real sidecar."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from diffusion_sidecar_protocol.types import FileSource

from sidecar.rpc.errors import SidecarError
from sidecar.sources import refs
from sidecar.sources.downloads import Downloads
from sidecar.sources.settings import STALL_RETRIES, Settings
from sidecar.sources.state import FileState
from tests.http_server import LoopbackServer, Route

pytestmark = pytest.mark.anyio

BODY = os.urandom(3 * 1024 * 1024 + 123)  # several write batches, and a tail
SHA256 = hashlib.sha256(BODY).hexdigest()


@pytest.fixture
def server():
    server = LoopbackServer()
    yield server
    server.close()


@pytest.fixture
def other_host():
    """Another loopback address: another host name to redirect to."""
    server = LoopbackServer("127.0.0.2")
    yield server
    server.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Stalls only where a test makes one: a paused server is waited for as long as a test takes.
    return Settings(cache_dir=tmp_path / "cache", allow_http=True, stall_seconds=30, hf_hub_cache=tmp_path / "hub")


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Downloads]:
    downloads = Downloads(settings)
    async with anyio.create_task_group() as group:
        group.start_soon(downloads.run)
        yield downloads
        group.cancel_scope.cancel()


class States(list[FileState]):
    """A listener that keeps every state it is given; `reach` waits for one."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = anyio.Event()

    def __call__(self, state: FileState) -> None:
        self.append(state)
        self._changed.set()

    async def reach(self, predicate) -> None:
        with anyio.fail_after(30):
            while not any(predicate(state) for state in self):
                self._changed = anyio.Event()
                await self._changed.wait()

    @property
    def phases(self) -> list[str]:
        return [
            phase for index, phase in enumerate(s.phase for s in self) if index == 0 or self[index - 1].phase != phase
        ]


def source(value: str | FileSource, settings: Settings, field: str = "modelPath") -> refs.Source:
    return refs.parse(field, "model", value, settings)


async def fetch(downloads: Downloads, value: str | FileSource, states: States | None = None) -> Path:
    return await downloads.fetch(source(value, downloads.settings), states if states is not None else States())


async def failure(downloads: Downloads, value: str | FileSource) -> SidecarError:
    with pytest.raises(SidecarError) as raised:
        await fetch(downloads, value)
    return raised.value


async def wait(event) -> None:
    """A threading.Event of the server, waited for without blocking the event loop."""
    assert await anyio.to_thread.run_sync(event.wait, 30), "the server never got there"


async def interrupted(downloads: Downloads, route: Route, url: str, at: int) -> None:
    """A fetch cancelled once it has `at` bytes (where the route pauses), and the server hung up on."""
    states = States()
    async with anyio.create_task_group() as group:
        group.start_soon(fetch, downloads, url, states)
        await states.reach(lambda state: state.done == at)
        group.cancel_scope.cancel()
    await wait(route.disconnected)


async def test_a_download_lands_in_the_cache_under_its_name_with_its_record(server, settings) -> None:
    server.add("/m/model.safetensors", Route(body=BODY))
    states = States()
    async with running(settings) as downloads:
        path = await fetch(downloads, server.url("/m/model.safetensors"), states)
    assert path.name == "model.safetensors" and path.is_relative_to(settings.models_dir)
    assert path.read_bytes() == BODY
    assert sorted(p.name for p in path.parent.iterdir()) == ["download.json", "download.lock", "model.safetensors"]
    assert states.phases == ["checking", "downloading", "verifying", "done"]
    assert states[-1] == FileState(phase="done", done=len(BODY), total=len(BODY))
    assert all(s.total == len(BODY) for s in states if s.phase == "downloading")


async def test_a_cut_connection_is_resumed_with_range_and_if_range(server, settings) -> None:
    half = len(BODY) // 2
    server.add("/m/model.safetensors", Route(body=BODY, cut_after=half))
    states = States()
    async with running(settings) as downloads:
        path = await fetch(downloads, server.url("/m/model.safetensors"), states)
    assert path.read_bytes() == BODY
    first, second = server.seen("/m/model.safetensors")
    assert "range" not in first.headers
    assert second.headers["range"] == f"bytes={half}-" and second.headers["if-range"] == '"v1"'
    assert max(s.resumed_from for s in states) == half


async def test_a_server_that_ignores_range_starts_over_with_its_whole_answer(server, settings) -> None:
    server.add("/m/model.safetensors", Route(body=BODY, cut_after=len(BODY) // 2, ranges=False))
    states = States()
    async with running(settings) as downloads:
        path = await fetch(downloads, server.url("/m/model.safetensors"), states)
    assert path.read_bytes() == BODY
    assert [("range" in r.headers) for r in server.seen("/m/model.safetensors")] == [False, True]
    assert states[-1].resumed_from == 0


async def test_a_file_changed_between_attempts_is_downloaded_anew(server, settings) -> None:
    half = len(BODY) // 2
    route = server.add("/m/model.safetensors", Route(body=BODY, pause_at=half))
    async with running(settings) as downloads:
        await interrupted(downloads, route, server.url("/m/model.safetensors"), half)
        changed = os.urandom(len(BODY))
        route.body, route.etag = changed, '"v2"'
        path = await fetch(downloads, server.url("/m/model.safetensors"))
    assert path.read_bytes() == changed
    last = server.seen("/m/model.safetensors")[-1]
    assert last.headers["if-range"] == '"v1"'  # asked to resume the old file, got the new one whole


async def test_wrong_bytes_of_the_right_length_fail_the_checksum_and_are_deleted(server, settings) -> None:
    server.add("/m/model.safetensors", Route(body=os.urandom(len(BODY))))
    async with running(settings) as downloads:
        error = await failure(downloads, FileSource(src=server.url("/m/model.safetensors"), sha256=SHA256))
    assert error.code == "CHECKSUM_MISMATCH"
    assert error.data["algorithm"] == "sha256" and error.data["expected"] == SHA256
    assert error.data["got"] != SHA256 and error.data["field"] == "modelPath"
    assert [p.name for p in settings.models_dir.rglob("*.safetensors*")] == []


async def test_a_given_size_that_the_server_contradicts_fails_before_the_body(server, settings) -> None:
    server.add("/m/model.safetensors", Route(body=BODY))
    async with running(settings) as downloads:
        error = await failure(downloads, FileSource(src=server.url("/m/model.safetensors"), size=len(BODY) + 1))
    assert (error.code, error.data["algorithm"], error.data["got"]) == ("CHECKSUM_MISMATCH", "size", len(BODY))


async def test_credentials_go_to_their_own_host_only_never_to_a_redirect_target(server, other_host, settings) -> None:
    other_host.add("/blob", Route(body=BODY))
    server.add("/m/model.safetensors", Route(status=302, location=other_host.url("/blob")))
    value = FileSource(src=server.url("/m/model.safetensors"), headers={"Authorization": "Bearer secret-1"})
    async with running(settings) as downloads:
        path = await fetch(downloads, value)
    assert path.read_bytes() == BODY
    (asked,) = server.seen("/m/model.safetensors")
    (redirected,) = other_host.seen("/blob")
    assert asked.headers["authorization"] == "Bearer secret-1"
    assert "authorization" not in redirected.headers


async def test_a_user_and_password_in_the_url_are_sent_to_that_host_and_never_shown(server, settings) -> None:
    server.add("/m/model.safetensors", Route(body=b"x" * 10, auth="Basic dXNlcjpwYXNz"))  # user:pass
    url = server.url("/m/model.safetensors").replace("http://", "http://user:pass@")
    parsed = source(url, settings)
    assert parsed.given == server.url("/m/model.safetensors")
    async with running(settings) as downloads:
        assert (await fetch(downloads, url)).read_bytes() == b"x" * 10
        error = await failure(downloads, url.replace("model.", "missing."))
    assert "pass" not in repr(error.data) and "pass" not in error.message


async def test_http_errors_carry_their_status_and_only_some_are_retried(server, settings) -> None:
    server.add("/m/secret.safetensors", Route(auth="Bearer right"))
    server.add("/m/broken.safetensors", Route(status=500))
    async with running(settings) as downloads:
        missing = await failure(downloads, server.url("/m/missing.safetensors"))
        refused = await failure(downloads, server.url("/m/secret.safetensors"))
        wrong = await failure(
            downloads, FileSource(src=server.url("/m/secret.safetensors"), headers={"Authorization": "Bearer wrong"})
        )
        broken = await failure(downloads, server.url("/m/broken.safetensors"))
    assert (missing.code, missing.data["status"], missing.data["url"]) == (
        "DOWNLOAD_FAILED", 404, server.url("/m/missing.safetensors"),
    )  # fmt: skip
    assert (refused.code, refused.data["status"], refused.data["sentCredentials"]) == ("AUTH_REQUIRED", 401, False)
    assert (wrong.code, wrong.data["sentCredentials"]) == ("AUTH_REQUIRED", True)
    assert "wrong" not in repr(wrong.data) + wrong.message
    assert (broken.code, broken.data["status"]) == ("DOWNLOAD_FAILED", 500)
    assert len(server.seen("/m/broken.safetensors")) == 1  # a 500 says the same again: not retried


async def test_a_body_without_content_length_ends_with_the_connection(server, settings) -> None:
    server.add("/m/model.safetensors", Route(body=BODY, content_length=False))
    states = States()
    async with running(settings) as downloads:
        path = await fetch(downloads, server.url("/m/model.safetensors"), states)
    assert path.read_bytes() == BODY
    assert all(s.total is None for s in states if s.phase == "downloading")
    assert states[-1].total == len(BODY)


async def test_a_stalled_body_is_resumed_a_few_times_then_fails(server, settings) -> None:
    route = server.add("/m/model.safetensors", Route(body=BODY, stall_at=100_000))
    async with running(replace(settings, stall_seconds=0.5)) as downloads:
        error = await failure(downloads, server.url("/m/model.safetensors"))
    route.release.set()
    assert error.code == "DOWNLOAD_STALLED"
    assert error.data["stallSeconds"] == 0.5 and error.data["bytesDone"] == 100_000
    seen = server.seen("/m/model.safetensors")
    # The first attempt brought bytes; then STALL_RETRIES + 1 attempts in a row brought none.
    assert len(seen) == STALL_RETRIES + 2
    assert {r.headers.get("range") for r in seen[1:]} == {"bytes=100000-"}
    part = next(settings.models_dir.rglob("*.part"))
    assert part.read_bytes() == BODY[:100_000]  # kept for a later resume


async def test_two_fetches_of_one_source_share_one_transfer(server, settings) -> None:
    route = server.add("/m/model.safetensors", Route(body=BODY, pause_at=1000))
    paths = []

    async def one(states: States) -> None:
        paths.append(await fetch(downloads, server.url("/m/model.safetensors"), states))

    first, second = States(), States()
    async with running(settings) as downloads, anyio.create_task_group() as group:
        group.start_soon(one, first)
        await wait(route.paused)
        group.start_soon(one, second)
        await second.reach(lambda state: state.phase == "downloading")  # attached
        route.release.set()
    assert paths[0] == paths[1] and paths[0].read_bytes() == BODY
    assert len(server.seen("/m/model.safetensors")) == 1
    assert first[-1].phase == second[-1].phase == "done"


async def test_a_cancelled_fetch_detaches_and_the_transfer_goes_on_for_the_other(server, settings) -> None:
    route = server.add("/m/model.safetensors", Route(body=BODY, pause_at=len(BODY) // 3))
    leaving, left = anyio.CancelScope(), anyio.Event()
    first, second = States(), States()
    paths = []

    async def leave() -> None:
        with leaving:
            await fetch(downloads, server.url("/m/model.safetensors"), first)
        left.set()

    async def stay() -> None:
        paths.append(await fetch(downloads, server.url("/m/model.safetensors"), second))

    async with running(settings) as downloads, anyio.create_task_group() as group:
        group.start_soon(leave)
        await first.reach(lambda state: state.phase == "downloading")
        group.start_soon(stay)
        await second.reach(lambda state: state.phase == "downloading")
        leaving.cancel()
        await left.wait()
        assert downloads.transfers() == 1
        route.release.set()
    assert paths[0].read_bytes() == BODY
    assert len(server.seen("/m/model.safetensors")) == 1 and not route.disconnected.is_set()


async def test_the_last_fetch_cancelled_stops_the_transfer_keeping_the_part_for_a_resume(server, settings) -> None:
    third = len(BODY) // 3
    route = server.add("/m/model.safetensors", Route(body=BODY, pause_at=third))
    async with running(settings) as downloads:
        await interrupted(downloads, route, server.url("/m/model.safetensors"), third)
        part = next(settings.models_dir.rglob("*.part"))
        assert part.read_bytes() == BODY[:third]
        resumed = States()
        path = await fetch(downloads, server.url("/m/model.safetensors"), resumed)
    assert path.read_bytes() == BODY and not part.exists()
    assert server.seen("/m/model.safetensors")[-1].headers["range"] == f"bytes={third}-"
    assert resumed[-1].resumed_from == third
    # A new transfer hashes the bytes already there before it asks for the rest.
    assert resumed.phases == ["checking", "verifying", "checking", "downloading", "verifying", "done"]


async def test_a_cached_file_is_served_without_any_request_and_offline(server, settings) -> None:
    server.add("/m/model.safetensors", Route(body=BODY))
    url = server.url("/m/model.safetensors")
    async with running(settings) as downloads:
        path = await fetch(downloads, url)
        states = States()
        assert await fetch(downloads, FileSource(src=url, sha256=SHA256), states) == path
    assert len(server.requests) == 1
    assert states.phases == ["checking", "cached"] and states[-1].done == len(BODY)
    offline = replace(settings, offline=True)
    async with running(offline) as downloads:
        assert await fetch(downloads, url) == path
        error = await failure(downloads, server.url("/m/other.safetensors"))
    assert error.code == "OFFLINE_NOT_CACHED" and error.data["url"] == server.url("/m/other.safetensors")
    assert len(server.requests) == 1


async def test_a_cached_file_changed_on_disk_is_checked_again(server, settings) -> None:
    server.add("/m/model.safetensors", Route(body=BODY))
    url = server.url("/m/model.safetensors")
    async with running(settings) as downloads:
        path = await fetch(downloads, url)
        os.utime(path, ns=(0, 0))  # touched: same bytes
        assert await fetch(downloads, url) == path
        assert len(server.requests) == 1
        with open(path, "r+b") as file:
            file.write(b"\0")  # changed: downloaded again
        assert (await fetch(downloads, url)).read_bytes() == BODY
    assert len(server.requests) == 2


async def test_a_redirect_loop_ends_with_too_many_redirects(server, settings) -> None:
    server.add("/loop.safetensors", Route(status=302, location="/loop.safetensors"))
    async with running(settings) as downloads:
        error = await failure(downloads, server.url("/loop.safetensors"))
    assert (error.code, error.data["max"]) == ("TOO_MANY_REDIRECTS", 10)
    assert len(server.seen("/loop.safetensors")) == 11


async def test_sizes_over_the_limit_are_refused_declared_or_counted(server, settings) -> None:
    server.add("/declared.safetensors", Route(body=BODY))
    server.add("/counted.safetensors", Route(body=BODY, content_length=False))
    small = replace(settings, max_bytes=len(BODY) - 1)
    async with running(small) as downloads:
        declared = await failure(downloads, server.url("/declared.safetensors"))
        counted = await failure(downloads, server.url("/counted.safetensors"))
    for error in (declared, counted):
        assert (error.code, error.data["limit"], error.data["max"]) == (
            "LIMIT_EXCEEDED",
            "maxDownloadBytes",
            len(BODY) - 1,
        )
    with pytest.raises(SidecarError) as given:
        source(FileSource(src=server.url("/x.safetensors"), size=len(BODY)), small)
    assert given.value.data["field"] == "modelPath.size"


async def test_a_file_larger_than_the_free_disk_is_refused_before_its_body(server, settings) -> None:
    server.add("/huge.safetensors", Route(body=b"x" * 1000, declared_length=1 << 60))
    async with running(replace(settings, max_bytes=1 << 62)) as downloads:
        error = await failure(downloads, server.url("/huge.safetensors"))
    assert error.code == "INSUFFICIENT_DISK"
    assert error.data["needed"] == 1 << 60 and 0 < error.data["free"] < 1 << 60
    assert list(settings.models_dir.rglob("*.part")) == []


async def test_proxies_come_from_the_environment(server, settings, monkeypatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", server.url(""))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    server.add("http://models.example/m/model.safetensors", Route(body=BODY))
    async with running(settings) as downloads:
        path = await fetch(downloads, "http://models.example/m/model.safetensors")
    assert path.read_bytes() == BODY
    (proxied,) = server.requests
    assert proxied.path == "http://models.example/m/model.safetensors"  # the absolute form: a proxy's request


# --- Hugging Face ----------------------------------------------------------------------------


def hf_settings(settings: Settings, server: LoopbackServer, token: str | None = "hf_secret") -> Settings:
    return replace(settings, hf_endpoint=server.url(""), hf_token=token)


async def test_hf_sources_download_from_the_endpoint_verified_by_its_published_sha256(
    server, other_host, settings
) -> None:
    other_host.add("/cdn/blob", Route(body=BODY))
    server.add(
        "/org/repo/resolve/v1.0/unet/model.safetensors",
        Route(
            status=302,
            location=other_host.url("/cdn/blob"),
            headers={"X-Linked-Etag": f'"{SHA256}"', "X-Linked-Size": str(len(BODY))},
        ),
    )
    with_token = hf_settings(settings, server)
    async with running(with_token) as downloads:
        path = await fetch(downloads, "hf://org/repo@v1.0/unet/model.safetensors")
        assert path.read_bytes() == BODY and path.name == "model.safetensors"
        assert path.parent.parent.name == "hf--org--repo"
    (asked,) = server.seen("/org/repo/resolve/v1.0/unet/model.safetensors")
    assert asked.headers["authorization"] == "Bearer hf_secret"
    assert all("authorization" not in r.headers for r in other_host.requests)


async def test_an_hf_download_whose_bytes_differ_from_x_linked_etag_fails(server, other_host, settings) -> None:
    other_host.add("/cdn/blob", Route(body=os.urandom(len(BODY))))
    server.add(
        "/org/repo/resolve/main/model.safetensors",
        Route(status=302, location=other_host.url("/cdn/blob"), headers={"X-Linked-Etag": f'"{SHA256}"'}),
    )
    async with running(hf_settings(settings, server)) as downloads:
        error = await failure(downloads, "hf://org/repo/model.safetensors")
    assert (error.code, error.data["expected"]) == ("CHECKSUM_MISMATCH", SHA256)
    assert error.data["url"] == "hf://org/repo@main/model.safetensors"


async def test_the_redirect_host_cannot_publish_the_checksum(server, other_host, settings) -> None:
    """X-Linked-Etag is read from the source's own host only: a CDN's claim is not evidence."""
    wrong = "0" * 64
    other_host.add("/cdn/blob", Route(body=BODY, headers={"X-Linked-Etag": f'"{wrong}"'}))
    server.add("/org/repo/resolve/main/model.safetensors", Route(status=302, location=other_host.url("/cdn/blob")))
    async with running(hf_settings(settings, server)) as downloads:
        assert (await fetch(downloads, "hf://org/repo/model.safetensors")).read_bytes() == BODY


def write_hub_cache(hub: Path, body: bytes, *, blob_name: str) -> Path:
    folder = hub / "models--org--repo"
    commit = "a" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    (folder / "blobs").mkdir()
    (folder / "blobs" / blob_name).write_bytes(body)
    snapshot = folder / "snapshots" / commit / "unet"
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").symlink_to(Path("../../..") / "blobs" / blob_name)
    return folder / "blobs" / blob_name


async def test_a_file_in_the_users_hugging_face_cache_is_not_downloaded_again(server, settings) -> None:
    blob = write_hub_cache(settings.hf_hub_cache, BODY, blob_name=SHA256)
    states = States()
    async with running(hf_settings(settings, server)) as downloads:
        path = await fetch(downloads, "hf://org/repo/unet/model.safetensors", states)
        pinned = await fetch(downloads, f"hf://org/repo@{'a' * 40}/unet/model.safetensors")
    assert server.requests == []
    assert path.name == "model.safetensors" and path.read_bytes() == BODY
    assert path.stat().st_ino == blob.stat().st_ino  # a hard link: no second copy on disk
    assert pinned.read_bytes() == BODY
    assert states.phases == ["checking", "cached"]


async def test_a_hugging_face_cache_file_with_another_sha256_is_downloaded(server, settings) -> None:
    write_hub_cache(settings.hf_hub_cache, b"old bytes", blob_name="b" * 64)
    server.add("/org/repo/resolve/main/unet/model.safetensors", Route(body=BODY))
    value = FileSource(src="hf://org/repo/unet/model.safetensors", sha256=SHA256)
    async with running(hf_settings(settings, server)) as downloads:
        assert (await fetch(downloads, value)).read_bytes() == BODY
    assert len(server.requests) == 1


# --- what a field may hold ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "field", "rule"),
    [
        ("ftp://host/model.safetensors", "modelPath", "must be a local path, an https:// URL or hf://"),
        ("file:///etc/passwd", "modelPath", "must be a local path, an https:// URL or hf://"),
        ("http://host/model.safetensors", "modelPath", "plain http:// needs the sidecar's --allow-http"),
        ("https:///model.safetensors", "modelPath", "must be a URL with a host name"),
        ("https://host:port/model.safetensors", "modelPath", "must be a URL with a valid port"),
        ("https://host/", "modelPath", "must name a file"),
        ("hf://org/model.safetensors", "modelPath", "must be hf://org/repo[@revision]/path/in/repo"),
        ("hf://org/repo/../x.safetensors", "modelPath", "without empty, `.` or `..` parts"),
        (
            FileSource(src="https://host/model.safetensors", headers={"X-A": "b\r\nc"}),
            "modelPath.headers",
            "line breaks",
        ),
        (FileSource(src="https://host/x", name="../x.safetensors"), "modelPath.name", "must name a file"),
        (FileSource(src="gopher://host/x"), "modelPath.src", "must be a local path"),
    ],
)
def test_a_bad_source_is_refused_naming_its_field(value, field: str, rule: str, tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path)
    with pytest.raises(SidecarError) as raised:
        source(value, settings)
    assert raised.value.code == "INVALID_PARAMS"
    assert raised.value.data["field"] == field and rule in raised.value.data["rule"]


def test_urls_are_shown_without_credentials() -> None:
    shown = refs.public("https://me:pw@cdn.example:8443/a/b.safetensors?X-Amz-Signature=abc&token=t&v=2#frag")
    assert shown == "https://cdn.example:8443/a/b.safetensors?X-Amz-Signature=REDACTED&token=REDACTED&v=2"


def test_the_hf_token_goes_to_the_endpoint_only(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path, hf_token="hf_x")
    assert source("hf://org/repo/a.safetensors", settings).headers_for("https://huggingface.co/x") == {
        "Authorization": "Bearer hf_x"
    }
    assert source("hf://org/repo/a.safetensors", settings).headers_for("https://cdn-lfs.huggingface.co/x") == {}
    assert source("https://example.com/a.safetensors", settings).credentials == {}
    resolved = source("https://huggingface.co/org/repo/resolve/main/a.safetensors", settings)
    assert resolved.hf_file is not None and resolved.hf_file.repo == "org/repo"  # the HF cache is read for it too
