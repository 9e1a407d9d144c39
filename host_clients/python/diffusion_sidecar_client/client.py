"""An asyncio client that spawns the sidecar and mirrors the QVAC `diffusion()` API in Python."""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import re
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Generic, TypeVar

import msgspec
from diffusion_sidecar_protocol import PROTOCOL_VERSION, __version__
from diffusion_sidecar_protocol.types import (
    CancelResult,
    DiffusionPreview,
    DiffusionProgress,
    DiffusionResult,
    DiffusionStats,
    DownloadProgress,
    FileSource,
    InitializeResult,
    ListModelsResult,
    LoadModelProgress,
    LoadModelResult,
    UpscaleProgress,
    UpscaleResult,
    UpscaleStats,
    VideoPreview,
    VideoProgress,
    VideoResult,
)

from .discovery import default_command

# Image responses are large single lines; the default 64 KiB line limit of asyncio would refuse them.
LINE_LIMIT = 1 << 30
PREVIEW_BUFFER = 8
"""Previews kept for a reader of `preview_stream` that falls behind (or never reads): the oldest go."""
PROGRESS_BUFFER = 64
"""`download/progress` and `loadModel/progress` notifications kept for a reader that falls behind (or
never reads): the oldest go, the last ones (each file's `done` or `cached`) always stay."""
FileInput = str | FileSource | Mapping[str, Any]
"""A file param: a local path, a URL (`https://`, `hf://org/repo[@revision]/path`), or a source with
its checks (`FileSource`, or the same as a dict: `{"src", "sha256", "size", "name", "headers"}`)."""
IMAGE_PARAMS = ("init_image", "mask_image", "control_image", "end_image")
"""`diffusion` and `video` params that carry an image file."""
IMAGE_LIST_PARAMS = ("ref_images",)
"""`diffusion` params that carry a list of image files."""
ImageInput = str | bytes | bytearray | memoryview | os.PathLike
"""An image param: file bytes, or a path to read them from; a str is sent as is (base64 or data URL)."""


def encode_image(image: ImageInput) -> str:
    """An image param as the protocol carries it: base64 of the file's bytes."""
    if isinstance(image, str):
        return image
    if isinstance(image, os.PathLike):
        with open(image, "rb") as file:
            image = file.read()
    return base64.b64encode(image).decode("ascii")


def _encoded(key: str, value: Any) -> Any:
    if key in IMAGE_PARAMS:
        return encode_image(value)
    if key in IMAGE_LIST_PARAMS and isinstance(value, (list, tuple)):
        return [encode_image(image) for image in value]
    return value


T = TypeVar("T")

_SURROGATE = re.compile("[\ud800-\udfff]")


def _encode(message: dict[str, Any]) -> bytes:
    """The message as JSON; a lone surrogate in a string (text cut from UTF-16) is sent as U+FFFD.

    UTF-8 has no form for a lone surrogate, so msgspec refuses it; UTF-8 encoders replace it.
    """
    try:
        return msgspec.json.encode(message)
    except UnicodeEncodeError:
        return msgspec.json.encode(_well_formed(msgspec.to_builtins(message)))


def _well_formed(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_well_formed(key): _well_formed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_well_formed(item) for item in value]
    return value


