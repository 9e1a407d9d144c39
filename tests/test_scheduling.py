"""Generations of different models take turns on the cores instead of fighting over them.

Unit tests drive the scheduler with fake jobs; end-to-end tests load the synthetic model twice
(two load options, two model ids) in a real sidecar and read the order of its messages.
"""

from __future__ import annotations

import subprocess
import sys

import anyio
import pytest

from sidecar.runtime.models import FifoGate
from sidecar.runtime.scheduler import ComputeScheduler, Demand, Turn
from tests.harness import RawSidecar, worker_pids

pytestmark = pytest.mark.anyio

# --- the scheduler, with fake jobs ----------------------------------------------------------------


class FakeJobs:
    """Jobs that hold their turn until the test lets them finish; each start and end is logged."""

    def __init__(self, scheduler: ComputeScheduler, group: anyio.abc.TaskGroup) -> None:
        self.scheduler = scheduler
        self.group = group
        self.log: list[str] = []
        self.turns: dict[str, Turn] = {}
        self._finish: dict[str, anyio.Event] = {}
        self.scopes: dict[str, anyio.CancelScope] = {}

    async def submit(
        self, label: str, demand: Demand | None = None, owner: object = None, gate: FifoGate | None = None
    ):
        """Start a job (a whole-device one unless told); return once everything it set off has settled."""
        self._finish[label] = anyio.Event()
        self.scopes[label] = anyio.CancelScope()
        self.group.start_soon(self._run, label, demand or Demand(), owner or label, gate)
        await anyio.wait_all_tasks_blocked()

    async def _run(self, label: str, demand: Demand, owner: object, gate: FifoGate | None) -> None:
        with self.scopes[label]:
            turn = self.turns[label] = self.scheduler.turn(
                demand, owner=owner, label=label, after=gate.ticket() if gate is not None else None
            )
            async with turn:
                self.log.append(f"+{label}")
                await self._finish[label].wait()
                self.log.append(f"-{label}")
        if self.scopes[label].cancelled_caught:
            self.log.append(f"x{label}")

    async def finish(self, label: str) -> None:
        self._finish[label].set()
        await anyio.wait_all_tasks_blocked()

    async def cancel(self, label: str) -> None:
        self.scopes[label].cancel()
        await anyio.wait_all_tasks_blocked()


def _cores(count: int):
    async def physical_cores() -> int:
        return count

    return physical_cores


@pytest.fixture
async def jobs():
    async with anyio.create_task_group() as group:
        yield lambda max_running=4, cores=2: FakeJobs(ComputeScheduler(max_running, _cores(cores)), group)
        group.cancel_scope.cancel()


async def test_whole_device_jobs_run_one_at_a_time_in_arrival_order(jobs) -> None:
    fake = jobs()
    for label in "abc":
        await fake.submit(label)
    assert fake.log == ["+a"]
    assert [fake.turns[label].place for label in "abc"] == [None, 0, 1]
    await fake.finish("a")
    await fake.finish("b")
    await fake.finish("c")
    assert fake.log == ["+a", "-a", "+b", "-b", "+c", "-c"]


async def test_jobs_whose_threads_fit_the_cores_run_together(jobs) -> None:
    fake = jobs(cores=4)
    await fake.submit("a", Demand(threads=2))
    await fake.submit("b", Demand(threads=2))
    await fake.submit("c", Demand(threads=1))
    assert fake.log == ["+a", "+b"]
    await fake.finish("a")
    assert fake.log[-1] == "+c"


async def test_more_threads_than_cores_count_as_the_whole_device(jobs) -> None:
    fake = jobs(cores=2)
    await fake.submit("a", Demand(threads=64))
    await fake.submit("b", Demand(threads=1))
    assert fake.log == ["+a"]
    await fake.finish("a")
    assert fake.log == ["+a", "-a", "+b"]


