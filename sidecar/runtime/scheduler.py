"""Turns on the compute devices: jobs of every model share the machine's cores instead of fighting
over them.

Each model's worker runs one request at a time (its FifoGate), but workers of different models
would otherwise run at once, each with as many threads as the machine has cores, and the threads
of both slow each other down (measured: two requests sent together both finish later than one
after the other would). So every job takes a place in its device's line when it arrives, and
starts once it is first in that line among the jobs that could start (its model's earlier
requests finished), and once it fits: its threads together with those of the jobs already running
on the device fit the device's cores, and fewer than `max_running` jobs run in all. A job with the
native default thread count uses every core, so it runs alone on its device. Nothing passes a job
that waits for room, so a large job is never starved by smaller ones behind it.

The device is a key: "cpu" for every job on the CPU, the device's name (`Vulkan0`) for a GPU's,
where a job always takes the whole device. Jobs on different keys never wait for room on each
other's, only for `max_running`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import anyio

CPU = "cpu"


@dataclass(frozen=True)
class Demand:
    """What a job asks of the machine."""

    device: str = CPU
    threads: int | None = None
    """None: the native default, one thread per physical core (the whole device)."""


class Gate(Protocol):
    """A place in a queue the job must pass first (its model's own order)."""

    @property
    def is_due(self) -> bool: ...

    async def __aenter__(self) -> None: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


class Turn:
    """A job's place in its device's line, taken when created; `async with` waits until the job may
    run (its gate first, then room on the device) and gives the room back on leaving."""

    def __init__(self, scheduler: ComputeScheduler, demand: Demand, owner: object, label: object, after: Gate | None):
        self.demand = demand
        self.owner = owner
        """Whose job it is (a model): `ComputeScheduler.turns` finds a model's jobs by it."""
        self.label = label
        """What observers call the job (a request id)."""
        self.running = False
        self._scheduler = scheduler
        self._after = after
        self._started = anyio.Event()

    @property
    def ready(self) -> bool:
        """Whether nothing but room on the device holds the job back."""
        return self._after is None or self._after.is_due

    @property
    def place(self) -> int | None:
        """How many jobs waiting for the same device arrived before this one (0: it starts next);
        None once it runs."""
        return None if self.running else self._scheduler.waiting_ahead(self)

    async def __aenter__(self) -> None:
        if self._after is not None:
            try:
                await self._after.__aenter__()  # leaves its queue by itself when cancelled
            except BaseException:
                self._scheduler.remove(self)
                raise
        try:
            await self._scheduler.know_cores()
            self._scheduler.admit()
            await self._started.wait()
        except BaseException:
            await self.__aexit__()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        # The gate first: the model's next job becomes ready before the room is handed out again,
        # so it keeps its place ahead of jobs of other models that arrived after it.
        if self._after is not None:
            await self._after.__aexit__(None, None, None)
        self._scheduler.remove(self)

    def start(self) -> None:
        self.running = True
        self._started.set()


class ComputeScheduler:
    """Every job waiting for or running on a compute device, in arrival order."""

    def __init__(self, max_running: int, physical_cores: Callable[[], Awaitable[int]]) -> None:
        self.max_running = max_running
        self._physical_cores = physical_cores
        self._cores: int | None = None
        self._turns: list[Turn] = []

    def turn(self, demand: Demand, *, owner: object, label: object = None, after: Gate | None = None) -> Turn:
        """Join the line now (arrival order); `after`, when given, is passed before the device."""
        turn = Turn(self, demand, owner, label, after)
        self._turns.append(turn)
        return turn

    def turns(self, owner: object) -> list[Turn]:
        """An owner's jobs, running and waiting, in arrival order."""
        return [turn for turn in self._turns if turn.owner is owner]

    def waiting_ahead(self, turn: Turn) -> int:
        ahead = self._turns[: self._turns.index(turn)]
        return sum(1 for other in ahead if not other.running and other.demand.device == turn.demand.device)

    async def know_cores(self) -> None:
        """Learn the number of physical cores (the size of a device) before the first admission."""
        if self._cores is None:
            self._cores = await self._physical_cores()

    def remove(self, turn: Turn) -> None:
        self._turns.remove(turn)
        self.admit()

    def admit(self) -> None:
        """Start every job that may start now, in arrival order."""
        if self._cores is None:
            return
        running = [turn for turn in self._turns if turn.running]
        full: set[str] = set()  # devices where a job waits for room: nothing behind it may pass
        for turn in self._turns:
            if len(running) >= self.max_running:
                return
            if turn.running or not turn.ready or turn.demand.device in full:
                continue
            if self._fits(turn, running):
                turn.start()
                running.append(turn)
            else:
                full.add(turn.demand.device)

    def _fits(self, turn: Turn, running: list[Turn]) -> bool:
        used = sum(self._threads(other) for other in running if other.demand.device == turn.demand.device)
        return used == 0 or used + self._threads(turn) <= self._cores_known()

    def _threads(self, turn: Turn) -> int:
        cores = self._cores_known()
        return cores if turn.demand.threads is None else min(turn.demand.threads, cores)

    def _cores_known(self) -> int:
        assert self._cores is not None
        return self._cores
