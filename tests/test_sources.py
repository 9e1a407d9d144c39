"""Files given as URLs, end to end: a real sidecar (the Python launcher), a loopback server and the
synthetic models (ESRGAN, TAESD, LoRA). tests/test_downloads.py covers the download machinery in
detail; this file covers what a host sees: notifications, errors, cancel, the cache, real loads."""

from __future__ import annotations

import base64
import hashlib
from io import BytesIO
from pathlib import Path

import anyio.to_thread
import pytest
from diffusion_sidecar_client import DownloadProgress, Sidecar
from PIL import Image

from sidecar.synth.kinds import write
from tests.harness import RawSidecar
from tests.http_server import LoopbackServer, Route

pytestmark = pytest.mark.anyio

PHASES_DOWNLOADED = ["checking", "downloading", "verifying", "done"]


@pytest.fixture(scope="module")
def synthetic_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("served")
    return {kind: write(kind, folder / f"{kind}.safetensors").read_bytes() for kind in ("esrgan", "taesd", "lora")}


@pytest.fixture
def server(synthetic_files: dict[str, bytes]):
    server = LoopbackServer()
    for kind, body in synthetic_files.items():
        server.add(f"/files/{kind}.safetensors", Route(body=body, etag=f'"{kind}-1"'))
    yield server
    server.close()


@pytest.fixture
async def raw(python_command: list[str], tmp_path: Path):
    sidecar = await RawSidecar.start("--allow-http", "--cache-dir", str(tmp_path / "cache"), command=python_command)
    yield sidecar
    await sidecar.stop()


def downloads(raw: RawSidecar, request_id: int) -> list[dict]:
    return raw.notifications("download/progress", request_id)


def phases(notifications: list[dict], field: str = "modelPath") -> list[str]:
    seen = [n["phase"] for n in notifications if n["field"] == field]
    return [phase for index, phase in enumerate(seen) if index == 0 or seen[index - 1] != phase]


