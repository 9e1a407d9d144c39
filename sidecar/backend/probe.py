"""Facts about the native backend, asked of a short-lived process: the front never loads it.

The answer is cached per build and machine (probe_cache.py). A launch that found one answers
`initialize` from it at once (`fromCache: true`), then runs the probe in the background once the
host has been answered, stores what it finds, and sends `backend/changed` if that differs.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

import anyio
import msgspec
from diffusion_sidecar_protocol.types import BackendChanged, BackendInfo, Device

from ..rpc.errors import SidecarError
from ..worker import messages
from ..worker.process import WorkerExited
from . import early_probe, probe_cache


class BackendProbe:
    def __init__(self) -> None:
        self._lock = anyio.Lock()
        self._info: BackendInfo | None = None
        self._facts: messages.ProbeResult | None = None

    async def info(self) -> BackendInfo:
        """Probe once, on first use (or take the cached answer); later calls get the same answer."""
        async with self._lock:
            if self._info is None:
                key, stored = early_probe.cached()
                if cached := _decoded(stored):
                    sys.stderr.write(f"[sidecar] backend: the probe's answer cached for this build and machine ({key})\n")
                    self._facts, self._info = cached, _backend_info(cached, from_cache=True)
                else:
                    self._facts = await self._probe(early_probe.take() or early_probe.spawn())
                    self._info = _backend_info(self._facts, from_cache=False)
            return self._info

    async def _probe(self, process) -> messages.ProbeResult:
        try:
            # abandon_on_cancel: a front that stops meanwhile exits without waiting for it
            facts = await anyio.to_thread.run_sync(early_probe.answer, process, abandon_on_cancel=True)
        except WorkerExited as exited:
            raise SidecarError(
                "WORKER_CRASHED", f"The backend probe failed: {exited.describe()}", **exited.details()
            ) from None
        assert isinstance(facts, messages.ProbeResult)
        key, _ = early_probe.cached()
        if key is not None:
            await anyio.to_thread.run_sync(probe_cache.write, key, msgspec.json.encode(facts))
        return facts

    async def warm(self) -> None:
        """Probe now. Whatever fails here (even a bug) is met again, and answered as an error, by
        whoever asks next, since a failed probe is not kept; it must not end the serve loop."""
        with contextlib.suppress(Exception):
            await self.info()

    async def recheck(self, served: anyio.Event, notify: Callable[[str, msgspec.Struct], None]) -> None:
        """Where the answer came from the cache: once `served` is set (the host has its first answer,
        so the probe's start competes with nothing the host waits for), probe again and keep what it
        finds; tell the host if it differs by more than free memory. Failures leave the cached answer."""
        await served.wait()
        await self.warm()
        if self._info is None or not self._info.fromCache:
            return
        with contextlib.suppress(SidecarError):
            fresh = await self._probe(early_probe.spawn())
            async with self._lock:
                changed = _lasting(fresh) != _lasting(self._facts)
                self._facts, self._info = fresh, _backend_info(fresh, from_cache=False)
                if changed:  # queued before any `initialize` can see the new answer
                    notify("backend/changed", BackendChanged(backend=self._info))


def _decoded(stored: bytes | None) -> messages.ProbeResult | None:
    if stored is None:
        return None
    try:
        return msgspec.json.decode(stored, type=messages.ProbeResult)
    except msgspec.DecodeError:
        sys.stderr.write("[sidecar] backend: the cached probe answer is unreadable; probing\n")
        return None


def _lasting(facts: messages.ProbeResult | None) -> object:
    """What counts as a change: everything but the devices' free memory, which moves all the time."""
    if facts is None:
        return None
    devices = [msgspec.structs.replace(device, memory_free=0) for device in facts.devices]
    return msgspec.structs.replace(facts, devices=devices)


def _backend_info(facts: messages.ProbeResult, *, from_cache: bool) -> BackendInfo:
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
        fromCache=from_cache,
        warnings=facts.warnings,
    )