class SidecarError(Exception):
    """An error response: the JSON-RPC `code`, the stable `data.code` string, and all of `data`."""

    def __init__(self, code: int, message: str, data: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = dict(data or {})
        self.data_code: str | None = self.data.get("code")


class SidecarExited(SidecarError):
    """The sidecar process ended while a call was waiting for it."""

    def __init__(self, returncode: int | None) -> None:
        super().__init__(-32099, f"The sidecar exited (status {returncode}) before answering", {"code": "SIDECAR_EXITED"})


class ProtocolMismatch(SidecarError):
    """The sidecar speaks another major version of the protocol than this client: `start` refuses it."""

    def __init__(self, protocol_version: str, server_version: str) -> None:
        super().__init__(
            -32098,
            f"The sidecar (diffusion-sidecar {server_version or '?'}) speaks protocol {protocol_version or '?'}, "
            f"this client (diffusion-sidecar-client {__version__}) speaks {PROTOCOL_VERSION}: their major versions "
            "must match. Install the client and the sidecar of one release.",
            {
                "code": "PROTOCOL_MISMATCH",
                "protocolVersion": protocol_version,
                "serverVersion": server_version,
                "clientProtocolVersion": PROTOCOL_VERSION,
            },
        )
        self.protocol_version = protocol_version
        self.server_version = server_version


def _major(version: str) -> str:
    return version.split(".", 1)[0]


class _Handshake(msgspec.Struct):
    """What the version check reads of `initialize`: lenient, as another major version may differ in the rest."""

    serverVersion: str = ""
    protocolVersion: str = ""


class _Call:
    """One request in flight: its answer, and the notifications that name it."""

    def __init__(self, on_notification: Callable[[str, msgspec.Raw], None] | None) -> None:
        self.answer: asyncio.Future[msgspec.Raw] = asyncio.get_running_loop().create_future()
        self.on_notification = on_notification


_ABSENT = msgspec.Raw(b"")


class _Envelope(msgspec.Struct):
    id: int | str | None = None
    method: str | None = None
    params: msgspec.Raw = _ABSENT  # msgspec.Raw cannot sit in a union: an empty one means absent
    result: msgspec.Raw = _ABSENT
    error: dict[str, Any] | None = None


class _RequestIdOnly(msgspec.Struct):
    requestId: int | str | None = None


@dataclass(frozen=True)
class Preview:
    """A `diffusion/preview` notification with its PNG decoded to bytes."""

    image: int
    step: int
    totalSteps: int
    width: int
    height: int
    png: bytes

    @classmethod
    def decode(cls, raw: msgspec.Raw) -> Preview:
        p = msgspec.json.decode(raw, type=DiffusionPreview)
        return cls(p.image, p.step, p.totalSteps, p.width, p.height, base64.b64decode(p.png))


class _Recent(Generic[T]):
    """The most recent items (previews, progress), `limit` at most, until the call ends; read in order."""

    def __init__(self, limit: int = PREVIEW_BUFFER) -> None:
        self._items: deque[T] = deque(maxlen=limit)
        self._ended = False
        self._arrived = asyncio.Event()

    def push(self, item: T) -> None:
        self._items.append(item)
        self._arrived.set()

    def end(self) -> None:
        self._ended = True
        self._arrived.set()

    async def stream(self) -> AsyncIterator[T]:
        while True:
            while self._items:
                yield self._items.popleft()
            if self._ended:
                return
            self._arrived.clear()
            await self._arrived.wait()


class DiffusionCall:
    """What `diffusion()` returns at once, as the seed API does: a stream of ticks, then results."""

    def __init__(
        self,
        sidecar: Sidecar,
        request_id: int,
        answer: asyncio.Future[DiffusionResult],
        ticks: asyncio.Queue[DiffusionProgress | None],
        previews: _Recent[Preview] | None = None,
        downloads: _Recent[DownloadProgress] | None = None,
    ) -> None:
        self._sidecar = sidecar
        self.request_id = request_id
        """The JSON-RPC id of this generation, which `cancel` names."""
        self._answer = answer
        self._ticks = ticks
        self._previews = previews or _Recent()
        self._downloads = downloads or _Recent(PROGRESS_BUFFER)
        loop = asyncio.get_running_loop()
        self.outputs: asyncio.Future[list[bytes]] = loop.create_future()
        self.stats: asyncio.Future[DiffusionStats] = loop.create_future()
        self.seeds: asyncio.Future[list[int]] = loop.create_future()
        self.sampling: asyncio.Future[tuple[str, str]] = loop.create_future()
        """The sampling method and scheduler the images were made with (the model's defaults where omitted)."""
        answer.add_done_callback(self._settle)

    def _settle(self, answer: asyncio.Future[DiffusionResult]) -> None:
        futures = (self.outputs, self.stats, self.seeds, self.sampling)
        if answer.cancelled() or answer.exception() is not None:
            error = SidecarError(-32800, "cancelled") if answer.cancelled() else answer.exception()
            for future in futures:
                future.set_exception(error)  # type: ignore[arg-type]
                # A caller may await only one of the three; the others must not warn as unhandled.
                future.add_done_callback(lambda f: f.exception())
        else:
            result = answer.result()
            self.outputs.set_result([base64.b64decode(image) for image in result.outputs])
            self.stats.set_result(result.stats)
            self.seeds.set_result(result.seeds)
            self.sampling.set_result((result.sampling_method, result.scheduler))
        self._ticks.put_nowait(None)
        self._previews.end()
        self._downloads.end()

    async def cancel(self) -> bool:
        """Cancel this generation; True if it was still pending. Its outputs then raise CANCELLED."""
        return await self._sidecar.cancel(request_id=self.request_id) > 0

    @property
    def progress_stream(self) -> AsyncIterator[DiffusionProgress]:
        return self._progress()

    async def _progress(self) -> AsyncIterator[DiffusionProgress]:
        while (tick := await self._ticks.get()) is not None:
            yield tick
        self._ticks.put_nowait(None)  # a second iteration ends at once too

    @property
    def download_stream(self) -> AsyncIterator[DownloadProgress]:
        """`download/progress` of the request's LoRAs given as URLs, ending with the call."""
        return self._downloads.stream()

    @property
    def preview_stream(self) -> AsyncIterator[Preview]:
        """Previews as they come (with `preview_method`), ending with the call. Only the
        PREVIEW_BUFFER most recent wait for a slow reader; a call never read holds no more."""
        return self._previews.stream()


@dataclass(frozen=True)
class VideoClip:
    """A `video` result with its files decoded: each frame's PNG bytes and the animated WebP's."""

    frames: list[bytes]
    animation: bytes
    result: VideoResult
    """Everything else: fps, seed, stats, the sampling method and scheduler."""


class LoadCall:
    """What `load()` returns at once: the downloads of its sources as they go, then the model.

    `await call` (or `await call.result`) gives the `LoadModelResult`.
    """

    def __init__(
        self,
        sidecar: Sidecar,
        request_id: int,
        answer: asyncio.Future[LoadModelResult],
        downloads: _Recent[DownloadProgress],
        ticks: _Recent[LoadModelProgress],
    ) -> None:
        self._sidecar = sidecar
        self.request_id = request_id
        """The JSON-RPC id of this load, which `cancel` names."""
        self.result = answer
        self._downloads, self._ticks = downloads, ticks

        def ended(_: asyncio.Future[LoadModelResult]) -> None:
            downloads.end()
            ticks.end()

        answer.add_done_callback(ended)

    @property
    def download_stream(self) -> AsyncIterator[DownloadProgress]:
        """`download/progress` per file as it comes (each with the request's totals: one bar for
        all files), ending with the call; a reader that falls behind loses the oldest, never a
        file's last one (`done` or `cached`) unless PROGRESS_BUFFER newer ones followed it."""
        return self._downloads.stream()

    @property
    def progress_stream(self) -> AsyncIterator[LoadModelProgress]:
        """`loadModel/progress` (tensors loaded) as it comes, ending with the call."""
        return self._ticks.stream()

    async def cancel(self) -> bool:
        """Cancel this load (its downloads stop once no other load wants them, keeping what was
        downloaded for a resume); True if it was still pending."""
        return await self._sidecar.cancel(request_id=self.request_id) > 0

    def __await__(self):  # type: ignore[no-untyped-def]
        return self.result.__await__()


class Sidecar:
    """A running sidecar process. Start with `await Sidecar.start()`; end with `await close()`."""

    server_version: str
    """The sidecar's version, as `initialize` reported it when the client started."""
    protocol_version: str
    """The protocol version the sidecar speaks (`initialize`): the same major version as this client's."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._ids = itertools.count(1)
        self._calls: dict[int, _Call] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def start(
        cls,
        command: Sequence[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        stderr: IO[Any] | int | None = None,
    ) -> Sidecar:
        """Spawn the sidecar and check its protocol version (`initialize`); its stderr is ours by default.

        With no `command`, `default_command()` finds it (looking at `env` over this process's
        environment). Raises `SidecarNotFound` when there is none, `ProtocolMismatch` (after ending
        it) when it speaks another major version of the protocol.
        """
        environment = {**os.environ, **env} if env else None
        argv = list(command) if command else default_command(environment)
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env=environment,
            limit=LINE_LIMIT,
        )
        sidecar = cls(process)
        try:
            await sidecar._handshake()
        except BaseException:
            await sidecar._abandon()
            raise
        return sidecar

    async def _handshake(self) -> None:
        reported = msgspec.json.decode(await self.request("initialize", {}), type=_Handshake)
        self.server_version, self.protocol_version = reported.serverVersion, reported.protocolVersion
        if _major(reported.protocolVersion) != _major(PROTOCOL_VERSION):
            raise ProtocolMismatch(reported.protocolVersion, reported.serverVersion)

    async def _abandon(self) -> None:
        """End a sidecar this client will not use (SIGTERM: it shuts down as on end of input)."""
        if self._process.returncode is None:
            self._process.terminate()
        await self._process.wait()
        await self._reader

    @property
    def pid(self) -> int:
        return self._process.pid

    async def request(
        self,
        method: str,
        params: Any = None,
        on_notification: Callable[[str, msgspec.Raw], None] | None = None,
    ) -> msgspec.Raw:
        """Send one request; return the raw `result`, or raise SidecarError with its error."""
        request_id = next(self._ids)
        return await self._answer(request_id, self._send_now(request_id, method, params, on_notification))

    def _send_now(
        self,
        request_id: int,
        method: str,
        params: Any,
        on_notification: Callable[[str, msgspec.Raw], None] | None,
    ) -> _Call:
        """Write the request before returning: requests reach the sidecar in the order they were made."""
        if self._process.returncode is not None or self._process.stdin is None:
            raise SidecarExited(self._process.returncode)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        call = self._calls[request_id] = _Call(on_notification)
        self._process.stdin.write(_encode(message) + b"\n")
        return call

    async def _answer(self, request_id: int, call: _Call) -> msgspec.Raw:
        try:
            try:
                await self._process.stdin.drain()  # type: ignore[union-attr]
            except (BrokenPipeError, ConnectionResetError):
                raise SidecarExited(await self._process.wait()) from None
            return await call.answer
        finally:
            self._calls.pop(request_id, None)

    async def _read(self) -> None:
        assert self._process.stdout is not None
        returncode = None
        try:
            while line := await self._process.stdout.readline():
                try:
                    envelope = msgspec.json.decode(line, type=_Envelope)
                except msgspec.MsgspecError as error:
                    print(f"diffusion-sidecar client: skipped a line that is not JSON-RPC ({error})", file=sys.stderr)
                    continue
                self._route(envelope)
            returncode = await self._process.wait()  # stdout closed: the sidecar is exiting
        finally:
            # Whatever is still waiting will never be answered: fail it now instead of hanging.
            for call in self._calls.values():
                if not call.answer.done():
                    call.answer.set_exception(SidecarExited(returncode))

    def _route(self, envelope: _Envelope) -> None:
        if envelope.method is not None:  # a notification about one of our requests
            owner = msgspec.json.decode(envelope.params or b"{}", type=_RequestIdOnly).requestId
            call = self._calls.get(owner) if isinstance(owner, int) else None
            if call is not None and call.on_notification is not None:
                call.on_notification(envelope.method, envelope.params)
            return
        call = self._calls.get(envelope.id) if isinstance(envelope.id, int) else None
        if call is None or call.answer.done():
            return
        if envelope.error is not None:
            error = envelope.error
            call.answer.set_exception(SidecarError(error.get("code", -32603), error.get("message", ""), error.get("data")))
        else:
            call.answer.set_result(envelope.result or msgspec.Raw(b"null"))

    # --- the seed API ---------------------------------------------------------------------------

    async def initialize(self) -> InitializeResult:
        return msgspec.json.decode(await self.request("initialize", {}), type=InitializeResult)

    async def load_model(
        self,
        model_path: FileInput,
        model_config: Mapping[str, Any] | None = None,
        on_progress: Callable[[LoadModelProgress], None] | None = None,
        on_download: Callable[[DownloadProgress], None] | None = None,
    ) -> str:
        """Load a model and return its id. Any file (`model_path`, the companion files in
        `model_config`) may be a source (see `FileInput`); `on_download` gets its progress."""
        return (await self.load_model_result(model_path, model_config, on_progress, on_download)).modelId

    async def load_model_result(
        self,
        model_path: FileInput,
        model_config: Mapping[str, Any] | None = None,
        on_progress: Callable[[LoadModelProgress], None] | None = None,
        on_download: Callable[[DownloadProgress], None] | None = None,
    ) -> LoadModelResult:
        return await self.load(model_path, model_config, on_progress=on_progress, on_download=on_download)

    def load(
        self,
        model_path: FileInput,
        model_config: Mapping[str, Any] | None = None,
        *,
        on_progress: Callable[[LoadModelProgress], None] | None = None,
        on_download: Callable[[DownloadProgress], None] | None = None,
    ) -> LoadCall:
        """Start a load; the call streams its downloads (`download_stream`) and gives the result."""
        downloads: _Recent[DownloadProgress] = _Recent(PROGRESS_BUFFER)
        ticks: _Recent[LoadModelProgress] = _Recent(PROGRESS_BUFFER)

        def notified(method: str, raw: msgspec.Raw) -> None:
            if method == "download/progress":
                download = msgspec.json.decode(raw, type=DownloadProgress)
                downloads.push(download)
                if on_download is not None:
                    on_download(download)
            elif method == "loadModel/progress":
                tick = msgspec.json.decode(raw, type=LoadModelProgress)
                ticks.push(tick)
                if on_progress is not None:
                    on_progress(tick)

        params = {"modelPath": model_path, "modelConfig": dict(model_config or {})}
        request_id = next(self._ids)
        loop = asyncio.get_running_loop()
        try:
            call = self._send_now(request_id, "loadModel", params, notified)
        except SidecarExited as exited:
            failed: asyncio.Future[LoadModelResult] = loop.create_future()
            failed.set_exception(exited)
            return LoadCall(self, request_id, failed, downloads, ticks)

        async def answer() -> LoadModelResult:
            return msgspec.json.decode(await self._answer(request_id, call), type=LoadModelResult)

        return LoadCall(self, request_id, loop.create_task(answer()), downloads, ticks)

    def diffusion(self, **params: Any) -> DiffusionCall:
        """Start a generation; takes the seed's `DiffusionClientParams` as keyword arguments.

        `init_image`, `mask_image`, `control_image` and each of `ref_images` take file bytes or a path (see `ImageInput`).
        """
        params = {key: _encoded(key, value) for key, value in params.items()}
        ticks: asyncio.Queue[DiffusionProgress | None] = asyncio.Queue()
        previews: _Recent[Preview] = _Recent()
        downloads: _Recent[DownloadProgress] = _Recent(PROGRESS_BUFFER)

        def notified(method: str, raw: msgspec.Raw) -> None:
            if method == "diffusion/preview":
                previews.push(Preview.decode(raw))
            elif method == "download/progress":
                downloads.push(msgspec.json.decode(raw, type=DownloadProgress))
            elif method == "diffusion/progress":
                ticks.put_nowait(msgspec.json.decode(raw, type=DiffusionProgress))

        request_id = next(self._ids)
        loop = asyncio.get_running_loop()
        try:
            call = self._send_now(request_id, "diffusion", params, notified)
        except SidecarExited as exited:
            failed: asyncio.Future[DiffusionResult] = loop.create_future()
            failed.set_exception(exited)
            return DiffusionCall(self, request_id, failed, ticks, previews, downloads)

        async def answer() -> DiffusionResult:
            return msgspec.json.decode(await self._answer(request_id, call), type=DiffusionResult)

        return DiffusionCall(self, request_id, loop.create_task(answer()), ticks, previews, downloads)

    async def upscale(
        self,
        model_id: str,
        image: ImageInput,
        *,
        repeats: int = 1,
        on_progress: Callable[[UpscaleProgress], None] | None = None,
        **params: Any,
    ) -> tuple[bytes, UpscaleStats]:
        """Upscale an image (file bytes or a path, see `ImageInput`) with an upscaler model; return PNG bytes and stats.

        Each tick's `requestId` is what `cancel(request_id=...)` takes.
        """

        def notified(_method: str, raw: msgspec.Raw) -> None:
            if on_progress is not None:
                on_progress(msgspec.json.decode(raw, type=UpscaleProgress))

        request = {"modelId": model_id, "image": encode_image(image), "repeats": repeats, **params}
        result = msgspec.json.decode(await self.request("upscale", request, notified), type=UpscaleResult)
        return base64.b64decode(result.output), result.stats

    async def video(
        self,
        model_id: str,
        prompt: str,
        *,
        on_progress: Callable[[VideoProgress], None] | None = None,
        on_preview: Callable[[VideoPreview], None] | None = None,
        **params: Any,
    ) -> VideoClip:
        """Generate a clip with a video model (Wan); `init_image` and `end_image` take file bytes or
        a path (see `ImageInput`). Each tick's `requestId` is what `cancel(request_id=...)` takes."""

        def notified(method: str, raw: msgspec.Raw) -> None:
            if method == "video/progress" and on_progress is not None:
                on_progress(msgspec.json.decode(raw, type=VideoProgress))
            elif method == "video/preview" and on_preview is not None:
                on_preview(msgspec.json.decode(raw, type=VideoPreview))

        request = {"modelId": model_id, "prompt": prompt, **{key: _encoded(key, value) for key, value in params.items()}}
        result = msgspec.json.decode(await self.request("video", request, notified), type=VideoResult)
        frames = [base64.b64decode(frame) for frame in result.frames]
        return VideoClip(frames, base64.b64decode(result.animation), result)

    async def cancel(self, *, request_id: int | None = None, model_id: str | None = None) -> int:
        """Cancel one request or every request on a model; return how many were cancelled."""
        params = {"requestId": request_id} if model_id is None else {"modelId": model_id}
        return msgspec.json.decode(await self.request("cancel", params), type=CancelResult).cancelled

    async def unload_model(self, model_id: str) -> None:
        await self.request("unloadModel", {"modelId": model_id})

    async def list_models(self) -> ListModelsResult:
        """Every model loaded or being loaded: its files, state, queue and totals."""
        return msgspec.json.decode(await self.request("listModels", {}), type=ListModelsResult)

    async def close(self) -> int:
        """Ask the sidecar to shut down and wait for it to exit; return its exit status."""
        if self._process.returncode is None:
            try:
                await self.request("shutdown")
            except SidecarExited:
                pass
        if self._process.stdin is not None:
            self._process.stdin.close()
        returncode = await self._process.wait()
        await self._reader
        return returncode

    async def __aenter__(self) -> Sidecar:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
