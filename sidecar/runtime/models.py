"""Loaded models, as the front process sees them: one worker process each, requests in order."""

from __future__ import annotations

import hashlib
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import anyio.abc
import msgspec
from diffusion_sidecar_protocol.types import DiffusionStats, ModelTotals

from ..rpc.errors import SidecarError
from ..worker import devices, messages
from ..worker.process import WorkerExited, WorkerProcess
from .scheduler import Demand


class Ticket:
    """A place in a FifoGate's queue, taken when created; `async with` waits for its turn."""

    def __init__(self, queue: deque[Ticket], next_in_line: bool) -> None:
        self._queue = queue
        self._turn = anyio.Event()
        if next_in_line and queue:
            queue.insert(1, self)
        else:
            queue.append(self)
        if queue[0] is self:
            self._turn.set()

    @property
    def is_due(self) -> bool:
        """Whether it is this ticket's turn (whether or not its holder has gone through yet)."""
        return self._turn.is_set()

    async def __aenter__(self) -> None:
        try:
            await self._turn.wait()
        except BaseException:
            self._leave()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._leave()

    def _leave(self) -> None:
        was_first = self._queue[0] is self
        self._queue.remove(self)
        if was_first and self._queue:
            self._queue[0]._turn.set()


class FifoGate:
    """Lets requests through one at a time, in the order they arrived."""

    def __init__(self) -> None:
        self._queue: deque[Ticket] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def ticket(self, *, next_in_line: bool = False) -> Ticket:
        """Join the queue now (at its end, or right behind the current holder)."""
        return Ticket(self._queue, next_in_line)


# A model whose workers crash this many times in a row (no request answered in between) is unloaded
# instead of reloaded: the crash is in the model or the machine, and reloading would only crash again.
# Counted in requests rather than seconds, so a slow machine and a fast one judge alike.
CRASH_LIMIT = 3


def elapsed_ms(since: float) -> float:
    return round((time.monotonic() - since) * 1000, 3)


@dataclass
class ModelSettings:
    """What the front needs to know about a model to run requests on it."""

    name: str
    """Shown as `Model` in each PNG's parameters."""
    vae_tiling: bool
    files: dict[str, str] = field(default_factory=dict)
    """The files it is loaded from, by the `loadModel` field that named them (for `listModels`)."""
    model_hash: str | None = None
    """Shown as `Model hash` in each PNG's parameters (A1111's short SHA-256); None: not hashed."""


