"""Facts about the native backend, asked of a short-lived process: the front never loads it."""

from __future__ import annotations

import contextlib

import anyio
from diffusion_sidecar_protocol.types import BackendInfo, Device

from ..rpc.errors import SidecarError
from ..worker import messages
from ..worker.process import WorkerExited
from . import early_probe


class BackendProbe:
    def __init__(self) -> None:
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
            devices=[
                Device(
                    name=device.name,
                    description=device.description,
                    type=device.type,  # type: ignore[arg-type]
                    memoryTotal=device.memory_total,
                    memoryFree=device.memory_free,
                )
                for device in facts.devices
            ],
            warnings=facts.warnings,
        )

    async def _ask(self) -> messages.FromWorker:
        process = early_probe.take() or early_probe.spawn()
        # abandon_on_cancel: a front that stops meanwhile exits without waiting for it
        return await anyio.to_thread.run_sync(early_probe.answer, process, abandon_on_cancel=True)

    async def warm(self) -> None:
        """Probe now. Whatever fails here (even a bug) is met again, and answered as an error, by
        whoever asks next, since a failed probe is not kept; it must not end the serve loop."""
        with contextlib.suppress(Exception):
            await self.info()
