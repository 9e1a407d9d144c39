"""A request's downloads as `download/progress` notifications: one file each, with the request's
totals, so that a host draws one bar over every file of a load.

Each file's notifications are throttled to one per THROTTLE_SECONDS while its phase stays the
same; a new phase is always sent, and so is the last one (`done` or `cached`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from diffusion_sidecar_protocol.types import DownloadProgress, RequestId

from .refs import Source
from .state import FINAL_PHASES, FileState

THROTTLE_SECONDS = 0.1


class RequestProgress:
    def __init__(
        self,
        request_id: RequestId | None,
        sources: Mapping[str, Source],
        notify: Callable[[DownloadProgress], None],
        elapsed_ms: Callable[[], float],
    ) -> None:
        self._request_id = request_id
        self._sources = dict(sources)
        self._notify = notify
        self._elapsed_ms = elapsed_ms
        self._states = {field: FileState() for field in sources}
        self._sent_at: dict[str, float] = {}

    def listener(self, field: str) -> Callable[[FileState], None]:
        return lambda state: self._update(field, state)

    def _update(self, field: str, state: FileState) -> None:
        previous = self._states[field]
        self._states[field] = state
        now = time.monotonic()
        same_phase = field in self._sent_at and previous.phase == state.phase
        if same_phase and state.phase not in FINAL_PHASES and now - self._sent_at[field] < THROTTLE_SECONDS:
            return
        if same_phase and state == previous:
            return
        self._sent_at[field] = now
        source = self._sources[field]
        totals = [s.total for s in self._states.values()]
        self._notify(
            DownloadProgress(
                requestId=self._request_id,
                field=field,
                role=source.role,
                src=source.given,
                phase=state.phase,
                bytesDone=state.done,
                bytesTotal=state.total,
                resumedFrom=state.resumed_from,
                speedBytesPerSecond=round(state.speed, 1),
                totalBytesDone=sum(s.done for s in self._states.values()),
                totalBytes=None if None in totals else sum(totals),  # type: ignore[arg-type]
                filesDone=sum(s.phase in FINAL_PHASES for s in self._states.values()),
                filesTotal=len(self._states),
                elapsedMs=self._elapsed_ms(),
            )
        )