async def test_max_running_caps_jobs_that_would_fit(jobs) -> None:
    fake = jobs(max_running=2, cores=8)
    for label in "abc":
        await fake.submit(label, Demand(threads=1))
    assert fake.log == ["+a", "+b"]
    await fake.finish("b")
    assert fake.log == ["+a", "+b", "-b", "+c"]


async def test_no_job_passes_one_that_waits_for_room(jobs) -> None:
    fake = jobs(cores=2)
    await fake.submit("small", Demand(threads=1))
    await fake.submit("whole", Demand())
    await fake.submit("later", Demand(threads=1))  # would fit beside `small`, but `whole` came first
    assert fake.log == ["+small"]
    await fake.finish("small")
    assert fake.log[-1] == "+whole"


async def test_other_devices_do_not_wait_for_room_on_this_one(jobs) -> None:
    fake = jobs()
    await fake.submit("cpu-1", Demand())
    await fake.submit("cpu-2", Demand())
    await fake.submit("gpu", Demand(device="gpu0"))
    assert fake.log == ["+cpu-1", "+gpu"]
    assert fake.turns["gpu"].place is None and fake.turns["cpu-2"].place == 0


async def test_a_models_next_request_keeps_its_place_ahead_of_later_models(jobs) -> None:
    fake, gate = jobs(), FifoGate()
    await fake.submit("a1", owner="A", gate=gate)
    await fake.submit("a2", owner="A", gate=gate)  # behind a1 in its model's queue
    await fake.submit("b1", owner="B", gate=FifoGate())
    assert [fake.turns[label].place for label in ("a2", "b1")] == [0, 1]
    await fake.finish("a1")
    assert fake.log == ["+a1", "-a1", "+a2"]
    await fake.finish("a2")
    assert fake.log[-1] == "+b1"


async def test_a_job_whose_model_is_busy_lets_a_fitting_job_of_another_model_run(jobs) -> None:
    fake, gate = jobs(cores=2), FifoGate()
    await fake.submit("a1", Demand(threads=1), owner="A", gate=gate)
    await fake.submit("a2", Demand(threads=1), owner="A", gate=gate)  # its model is busy, not the cores
    await fake.submit("b1", Demand(threads=1), owner="B", gate=FifoGate())
    assert fake.log == ["+a1", "+b1"]


async def test_cancelled_while_waiting_it_leaves_both_queues_and_the_next_moves_up(jobs) -> None:
    fake, gate = jobs(), FifoGate()
    await fake.submit("a1", owner="A", gate=gate)
    await fake.submit("a2", owner="A", gate=gate)
    await fake.submit("b1", owner="B", gate=FifoGate())
    await fake.cancel("a2")  # still in its model's queue
    await fake.cancel("b1")  # waiting for the device
    assert fake.log == ["+a1", "xa2", "xb1"] and len(gate) == 1
    assert fake.scheduler.turns("A") == [fake.turns["a1"]] and fake.scheduler.turns("B") == []
    await fake.submit("c1", owner="C")
    assert fake.turns["c1"].place == 0
    await fake.finish("a1")
    assert fake.log[-1] == "+c1" and len(gate) == 0


async def test_a_running_job_cancelled_gives_its_room_back(jobs) -> None:
    fake = jobs()
    await fake.submit("a")
    await fake.submit("b")
    await fake.cancel("a")
    assert fake.log == ["+a", "xa", "+b"]


async def test_turns_of_an_owner_say_which_run_and_which_wait(jobs) -> None:
    fake, gate = jobs(), FifoGate()
    for label in ("a1", "a2", "a3"):
        await fake.submit(label, owner="A", gate=gate)
    turns = fake.scheduler.turns("A")
    assert [(turn.label, turn.running, turn.place) for turn in turns] == [
        ("a1", True, None),
        ("a2", False, 0),
        ("a3", False, 1),
    ]


# --- through a real sidecar -----------------------------------------------------------------------

SMALL = {"prompt": "a quay", "width": 64, "height": 64, "steps": 2}
LONG = {**SMALL, "steps": 30}  # ~10 s: always still running when the test acts on it


