"""A blocking wrapper around the asyncio client, for scripts and programs without an event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from diffusion_sidecar_protocol.types import (
    DiffusionProgress,
    DiffusionStats,
    DownloadProgress,
    ListModelsResult,
    UpscaleProgress,
    UpscaleStats,
    VideoPreview,
    VideoProgress,
)

from .client import FileInput, ImageInput, Preview, Sidecar, VideoClip

T = TypeVar("T")


class SyncSidecar:
    """Runs a `Sidecar` on an event loop in a background thread; every method blocks until done."""

    def __init__(self, command: Sequence[str] | None = None, *, env: Mapping[str, str] | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="diffusion-sidecar-client", daemon=True)
        self._thread.start()
        self._sidecar: Sidecar = self._run(Sidecar.start(command, env=env))

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def load_model(
        self,
        model_path: FileInput,
        model_config: Mapping[str, Any] | None = None,
        on_download: Callable[[DownloadProgress], None] | None = None,
    ) -> str:
        """Load a model; `on_download` is called (in the client's thread) for each `download/progress`."""
        return self._run(self._sidecar.load_model(model_path, model_config, on_download=on_download))

    def diffusion(
        self,
        on_progress: Callable[[DiffusionProgress], None] | None = None,
        on_preview: Callable[[Preview], None] | None = None,
        **params: Any,
    ) -> tuple[list[bytes], DiffusionStats]:
        """Generate; `on_progress` and `on_preview` are called (in the client's thread) for each
        tick and each preview (with `preview_method`)."""

        async def run() -> tuple[list[bytes], DiffusionStats]:
            call = self._sidecar.diffusion(**params)

            async def ticks() -> None:
                async for tick in call.progress_stream:
                    if on_progress is not None:
                        on_progress(tick)

            async def previews() -> None:
                async for preview in call.preview_stream:
                    if on_preview is not None:
                        on_preview(preview)

            await asyncio.gather(ticks(), previews())
            return await call.outputs, await call.stats

        return self._run(run())

    def upscale(
        self,
        model_id: str,
        image: ImageInput,
        *,
        on_progress: Callable[[UpscaleProgress], None] | None = None,
        **params: Any,
    ) -> tuple[bytes, UpscaleStats]:
        """Upscale an image (file bytes or a path); `on_progress` is called (in the client's thread) for each tile."""
        return self._run(self._sidecar.upscale(model_id, image, on_progress=on_progress, **params))

    def video(
        self,
        model_id: str,
        prompt: str,
        *,
        on_progress: Callable[[VideoProgress], None] | None = None,
        on_preview: Callable[[VideoPreview], None] | None = None,
        **params: Any,
    ) -> VideoClip:
        """A clip (see `Sidecar.video`); the callbacks are called in the client's thread."""
        return self._run(self._sidecar.video(model_id, prompt, on_progress=on_progress, on_preview=on_preview, **params))

    def unload_model(self, model_id: str) -> None:
        self._run(self._sidecar.unload_model(model_id))

    def list_models(self) -> ListModelsResult:
        return self._run(self._sidecar.list_models())

    def close(self) -> int:
        try:
            return self._run(self._sidecar.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> SyncSidecar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