@dataclass(eq=False)
class LoadedModel:
    model_id: str
    load: messages.Load
    """Kept to load the model again into a fresh worker after a cancel."""
    worker: WorkerProcess
    settings: ModelSettings
    family: str
    size_multiple: int
    """Width and height must be multiples of this for the model."""
    load_started: float
    load_ms: float
    gate: FifoGate = field(default_factory=FifoGate)
    stop_reason: SidecarError | None = None
    """Set when the sidecar ends the worker on purpose; pending requests end with this error."""
    on_crash: Callable[[LoadedModel, WorkerProcess, WorkerExited], SidecarError | None] = lambda *_: None
    """Called once per crashed worker; returns the error the model was unloaded with, if it was."""
    reloading: bool = False
    """True while the model is being loaded into a fresh worker (after a cancel or a crash)."""
    crashes: int = 0
    """Worker crashes since a worker last answered a request."""
    total_generation_ms: float = 0.0
    total_steps: int = 0
    total_generations: int = 0
    total_images: int = 0
    total_pixels: int = 0
    upscale_factor: int = 0
    """Scale of the model's upscaler (attached, or the model itself); 0: none."""
    device: str = "CPU"
    """The device its worker runs it on."""
    weight_types: dict[str, int] = field(default_factory=dict)
    """Its tensors per weight type, as stored in its files."""
    video_model: str = ""
    """A video model's own name ("Wan2.1-VACE-1.3B"); empty for image models."""

    @property
    def is_upscaler(self) -> bool:
        """An ESRGAN file loaded on its own: it takes `upscale`, not `diffusion`."""
        return not (self.load.model_path or self.load.diffusion_model_path)

    @property
    def demand(self) -> Demand:
        """What a request on this model asks of the machine: its threads on the CPU; on a GPU the
        whole device (one generation at a time there: each holds its compute buffers in the GPU's
        memory), while CPU jobs keep their own line."""
        if self.device != devices.CPU:
            return Demand(device=self.device)
        return Demand(threads=self.load.n_threads)

    async def request(
        self, message: messages.ToWorker, on_event: Callable[[messages.FromWorker], None]
    ) -> messages.FromWorker:
        worker = self.worker
        try:
            reply = await worker.request(message, on_event)
        except WorkerExited as exited:
            if self.stop_reason is not None and not worker.crashed:
                raise self.stop_reason from None
            # Before this request leaves the queue: the reload must go before the next request.
            unloaded = self.on_crash(self, worker, exited)
            recovery = "it was unloaded: " + unloaded.message if unloaded else "it is being reloaded in a fresh worker"
            raise SidecarError(
                "WORKER_CRASHED",
                f"The worker process of model {self.model_id} died ({exited.describe()}); {recovery}",
                modelId=self.model_id,
                modelReloading=unloaded is None,
                **exited.details(),
            ) from None
        self.crashes = 0
        return reply

    def record(self, *, generation_ms: float, steps: int, width: int, height: int, seeds: list[int]) -> DiffusionStats:
        images = len(seeds)
        self.total_generation_ms += generation_ms
        self.total_steps += steps * images
        self.total_generations += 1
        self.total_images += images
        self.total_pixels += width * height * images
        totals = msgspec.structs.asdict(self.totals())
        return DiffusionStats(**totals, generationMs=generation_ms, width=width, height=height, seed=seeds[0])

    def totals(self) -> ModelTotals:
        return ModelTotals(
            modelLoadMs=self.load_ms,
            totalGenerationMs=round(self.total_generation_ms, 3),
            totalWallMs=elapsed_ms(self.load_started),
            totalSteps=self.total_steps,
            totalGenerations=self.total_generations,
            totalImages=self.total_images,
            totalPixels=self.total_pixels,
        )


@dataclass
class _PendingLoad:
    settings: ModelSettings
    done: anyio.Event = field(default_factory=anyio.Event)
    model: LoadedModel | None = None
    error: SidecarError | None = None