def png(width: int, height: int) -> str:
    buffer = BytesIO()
    Image.new("RGB", (width, height), (200, 40, 90)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


async def until(raw: RawSidecar, request_id: int, predicate) -> dict:
    return await raw.wait_for(
        lambda m: (
            m.get("method") == "download/progress" and m["params"]["requestId"] == request_id and predicate(m["params"])
        )
    )


async def test_a_model_loads_from_a_url_reporting_its_download_and_then_comes_from_the_cache(
    raw: RawSidecar, server: LoopbackServer, synthetic_files: dict[str, bytes], tmp_path: Path
) -> None:
    url = server.url("/files/esrgan.safetensors")
    loaded = await raw.call("loadModel", {"modelPath": url})
    result = loaded["result"]
    assert result["modelFamily"] == "ESRGAN upscaler (x4)"
    notes = downloads(raw, loaded["id"])
    assert phases(notes) == PHASES_DOWNLOADED
    size = len(synthetic_files["esrgan"])
    assert notes[-1] | {"elapsedMs": 0, "speedBytesPerSecond": 0} == {
        "requestId": loaded["id"], "field": "modelPath", "role": "model", "src": url, "phase": "done",
        "bytesDone": size, "bytesTotal": size, "resumedFrom": 0, "speedBytesPerSecond": 0, "totalBytesDone": size,
        "totalBytes": size, "filesDone": 1, "filesTotal": 1, "elapsedMs": 0,
    }  # fmt: skip
    # Every download notification comes before the load's own progress and its answer.
    order = [
        m.get("method") or "result"
        for m in raw.messages
        if m.get("id") == loaded["id"] or (m.get("params") or {}).get("requestId") == loaded["id"]
    ]
    downloading = order.count("download/progress")
    assert order[:downloading] == ["download/progress"] * downloading and order[-1] == "result"
    upscaled = await raw.call("upscale", {"modelId": result["modelId"], "image": png(8, 8)})
    assert upscaled["result"]["stats"]["width"] == 32
    listed = (await raw.call("listModels"))["result"]["models"][0]["files"]["modelPath"]
    assert Path(listed).is_relative_to(tmp_path / "cache" / "models") and Path(listed).name == "esrgan.safetensors"

    sha256 = hashlib.sha256(synthetic_files["esrgan"]).hexdigest()
    again = await raw.call("loadModel", {"modelPath": {"src": url, "sha256": sha256}, "modelConfig": {"threads": 1}})
    assert "result" in again
    assert phases(downloads(raw, again["id"])) == ["checking", "cached"]
    assert len(server.requests) == 1  # the second load made no request at all


async def test_companions_and_a_lora_from_urls_through_the_python_client(
    python_command: list[str],
    server: LoopbackServer,
    synthetic_files: dict[str, bytes],
    synthetic_model: str,
    tmp_path: Path,
) -> None:
    """One progress per request over its files; the client's stream and callback both see it."""
    config = {
        "taesdPath": server.url("/files/taesd.safetensors"),
        "upscalerPath": server.url("/files/esrgan.safetensors"),
    }
    async with await Sidecar.start(
        [*python_command, "--allow-http", "--cache-dir", str(tmp_path / "cache")]
    ) as sidecar:
        called: list[DownloadProgress] = []
        call = sidecar.load(synthetic_model, config, on_download=called.append)
        streamed = [progress async for progress in call.download_stream]
        loaded = await call
        assert loaded.upscaleFactor == 4
        lora = sidecar.diffusion(
            modelId=loaded.modelId, prompt="a lighthouse", width=64, height=64, steps=1, seed=1, preview_method="tae",
            lora=[{"path": server.url("/files/lora.safetensors"), "weight": 0.5}],
        )  # fmt: skip
        lora_downloads = [progress async for progress in lora.download_stream]
        previews = [preview async for preview in lora.preview_stream]
        assert len(await lora.outputs) == 1
    assert streamed == called and streamed[0].requestId == call.request_id
    assert {p.field: p.role for p in streamed} == {
        "modelConfig.taesdPath": "taesd",
        "modelConfig.upscalerPath": "upscaler",
    }
    total = len(synthetic_files["taesd"]) + len(synthetic_files["esrgan"])
    last = streamed[-1]
    assert (last.filesDone, last.filesTotal, last.totalBytesDone, last.totalBytes) == (2, 2, total, total)
    assert all(p.totalBytes in (None, total) for p in streamed)
    assert [p.totalBytesDone for p in streamed] == sorted(p.totalBytesDone for p in streamed)
    assert [p.phase for p in lora_downloads][-1] == "done" and lora_downloads[-1].field == "lora[0].path"
    assert previews  # the downloaded TAESD decodes them


async def test_cancel_mid_download_answers_at_once_and_the_next_load_resumes(
    raw: RawSidecar, server: LoopbackServer, synthetic_files: dict[str, bytes]
) -> None:
    body = synthetic_files["esrgan"]
    route = server.routes["/files/esrgan.safetensors"]
    url = server.url("/files/esrgan.safetensors")
    for at, how in ((len(body) // 4, "cancel"), (len(body) // 2, "$/cancelRequest")):
        route.pause_at, route.paused, route.disconnected = at, type(route.paused)(), type(route.disconnected)()
        request_id = await raw.send("loadModel", {"modelPath": url})
        await until(raw, request_id, lambda p: p["phase"] == "downloading")
        assert await anyio.to_thread.run_sync(route.paused.wait, 30)
        if how == "cancel":
            assert (await raw.call("cancel", {"requestId": request_id}))["result"] == {"cancelled": 1}
        else:
            await raw.send_line(b'{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":%d}}' % request_id)
        answer = await raw.response(request_id)
        assert answer["error"]["data"]["code"] == "CANCELLED"
        assert await anyio.to_thread.run_sync(route.disconnected.wait, 30), "the transfer went on without its caller"
    loaded = await raw.call("loadModel", {"modelPath": url})
    assert "result" in loaded
    ranges = [r.headers.get("range") for r in server.seen("/files/esrgan.safetensors")]
    assert ranges[0] is None and ranges[1].startswith("bytes=") and ranges[2].startswith("bytes=")
    resumed = [n["resumedFrom"] for n in downloads(raw, loaded["id"])]
    assert max(resumed) == int(ranges[2][len("bytes=") : -1]) > 0


async def test_two_loads_of_one_url_at_once_share_one_transfer(raw: RawSidecar, server: LoopbackServer) -> None:
    route = server.routes["/files/esrgan.safetensors"]
    route.pause_at = 1000
    url = server.url("/files/esrgan.safetensors")
    first = await raw.send("loadModel", {"modelPath": url, "modelConfig": {"threads": 1}})
    second = await raw.send("loadModel", {"modelPath": url, "modelConfig": {"threads": 2}})
    for request_id in (first, second):
        await until(raw, request_id, lambda p: p["phase"] == "downloading")
    route.release.set()
    answers = [await raw.response(request_id) for request_id in (first, second)]
    assert all("result" in answer for answer in answers), answers
    assert len(server.seen("/files/esrgan.safetensors")) == 1
    assert phases(downloads(raw, second)) == ["checking", "downloading", "verifying", "done"]


async def test_download_errors_reach_the_host_with_their_code_and_data(raw: RawSidecar, server: LoopbackServer) -> None:
    missing = await raw.call("loadModel", {"modelPath": server.url("/files/missing.safetensors")})
    assert missing["error"]["code"] == -32009
    assert missing["error"]["data"] | {} == {
        "code": "DOWNLOAD_FAILED", "field": "modelPath", "url": server.url("/files/missing.safetensors"),
        "status": 404, "reason": "Not Found",
    }  # fmt: skip
    bad = await raw.call("loadModel", {"modelPath": "s3://bucket/model.safetensors"})
    assert bad["error"]["data"]["code"] == "INVALID_PARAMS" and bad["error"]["data"]["field"] == "modelPath"
    unnamed = await raw.call(
        "loadModel", {"modelPath": {"src": server.url("/files/esrgan.safetensors"), "name": "x.bin"}}
    )
    assert unnamed["error"]["data"]["field"] == "modelPath.name"
    checksum = await raw.call(
        "loadModel",
        {
            "modelPath": "/nowhere/model.safetensors",
            "modelConfig": {"vaePath": {"src": "https://h/v.safetensors", "sha256": "xyz"}},
        },
    )
    assert checksum["error"]["data"]["field"] == "modelConfig.vaePath.sha256"
    assert len(server.requests) == 1  # only the 404: every other rule was checked before any request


async def test_offline_serves_the_cache_only(python_command: list[str], server: LoopbackServer, tmp_path: Path) -> None:
    url = server.url("/files/esrgan.safetensors")
    flags = ("--allow-http", "--cache-dir", str(tmp_path / "cache"))
    online = await RawSidecar.start(*flags, command=python_command)
    try:
        assert "result" in await online.call("loadModel", {"modelPath": url})
    finally:
        await online.stop()
    offline = await RawSidecar.start(*flags, "--offline", command=python_command)
    try:
        assert (await offline.call("initialize"))["result"]["limits"]["offline"] is True
        assert "result" in await offline.call("loadModel", {"modelPath": url})
        missing = await offline.call("loadModel", {"modelPath": server.url("/files/taesd.safetensors")})
    finally:
        await offline.stop()
    assert missing["error"]["data"]["code"] == "OFFLINE_NOT_CACHED"
    assert len(server.requests) == 1
