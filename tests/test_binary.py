"""What only the frozen binary can get wrong: unpacking itself once into the cache and running from
there. And `--version`, which both launchers must answer alike.
"""

from __future__ import annotations

import base64
import filecmp
import hashlib
import json
import os
import subprocess
import time
from importlib import metadata
from io import BytesIO
from pathlib import Path

import pytest
from diffusion_sidecar_client import Sidecar, SidecarError
from PIL import Image

from sidecar import __version__
from sidecar.backend.frozen import BUNDLED_LIBRARY
from sidecar.synth.kinds import write
from tests.harness import RawSidecar, descendant_pids, kill, wait_gone, worker_pids
from tests.http_server import LoopbackServer, Route, self_signed_certificate

pytestmark = pytest.mark.anyio


async def test_version_names_the_sidecar_the_binding_and_the_native_library(sidecar_command: list[str]) -> None:
    printed = subprocess.run([*sidecar_command, "--version"], capture_output=True, text=True, check=True).stdout
    raw = await RawSidecar.start(command=sidecar_command)
    try:
        backend = (await raw.call("initialize"))["result"]["backend"]
    finally:
        await raw.stop()
    assert printed.splitlines() == [
        f"diffusion-sidecar {__version__}",
        f"stable-diffusion-cpp-python {backend['bindingVersion']}",
        f"stable-diffusion.cpp {backend['nativeVersion']} (commit {backend['nativeCommit']})",
    ]
    assert backend["bindingVersion"] == metadata.version("stable-diffusion-cpp-python")


def _cache(folder: Path) -> dict[str, str]:
    return {**os.environ, "DIFFUSION_SIDECAR_CACHE": str(folder)}


def _bundle(cache: Path) -> Path:
    (folder,) = (cache / "binary").iterdir()  # one build: one folder, and no unpacking left half done
    assert (folder / "COMPLETE").exists()
    return folder


async def test_the_binary_unpacks_once_and_becomes_the_program_it_unpacked(
    frozen_binary: Path, synthetic_model: str, tmp_path: Path
) -> None:
    cache = _cache(tmp_path)
    sidecar = await Sidecar.start([str(frozen_binary)], env=cache)
    await sidecar.initialize()  # the backend probe, started with the front, has ended by its answer
    await sidecar.load_model(synthetic_model)
    await sidecar.load_model(synthetic_model, {"threads": 1})
    folder = _bundle(tmp_path)
    # No launcher process in between: the pid the host spawned serves, from the unpacked copy.
    assert Path(f"/proc/{sidecar.pid}/exe").resolve() == (folder / "diffusion-sidecar").resolve()
    library = folder.joinpath("_internal", *BUNDLED_LIBRARY)
    workers = worker_pids(sidecar.pid)
    assert len(workers) == 2
    for pid in workers:
        assert str(library) in Path(f"/proc/{pid}/maps").read_text()
    assert await sidecar.close() == 0
    marker = folder / "COMPLETE"
    os.utime(marker, ns=(0, 0))
    unpacked = {path: path.stat().st_mtime_ns for path in folder.rglob("*") if path != marker}
    again = await Sidecar.start([str(frozen_binary)], env=cache)
    await again.initialize()
    assert await again.close() == 0
    assert _bundle(tmp_path) == folder
    assert {path: path.stat().st_mtime_ns for path in folder.rglob("*") if path != marker} == unpacked, "unpacked twice"
    assert marker.stat().st_mtime_ns > 0, "the launch did not mark its build as used"


def test_a_new_build_removes_the_builds_left_unused_for_a_week(frozen_binary: Path, tmp_path: Path) -> None:
    builds = tmp_path / "binary"
    old, recent, died_unpacking = builds / "0.1.0-old", builds / "0.1.9-recent", builds / ".unpacking-x1y2z3"
    for folder in (old, recent, died_unpacking):
        folder.mkdir(parents=True)
    (old / "COMPLETE").touch()
    (recent / "COMPLETE").touch()
    eight_days_ago = time.time() - 8 * 24 * 3600
    os.utime(old / "COMPLETE", (eight_days_ago, eight_days_ago))
    os.utime(died_unpacking, (eight_days_ago, eight_days_ago))
    subprocess.run([frozen_binary, "--help"], env=_cache(tmp_path), capture_output=True, check=True)
    (new,) = set(builds.iterdir()) - {recent}
    assert (new / "COMPLETE").exists() and recent.exists()