class ModelManager:
    """Every loaded model by id; identical loads share one model."""

    def __init__(self, task_group: anyio.abc.TaskGroup, worker_command: list[str], spare_worker: bool = True) -> None:
        self._task_group = task_group
        self._worker_command = worker_command
        self._keep_spare = spare_worker
        self._spare: WorkerProcess | None = None
        """A worker started ahead, idle, past its imports (the native library loaded), that the next
        load on the default device takes: a load then costs the native load alone (docs/performance.md)."""
        self._models: dict[str, LoadedModel] = {}
        self._pending: dict[str, _PendingLoad] = {}
        self._starting: set[WorkerProcess] = set()
        self._stop_reason: SidecarError | None = None
        self._unloaded: dict[str, SidecarError] = {}
        """Why models that the sidecar unloaded by itself are gone, until they are loaded again."""

    @property
    def worker_command(self) -> list[str]:
        """How a worker process starts (also for native work that holds no model: `convert`)."""
        return self._worker_command

    @staticmethod
    def model_id(load_key: str) -> str:
        return "model-" + hashlib.sha256(load_key.encode()).hexdigest()[:12]

    def ids(self) -> list[str]:
        return list(self._models)

    def entries(self) -> list[tuple[str, ModelSettings, LoadedModel | None]]:
        """Every model loaded or being loaded (None for the model while it loads), in load order."""
        loaded = [(model_id, model.settings, model) for model_id, model in self._models.items()]
        loading = [(model_id, pending.settings, None) for model_id, pending in self._pending.items()]
        return loaded + loading

    def count(self) -> int:
        """Models loaded or being loaded."""
        return len(self._models) + len(self._pending)

    def has(self, model_id: str) -> bool:
        """Whether this model is loaded or being loaded."""
        return model_id in self._models or model_id in self._pending

    def get(self, model_id: str) -> LoadedModel:
        try:
            return self._models[model_id]
        except KeyError:
            if unloaded := self._unloaded.get(model_id):
                data = {key: value for key, value in unloaded.data.items() if key != "code"}
                raise SidecarError(unloaded.code, unloaded.message, **data) from None
            raise SidecarError(
                "MODEL_NOT_LOADED", f"No model is loaded with id {model_id!r}", modelId=model_id
            ) from None

    async def load(
        self, load_key: str, load: messages.Load, settings: ModelSettings, on_progress: Callable[[int, int], None]
    ) -> tuple[LoadedModel, bool]:
        """Return the model for this load and whether it was already loaded (or loading)."""
        model_id = self.model_id(load_key)
        if model := self._models.get(model_id):
            return model, True
        while pending := self._pending.get(model_id):
            await pending.done.wait()
            if pending.error is not None:
                raise pending.error
            if pending.model is not None:
                return pending.model, True
            # That load was cancelled: this request's own load takes its place.
        pending = self._pending[model_id] = _PendingLoad(settings)
        try:
            started = time.monotonic()
            worker, reply = await self._start_worker(load, model_id, on_progress)
            model = LoadedModel(
                model_id, load, worker, settings, reply.family, reply.size_multiple, started, elapsed_ms(started)
            )
            model.on_crash = self._crashed
            model.upscale_factor = reply.upscale_factor
            model.device = reply.device
            model.weight_types = reply.weight_types
            model.video_model = reply.video_model
            self._models[model_id] = model
            self._unloaded.pop(model_id, None)
            self._task_group.start_soon(self._watch, model, worker)
            pending.model = model
            return model, False
        except SidecarError as error:
            pending.error = error
            raise
        finally:
            del self._pending[model_id]
            pending.done.set()
            self._task_group.start_soon(self.start_spare)  # after the load: it competes with nothing

    async def _start_worker(
        self, load: messages.Load, label: str, on_progress: Callable[[int, int], None]
    ) -> tuple[WorkerProcess, messages.Loaded]:
        """A new worker process (the spare, where it fits) with the model loaded in it."""
        environment = devices.environment(load.device)
        worker = self._take_spare(label) if not environment else None
        worker = worker or await WorkerProcess.start(self._worker_command, label, self._task_group, environment)
        self._starting.add(worker)
        if self._stop_reason is not None:  # shutdown began while the process was starting
            worker.kill()
        try:
            reply = await worker.request(load, lambda event: on_progress(event.loaded, event.total))  # type: ignore[union-attr]
        except WorkerExited as exited:
            if self._stop_reason is not None:
                raise self._stop_reason from None
            raise SidecarError(
                "MODEL_LOAD_FAILED",
                f"Loading the model crashed its worker process ({exited.describe()}); "
                "the file is likely corrupt or not a supported model",
                reason=exited.stderr_tail[-1] if exited.stderr_tail else exited.describe(),
                **exited.details(),
            ) from None
        except BaseException:
            worker.kill()  # cancelled while loading: the half-loaded worker must not linger
            raise
        finally:
            self._starting.discard(worker)
        if isinstance(reply, messages.Failed):
            await worker.stop()
            raise reply.error("MODEL_LOAD_FAILED", "The model could not be loaded")
        assert isinstance(reply, messages.Loaded)
        return worker, reply

    async def _watch(self, model: LoadedModel, worker: WorkerProcess) -> None:
        """Notice a worker that dies between requests (a request notices it dying on its own)."""
        exited = await worker.wait()
        if not worker.ended_on_purpose:
            self._crashed(model, worker, exited)

    def _crashed(self, model: LoadedModel, worker: WorkerProcess, exited: WorkerExited) -> SidecarError | None:
        """Reload the model in a fresh worker, or unload it when its workers keep crashing.

        Returns the error it was unloaded with, or None while it comes back.
        """
        if worker.crashed or worker.ended_on_purpose or self._models.get(model.model_id) is not model:
            return model.stop_reason  # already handled, or no crash: the sidecar ended it
        worker.crashed = True
        model.crashes += 1
        print(f"model {model.model_id}: {exited.describe()}", file=sys.stderr, flush=True)
        if model.crashes < CRASH_LIMIT:
            self._reload_soon(model)
            return None
        reason = SidecarError(
            "MODEL_NOT_LOADED",
            f"Model {model.model_id} was unloaded: its worker crashed {model.crashes} times in a row "
            f"(last: {exited.describe()}); load it again to retry",
            modelId=model.model_id,
            reason="crashLoop",
            crashes=model.crashes,
            lastCrash=exited.details(),
        )
        model.stop_reason = self._unloaded[model.model_id] = reason
        del self._models[model.model_id]
        return reason

    def abandon_running_request(self, model: LoadedModel) -> None:
        """End a worker in the middle of a request (the library cannot be interrupted otherwise).

        The model comes back in a fresh worker before the next request on it runs: the reload
        takes the turn right behind the abandoned request.
        """
        model.worker.kill()
        self._reload_soon(model)

    def _reload_soon(self, model: LoadedModel) -> None:
        """Load the model into a fresh worker, taking the turn right behind the current request."""
        model.reloading = True
        self._task_group.start_soon(self._reload, model, model.gate.ticket(next_in_line=True))

    async def _reload(self, model: LoadedModel, turn: Ticket) -> None:
        async with turn:
            if model.stop_reason is not None:
                model.reloading = False
                return
            try:
                worker, _ = await self._start_worker(model.load, model.model_id, lambda loaded, total: None)
            except SidecarError as error:
                model.stop_reason = SidecarError(
                    "MODEL_NOT_LOADED",
                    f"Model {model.model_id} could not be reloaded: {error.message}",
                    modelId=model.model_id,
                    reason="reloadFailed",
                )
                if self._models.get(model.model_id) is model:
                    self._unloaded[model.model_id] = model.stop_reason
                    del self._models[model.model_id]
                return
            finally:
                model.reloading = False
            if model.stop_reason is not None:  # unloaded or shut down while reloading
                await worker.stop()
                return
            model.worker = worker
            self._task_group.start_soon(self._watch, model, worker)

    async def unload(self, model_id: str) -> None:
        model = self.get(model_id)
        del self._models[model_id]
        model.stop_reason = SidecarError(
            "MODEL_NOT_LOADED", f"Model {model_id} was unloaded before this request finished", modelId=model_id
        )
        await model.worker.stop()

    async def start_spare(self) -> None:
        """Have a spare worker ready (where hosts allow one, and none is), for the next load."""
        if not self._keep_spare or self._spare is not None or self._stop_reason is not None:
            return
        self._spare = await WorkerProcess.start(self._worker_command, "spare", self._task_group)
        if self._stop_reason is not None:  # shutdown began while it was starting
            self._spare.kill()

    def _take_spare(self, label: str) -> WorkerProcess | None:
        spare, self._spare = self._spare, None
        if spare is None or not spare.alive:
            return None
        spare.label = label
        return spare

    async def stop_all(self, reason: SidecarError) -> None:
        """End every worker; requests still pending on them end with `reason`."""
        self._stop_reason = reason
        models, self._models = list(self._models.values()), {}
        for worker in [*self._starting, *filter(None, [self._take_spare("spare")])]:
            worker.kill()
        async with anyio.create_task_group() as group:
            for model in models:
                model.stop_reason = reason
                group.start_soon(model.worker.stop)

    def kill_all(self) -> None:
        """End every worker at once, without waiting (the `exit` notification)."""
        for worker in [*self._starting, *filter(None, [self._spare]), *(model.worker for model in self._models.values())]:
            worker.kill()