def _ticks(raw: RawSidecar, request_id: int) -> list[int]:
    """Where this request's progress notifications sit among every message received."""
    return [
        index
        for index, message in enumerate(raw.messages)
        if message.get("method") == "diffusion/progress" and message["params"]["requestId"] == request_id
    ]


def _answer_at(raw: RawSidecar, request_id: int) -> int:
    (index,) = [i for i, m in enumerate(raw.messages) if "method" not in m and m.get("id") == request_id]
    return index


async def _sidecar_with_two_models(command: list[str], model: str, *flags: str, threads: int | None = None):
    """Two model ids for one file: one with `threads` (or the physical cores), one with the default."""
    raw = await RawSidecar.start(*flags, command=command)
    raw.initialize = (await raw.call("initialize"))["result"]
    first = {"threads": threads} if threads else {}
    second = {"threads": threads, "type": "f16"} if threads else {"threads": raw.initialize["backend"]["physicalCores"]}
    raw.models = [
        (await raw.call("loadModel", {"modelPath": model, "modelConfig": config}))["result"]["modelId"]
        for config in (first, second)
    ]
    assert raw.models[0] != raw.models[1]
    return raw


async def _running(raw: RawSidecar, model_id: str, **params) -> int:
    """Send a long generation and return its id once its first step has ticked."""
    request_id = await raw.send("diffusion", {"modelId": model_id, **LONG, **params})
    await raw.wait_for(lambda m: m.get("method") == "diffusion/progress" and m["params"]["requestId"] == request_id)
    return request_id


def _error(response: dict, code: str) -> dict:
    assert response.get("error", {}).get("data", {}).get("code") == code, response
    return response["error"]


@pytest.fixture(scope="module")
async def sidecar(python_command: list[str], synthetic_model: str):
    """Two models that each use every core, and room for one queued request per model."""
    raw = await _sidecar_with_two_models(python_command, synthetic_model, "--max-queue", "1")
    yield raw
    await raw.stop()


@pytest.mark.parametrize("max_running", [1, 2])
async def test_max_running_decides_whether_models_that_fit_the_cores_run_together(
    python_command: list[str], synthetic_model: str, max_running: int
) -> None:
    raw = await _sidecar_with_two_models(python_command, synthetic_model, "--max-running", str(max_running), threads=1)
    try:
        assert raw.initialize["limits"]["maxRunning"] == max_running
        assert raw.initialize["backend"]["physicalCores"] >= 2, "this test needs two physical cores"
        first = await raw.send("diffusion", {"modelId": raw.models[0], **SMALL, "steps": 4})
        second = await raw.send("diffusion", {"modelId": raw.models[1], **SMALL, "steps": 4})
        assert "result" in await raw.response(first) and "result" in await raw.response(second)
        together = _ticks(raw, second)[0] < _answer_at(raw, first)
        assert together is (max_running == 2), raw.messages
    finally:
        await raw.stop()


def test_max_running_must_be_at_least_one() -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "sidecar", "--max-running", "0"], capture_output=True, text=True, check=False
    )
    assert refused.returncode == 2 and "--max-running must be at least 1" in refused.stderr


async def test_the_default_limit_is_reported(sidecar: RawSidecar) -> None:
    assert sidecar.initialize["limits"]["maxRunning"] == 4


async def test_a_request_on_another_model_starts_after_the_first_finishes(sidecar: RawSidecar) -> None:
    first = await sidecar.send("diffusion", {"modelId": sidecar.models[0], **SMALL})
    second = await sidecar.send("diffusion", {"modelId": sidecar.models[1], **SMALL})
    assert "result" in await sidecar.response(first) and "result" in await sidecar.response(second)
    first_ticks, second_ticks = _ticks(sidecar, first), _ticks(sidecar, second)
    assert len(first_ticks) == len(second_ticks) == 4  # encode, 2 sampling steps, decode
    assert first_ticks[-1] < _answer_at(sidecar, first) < second_ticks[0]