async def test_a_half_unpacked_folder_is_unpacked_again(frozen_binary: Path, tmp_path: Path) -> None:
    """As a launch killed while unpacking, or a disk cleaner, may leave it."""
    subprocess.run([frozen_binary, "--help"], env=_cache(tmp_path), capture_output=True, check=True)
    folder = _bundle(tmp_path)
    (folder / "COMPLETE").unlink()
    library = folder.joinpath("_internal", *BUNDLED_LIBRARY)
    library.unlink()
    async with await Sidecar.start([str(frozen_binary)], env=_cache(tmp_path)) as sidecar:
        assert (await sidecar.initialize()).backend.cpuVariant
    assert _bundle(tmp_path) == folder and library.exists()


def test_a_cache_folder_it_cannot_write_fails_on_stderr_only(frozen_binary: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_bytes(b"")
    ran = subprocess.run([frozen_binary], env=_cache(blocked / "cache"), capture_output=True)
    assert ran.returncode == 127 and ran.stdout == b""
    assert f"cannot create {blocked / 'cache'}" in ran.stderr.decode()


async def test_killing_the_binary_ends_its_workers(frozen_binary: Path, synthetic_model: str) -> None:
    sidecar = await Sidecar.start([str(frozen_binary)])
    await sidecar.initialize()  # the backend probe, started with the front, has ended by its answer
    await sidecar.load_model(synthetic_model)
    below = descendant_pids(sidecar.pid)
    assert len(below) == 1
    kill(sidecar.pid)  # SIGKILL: the sidecar can clean up nothing itself
    assert all(wait_gone(pid, timeout=2) for pid in below)
    await sidecar.close()


def _picture(format: str, size: int = 64) -> bytes:
    buffer = BytesIO()
    Image.radial_gradient("L").resize((size, size)).convert("RGB").save(buffer, format=format)
    return buffer.getvalue()


async def test_every_capability_runs_in_the_binary(
    frozen_binary: Path, synthetic_model: str, synthetic_flux: Path, synthetic_sd1_single: str, tmp_path: Path
) -> None:
    """Most end-to-end files run on the Python launcher only (conftest.py: `python_command`): the
    binary runs the same Python code and native library. What packaging alone can break is code
    imported late, which PyInstaller may leave out: image decoders, the worker's LoRA, upscaler,
    hires and preview code, the DiT header check. Each runs here once, through the binary."""
    lora, esrgan, taesd = (write(kind, tmp_path / f"{kind}.safetensors") for kind in ("lora", "esrgan", "taesd"))
    small = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 1, "seed": 5}
    async with await Sidecar.start([str(frozen_binary)]) as sidecar:
        sd1 = await sidecar.load_model(synthetic_model, {"taesdPath": str(taesd), "upscalerPath": str(esrgan)})
        call = sidecar.diffusion(modelId=sd1, **small, preview_method="tae", lora=str(lora), upscale=True)
        previews = [preview async for preview in call.preview_stream]
        (upscaled,) = await call.outputs
        assert [p.step for p in previews] == [1] and Image.open(BytesIO(upscaled)).size == (256, 256)
        assert "<lora:lora:1>" in Image.open(BytesIO(upscaled)).text["parameters"]
        for format in ("WEBP", "JPEG", "GIF", "BMP"):
            call = sidecar.diffusion(modelId=sd1, **small, init_image=_picture(format), mask_image=_picture("PNG"))
            assert len(await call.outputs) == 1, format
        hires = {"scale": 2, "steps": 1, "upscaler": "model"}
        (fixed,) = await sidecar.diffusion(modelId=sd1, **small, hires=hires).outputs
        assert Image.open(BytesIO(fixed)).size == (128, 128)
        upscaler = await sidecar.load_model(str(esrgan))
        alone, _ = await sidecar.upscale(upscaler, _picture("PNG", 16))
        assert Image.open(BytesIO(alone)).size == (64, 64)
        with pytest.raises(SidecarError, match="text encoder"):
            await sidecar.load_model(str(synthetic_flux / "diffusion.safetensors"))
        flux = await sidecar.load_model(
            str(synthetic_flux / "diffusion.safetensors"),
            {"clipLPath": str(synthetic_flux / "clip_l.safetensors"), "vaePath": str(synthetic_flux / "vae.safetensors")},
        )
        (picture,) = await sidecar.diffusion(modelId=flux, **small, cfg_scale=1, ref_images=[_picture("PNG")]).outputs
        assert Image.open(BytesIO(picture)).size == (64, 64)
        # A conversion in a worker of its own, and its GGUF loaded; a single-file checkpoint, hashed.
        gguf = tmp_path / "flux-q8_0.gguf"
        params = {"modelPath": str(synthetic_flux / "diffusion.safetensors"), "outputPath": str(gguf), "type": "q8_0"}
        assert json.loads(bytes(await sidecar.request("convert", params)))["weightTypes"]["q8_0"] == 13
        companions = {"clipLPath": str(synthetic_flux / "clip_l.safetensors"), "vaePath": str(synthetic_flux / "vae.safetensors")}
        quantized = await sidecar.load_model_result(str(gguf), companions)
        assert quantized.weightTypes["q8_0"] == 13
        await sidecar.unload_model(quantized.modelId)
        single = await sidecar.load_model(synthetic_sd1_single)
        (picture,) = await sidecar.diffusion(modelId=single, **small).outputs
        assert "Model hash: " in Image.open(BytesIO(picture)).text["parameters"]
        await sidecar.unload_model(single)
        with pytest.raises(SidecarError, match="takes `diffusion`, not `video`"):
            await sidecar.video(sd1, "a lighthouse", width=64, height=64)
        assert {model.modelId for model in (await sidecar.list_models()).models} == {sd1, upscaler, flux}


