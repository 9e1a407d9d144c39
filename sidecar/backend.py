"""Facts about the native backend, asked of a short-lived worker: the front never loads it."""

from __future__ import annotations

import anyio
import anyio.abc
from diffusion_sidecar_protocol.types import BackendInfo

from . import early_probe
from .errors import SidecarError
from .worker import messages
from .worker.process import WorkerExited, WorkerProcess


class BackendProbe:
    def __init__(self, task_group: anyio.abc.TaskGroup, worker_command: list[str]) -> None:
        self._task_group = task_group
        self._worker_command = worker_command
        self._lock = anyio.Lock()
        self._info: BackendInfo | None = None

    async def info(self) -> BackendInfo:
        """Probe once, on first use; later calls get the same answer."""
        async with self._lock:
            if self._info is None:
                self._info = await self._probe()
            return self._info

    async def _probe(self) -> BackendInfo:
        try:
            facts = await self._ask()
        except WorkerExited as exited:
            raise SidecarError(
                "WORKER_CRASHED", f"The backend probe failed: {exited.describe()}", **exited.details()
            ) from None
        assert isinstance(facts, messages.ProbeResult)
        return BackendInfo(
            name="stable-diffusion.cpp",
            bindingVersion=facts.binding_version,
            nativeVersion=facts.native_version,
            nativeCommit=facts.native_commit,
            systemInfo=facts.system_info,
            physicalCores=facts.physical_cores,
            cpuVariant=facts.cpu_variant,
            cpuFeatures=facts.cpu_features,
        )

    async def _ask(self) -> messages.FromWorker:
        started_early = early_probe.take()
        if started_early is not None:  # abandon_on_cancel: a stopping front exits without it
            return await anyio.to_thread.run_sync(early_probe.ask, started_early, abandon_on_cancel=True)
        worker = await WorkerProcess.start(self._worker_command, "probe", self._task_group)
        try:
            return await worker.request(messages.Probe(), lambda _event: None)
        finally:
            await worker.stop()
