"""13. Downloads: a model file fetched by the sidecar (`loadModel` of its URL, request sent -> its
`done` notification) against `curl` fetching the same file to the same disk, interleaved rounds, from
a loopback server that sends with `sendfile` (so the server is not what limits either). And what the
SHA-256 check costs: hashlib over the same bytes, as a share of the sidecar's download time (the
sidecar hashes while it writes; this is the CPU time that takes, on the event loop's thread pool).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import resource
import shutil
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from diffusion_sidecar_client import default_command

from tests.harness import RawSidecar

from .common import Row, round_ratios, summary

TITLE = "downloads"
SIZE = 256 * 1024 * 1024
ROUNDS = 4


def _server(path: Path) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            size = path.stat().st_size
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.send_header("ETag", '"bench"')
            self.end_headers()
            with open(path, "rb") as file:
                self.connection.sendfile(file)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _cpu_seconds(pid: int) -> float:
    """User + system time of a process, all its threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _curl(url: str, target: Path) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec("curl", "-sS", "--fail", "-o", str(target), url)
    assert await process.wait() == 0, "curl failed"
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    target.unlink()
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


async def _sidecar(raw: RawSidecar, url: str) -> tuple[float, float, float]:
    cpu = _cpu_seconds(raw.process.pid)
    request_id = await raw.send("loadModel", {"modelPath": url})
    done = await raw.wait_for(
        lambda m: (
            m.get("method") == "download/progress"
            and m["params"]["requestId"] == request_id
            and m["params"]["phase"] == "done"
        ),
        timeout=600,
    )
    cpu = _cpu_seconds(raw.process.pid) - cpu
    await raw.response(request_id, timeout=600)  # the load itself then fails: the bytes are no model
    notes = raw.notifications("download/progress", request_id)
    received = next(n["elapsedMs"] for n in notes if n["phase"] == "verifying") / 1000
    return done["params"]["elapsedMs"] / 1000, cpu, received


async def measure(model: str) -> dict:
    del model
    if shutil.which("curl") is None:
        return {"skipped": "curl is not installed"}
    with tempfile.TemporaryDirectory() as folder:
        served = Path(folder) / "model.safetensors"
        with open(served, "wb") as file:
            for _ in range(SIZE // (1 << 20)):
                file.write(os.urandom(1 << 20))
        hash_started = time.perf_counter()
        with open(served, "rb") as file:
            digest = hashlib.sha256()
            while chunk := file.read(1 << 20):
                digest.update(chunk)
        hash_seconds = time.perf_counter() - hash_started
        server = _server(served)
        url = f"http://127.0.0.1:{server.server_address[1]}/model.safetensors"
        cache = Path(folder) / "cache"
        raw = await RawSidecar.start("--allow-http", "--cache-dir", str(cache), command=default_command())
        curl_times, sidecar_times, curl_cpu, sidecar_cpu, sidecar_received = [], [], [], [], []
        try:
            for index in range(ROUNDS):
                # Taking turns going first; each round a new URL, so no cache is hit.
                for first in ((index % 2 == 0), (index % 2 == 1)):
                    if first:
                        wall, cpu = await _curl(f"{url}?round={index}", Path(folder) / "curl.bin")
                        curl_times.append(wall)
                        curl_cpu.append(cpu)
                    else:
                        wall, cpu, received = await _sidecar(raw, f"{url}?round={index}")
                        sidecar_times.append(wall)
                        sidecar_received.append(received)
                        sidecar_cpu.append(cpu)
                shutil.rmtree(cache / "models", ignore_errors=True)
        finally:
            await raw.stop()
            server.shutdown()
    return {
        "bytes": SIZE,
        "curl_s": summary(curl_times),
        "sidecar_s": summary(sidecar_times),
        "sidecar_over_curl": round_ratios(sidecar_times, curl_times),
        "received_over_curl": round_ratios(sidecar_received, curl_times),
        "fsync_share": summary([1 - received / wall for received, wall in zip(sidecar_received, sidecar_times)]),
        "curl_cpu_s": summary(curl_cpu),
        "sidecar_cpu_s": summary(sidecar_cpu),
        "sha256_s": round(hash_seconds, 3),
        "sha256_mb_per_s": round(SIZE / hash_seconds / 1e6, 1),
        "sha256_share_of_download": round(hash_seconds / summary(sidecar_times)["median"], 3),
    }


def rows(result: dict) -> list[Row]:
    if "skipped" in result:
        return [Row("download throughput", result["skipped"])]
    mb = result["bytes"] / 1e6
    ratio, curl, sidecar = result["sidecar_over_curl"], result["curl_s"]["median"], result["sidecar_s"]["median"]
    received = result["received_over_curl"]["median"]
    cpu = result["sidecar_cpu_s"]["median"] / result["curl_cpu_s"]["median"]
    return [
        Row(
            f"download of {mb:.0f} MB from a loopback server: sidecar (loadModel -> done) / curl to the same disk, "
            f"{result['curl_s']['n']} interleaved rounds",
            f"{ratio['median']:.2f} (sidecar {mb / sidecar:.0f} MB/s, curl {mb / curl:.0f} MB/s; rounds "
            f"{ratio['min']:.2f}-{ratio['max']:.2f}); bytes all received and written: {received:.2f}; the rest is "
            f"the fsync before the rename ({result['fsync_share']['median']:.0%}); CPU time {cpu:.1f}x curl's",
            "<= 1.5",
        ),
        Row(
            "SHA-256 of the same file (hashlib), as a share of the sidecar's download",
            f"{result['sha256_share_of_download']:.0%} ({result['sha256_mb_per_s']:.0f} MB/s; done while writing, on a thread)",
        ),
    ]