def test_the_binary_writes_the_synthetic_model_byte_for_byte(
    frozen_binary: Path, synthetic_model: str, tmp_path: Path
) -> None:
    cached = Path(synthetic_model)
    for kept in ("unet", "text_encoder"):  # complete files are kept: the binary writes only the VAE
        (tmp_path / kept).symlink_to(cached / kept)
    written = subprocess.run([frozen_binary, "synth-model", tmp_path], capture_output=True, text=True, check=True)
    assert written.stdout.strip() == str(tmp_path.resolve())
    vae = "vae/diffusion_pytorch_model.safetensors"
    assert filecmp.cmp(tmp_path / vae, cached / vae, shallow=False)


async def test_the_binary_downloads_over_https_from_a_hugging_face_endpoint(
    frozen_binary: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a frozen build can leave out of the download path: httpx and its lazy imports, TLS, idna
    (host names), the hf:// route with its token and published SHA-256, a redirect to another host."""
    certificate = self_signed_certificate(tmp_path)
    body = write("esrgan", tmp_path / "esrgan.safetensors").read_bytes()
    endpoint, cdn = LoopbackServer(tls=certificate), LoopbackServer(tls=certificate)
    try:
        cdn.add("/blob", Route(body=body))
        endpoint.add(
            "/org/upscalers/resolve/main/x4/esrgan.safetensors",
            Route(
                status=302,
                location=cdn.url("/blob", host="localhost"),  # another host name, same certificate
                headers={"X-Linked-Etag": f'"{hashlib.sha256(body).hexdigest()}"'},
            ),
        )
        for name, value in {
            "SSL_CERT_FILE": str(certificate[0]), "HF_ENDPOINT": endpoint.url(""), "HF_TOKEN": "hf_test",
            "HF_HOME": str(tmp_path / "hf"),
        }.items():  # fmt: skip
            monkeypatch.setenv(name, value)
        log = tmp_path / "stderr.log"
        raw = await RawSidecar.start(
            "--cache-dir", str(tmp_path / "cache"), command=[str(frozen_binary)], stderr_path=log
        )
        try:
            loaded = await raw.call("loadModel", {"modelPath": "hf://org/upscalers/x4/esrgan.safetensors"})
            assert loaded["result"]["modelFamily"] == "ESRGAN upscaler (x4)", loaded
            upscaled = await raw.call("upscale", {"modelId": loaded["result"]["modelId"], "image": base64.b64encode(_picture("PNG", 16)).decode()})
            assert upscaled["result"]["stats"]["width"] == 64
            phases = [n["phase"] for n in raw.notifications("download/progress", loaded["id"])]
            assert phases[0] == "checking" and phases[-1] == "done"
        finally:
            await raw.stop()
        (asked,) = endpoint.requests
        (fetched,) = cdn.requests
        assert asked.headers["authorization"] == "Bearer hf_test" and "authorization" not in fetched.headers
        assert fetched.headers["host"].startswith("localhost:")
        assert "hf_test" not in log.read_text() and "hf_test" not in repr(raw.messages)  # never logged nor echoed
    finally:
        endpoint.close()
        cdn.close()