async def test_a_request_waiting_for_the_device_is_queued_for_max_queue(sidecar: RawSidecar) -> None:
    running = await _running(sidecar, sidecar.models[0])
    waiting = await sidecar.send("diffusion", {"modelId": sidecar.models[1], **SMALL})
    # Its model runs nothing, yet the one request on it waits: the queue (--max-queue 1) is full.
    full = _error(await sidecar.call("diffusion", {"modelId": sidecar.models[1], **SMALL}), "QUEUE_FULL")
    assert full["data"]["modelId"] == sidecar.models[1]
    assert sidecar.responses_to(running) == [] and sidecar.responses_to(waiting) == []
    await sidecar.call("cancel", {"requestId": running})
    assert len((await sidecar.response(waiting))["result"]["outputs"]) == 1


async def test_list_models_shows_each_request_with_its_place_on_the_device(sidecar: RawSidecar) -> None:
    running = await _running(sidecar, sidecar.models[0])
    waiting = await sidecar.send("diffusion", {"modelId": sidecar.models[1], **SMALL})
    listed = {model["modelId"]: model for model in (await sidecar.call("listModels"))["result"]["models"]}
    assert listed[sidecar.models[0]]["requests"] == [{"requestId": running, "running": True, "place": None}]
    assert listed[sidecar.models[1]]["requests"] == [{"requestId": waiting, "running": False, "place": 0}]
    assert (listed[sidecar.models[1]]["running"], listed[sidecar.models[1]]["queued"]) == (0, 1)
    await sidecar.call("cancel", {"requestId": running})
    assert len((await sidecar.response(waiting))["result"]["outputs"]) == 1


async def test_cancel_of_a_request_waiting_for_the_device_is_answered_at_once(sidecar: RawSidecar) -> None:
    running = await _running(sidecar, sidecar.models[0])
    workers = worker_pids(sidecar.process.pid)
    waiting = await sidecar.send("diffusion", {"modelId": sidecar.models[1], **SMALL})
    assert (await sidecar.call("cancel", {"requestId": waiting}))["result"] == {"cancelled": 1}
    _error(await sidecar.response(waiting), "CANCELLED")
    assert sidecar.responses_to(running) == [] and _ticks(sidecar, waiting) == []
    assert worker_pids(sidecar.process.pid) == workers, "a request that never ran ended a worker"
    after = await sidecar.send("diffusion", {"modelId": sidecar.models[1], **SMALL})
    await sidecar.call("cancel", {"requestId": running})
    assert len((await sidecar.response(after))["result"]["outputs"]) == 1


async def test_a_request_waiting_for_the_device_times_out(sidecar: RawSidecar) -> None:
    running = await _running(sidecar, sidecar.models[0])
    waiting = await sidecar.call("diffusion", {"modelId": sidecar.models[1], **SMALL, "timeoutMs": 300})
    _error(waiting, "TIMEOUT")
    assert sidecar.responses_to(running) == []
    await sidecar.call("cancel", {"requestId": running})


async def test_shutdown_cancels_requests_waiting_for_the_device(sidecar: RawSidecar) -> None:
    """Last: it ends the module's sidecar."""
    running = await _running(sidecar, sidecar.models[0])
    waiting_for_device = await sidecar.send("diffusion", {"modelId": sidecar.models[1], **SMALL})
    waiting_for_model = await sidecar.send("diffusion", {"modelId": sidecar.models[0], **SMALL})
    assert (await sidecar.call("shutdown"))["result"] is None
    _error(await sidecar.response(waiting_for_device), "CANCELLED")
    _error(await sidecar.response(waiting_for_model), "CANCELLED")
    _error(await sidecar.response(running), "SHUTTING_DOWN")
    assert _ticks(sidecar, waiting_for_device) == []
    assert await sidecar.exit_status() == 0
