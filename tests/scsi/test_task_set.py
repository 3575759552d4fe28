"""The task set (scsi/taskset.py) and task management (scsi/tmf.py), without a transport."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest

from pytgt.scsi import ItNexus, ScsiTask, Status, TaskAttribute, tmf
from pytgt.scsi.modepages import ModePages
from pytgt.scsi.taskset import TaskSet
from tests.scsi.conftest import BS, RAW_LUN1, Harness

A = TaskAttribute
NEXUS = ItNexus("n", "iqn.2024-01.test:n")


def _tasks(*attrs: TaskAttribute) -> list[ScsiTask]:
    return [ScsiTask(NEXUS, 1, b"", i, attr) for i, attr in enumerate(attrs)]


@pytest.mark.parametrize(("older", "new", "enabled"), [
    ((), A.ORDERED, True),
    ((A.SIMPLE,), A.SIMPLE, True),
    ((A.SIMPLE,), A.ORDERED, False),
    ((A.ORDERED,), A.SIMPLE, False),
    ((A.ORDERED,), A.HEAD_OF_QUEUE, True),
    ((A.HEAD_OF_QUEUE,), A.SIMPLE, False),
    ((A.SIMPLE, A.SIMPLE), A.UNTAGGED, True),
])
def test_a_new_task_is_enabled_by_the_sam5_rules(older: tuple[TaskAttribute, ...],
                                                  new: TaskAttribute, enabled: bool) -> None:
    async def main() -> bool:
        ts = TaskSet(ModePages())
        for task in _tasks(*older):
            ts.enter(task)
        return ts.enter(_tasks(new)[0]) is None

    assert asyncio.run(main()) is enabled


def test_completions_enable_dormant_tasks_in_order() -> None:
    async def main() -> None:
        ts = TaskSet(ModePages())
        s1, o2, s3, o4, s5 = _tasks(A.SIMPLE, A.ORDERED, A.SIMPLE, A.ORDERED, A.SIMPLE)
        waits = [ts.enter(t) for t in (s1, o2, s3, o4, s5)]
        assert waits[0] is None and all(w is not None for w in waits[1:])
        ts.leave(s1)
        assert [w.done() for w in waits[1:] if w] == [True, False, False, False]
        ts.leave(o2)  # S3 may start; O4 waits for it
        assert [w.done() for w in waits[2:] if w] == [True, False, False]
        ts.leave(s3)
        assert [w.done() for w in waits[3:] if w] == [True, False]
        ts.leave(o4)
        assert waits[4] is not None and waits[4].done() and ts.simple_enabled()
        ts.leave(s5)
        assert not ts.tasks and not ts.blockers and not ts.dormant

    asyncio.run(main())


def test_restricted_reordering_enables_one_task_at_a_time() -> None:
    async def main() -> None:
        mode = ModePages()
        mode.qam = 0
        ts = TaskSet(mode)
        s1, s2 = _tasks(A.SIMPLE, A.SIMPLE)
        assert ts.enter(s1) is None
        second = ts.enter(s2)
        assert second is not None and not second.done() and not ts.simple_enabled()
        ts.leave(s1)
        assert second.done()

    asyncio.run(main())


def mode_select_control(h: Harness, qam: int) -> Any:
    page = bytearray(h.lu.mode.page(0x0A, 0))
    page[3] = (page[3] & 0x0F) | qam << 4
    params = bytes(4) + bytes(page)
    return h.run(bytes((0x15, 0x10, 0, 0, len(params), 0)), params)


def test_queue_algorithm_modifier_is_changeable_to_0_and_1_only(h: Harness) -> None:
    changeable = h.lu.mode.page(0x0A, 1)
    assert changeable[3] == 0xF0
    assert mode_select_control(h, 0).status == Status.GOOD and h.lu.task_set.restricted
    r = mode_select_control(h, 2)
    assert r.status == Status.CHECK_CONDITION and h.sense_of(r) == (0x05, 0x26, 0x00)
    assert mode_select_control(h, 1).status == Status.GOOD and not h.lu.task_set.restricted
    mode_select_control(h, 0)
    h.tmf(tmf.Function.LOGICAL_UNIT_RESET)  # back to the default (nothing saved)
    assert not h.lu.task_set.restricted


def _held_write(h: Harness) -> tuple[asyncio.Event, list[str]]:
    """LUN 1's store holds every write until the event is set."""
    gate, log = asyncio.Event(), []
    inner = h.store.write

    async def write(offset: int, data: Any) -> None:
        log.append("started")
        try:
            await gate.wait()
        except asyncio.CancelledError:
            log.append("cancelled")
            raise
        await inner(offset, data)
        log.append("written")

    h.store.write = write  # type: ignore[method-assign]
    return gate, log


def _submit(h: Harness, nexus: ItNexus, cdb: bytes, data: bytes = b"") -> list[tuple[int, Any]]:
    answers: list[tuple[int, Any]] = []
    task = ScsiTask(nexus, RAW_LUN1, cdb.ljust(16, b"\0"), 7, data_out=data)
    h.target.submit(task, lambda t, status, d, sense: answers.append((status, sense)))
    return answers


def write10(lba: int) -> bytes:
    return struct.pack(">BBIBHB", 0x2A, 0, lba, 0, 1, 0)


def test_clear_task_set_aborts_another_nexus_task_with_task_aborted(h: Harness) -> None:
    n2 = h.new_nexus("n2")
    gate, log = _held_write(h)

    async def main() -> tmf.ServiceResponse:
        answers = _submit(h, n2, write10(0), b"x" * BS)
        await asyncio.sleep(0)
        assert log == ["started"] and not answers
        out: list[tmf.ServiceResponse] = []
        await tmf.execute(h.target, tmf.Function.CLEAR_TASK_SET, h.nexus, RAW_LUN1, out.append)
        assert answers == [(Status.TASK_ABORTED, b"")]  # TAS=1
        assert log == ["started", "cancelled"] and not h.lu.task_set.tasks
        return out[0]

    assert h.loop.run_until_complete(main()) == tmf.ServiceResponse.FUNCTION_COMPLETE
    assert h.run(bytes(6), nexus=n2).status == Status.GOOD  # no unit attention either
    assert h.run(bytes((0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0))).data == bytes(BS)


def test_abort_task_set_reaches_only_the_nexus_that_asked(h: Harness) -> None:
    n2 = h.new_nexus("n2")
    gate, log = _held_write(h)

    async def main() -> None:
        mine = _submit(h, h.nexus, write10(0), b"m" * BS)
        theirs = _submit(h, n2, write10(1), b"t" * BS)
        await asyncio.sleep(0)
        out: list[tmf.ServiceResponse] = []
        stepper = asyncio.ensure_future(
            tmf.execute(h.target, tmf.Function.ABORT_TASK_SET, h.nexus, RAW_LUN1, out.append))
        await asyncio.sleep(0)
        gate.set()
        await stepper
        assert out == [tmf.ServiceResponse.FUNCTION_COMPLETE]
        assert mine == [(Status.TASK_ABORTED, b"")]  # the transport sends no status for it
        for _ in range(5):
            await asyncio.sleep(0)
        assert theirs == [(Status.GOOD, b"")]

    h.loop.run_until_complete(main())


def test_a_stuck_aborted_command_gets_function_rejected(h: Harness) -> None:
    unstuck = asyncio.Event()

    async def stuck(offset: int, data: Any) -> None:
        try:
            await unstuck.wait()
        except asyncio.CancelledError:
            await unstuck.wait()  # like a pwrite in a thread: cancelling does not stop it

    h.store.write = stuck  # type: ignore[method-assign]

    async def main() -> list[tmf.ServiceResponse]:
        _submit(h, h.nexus, write10(0), b"x" * BS)
        out: list[tmf.ServiceResponse] = []
        await tmf.execute(h.target, tmf.Function.LOGICAL_UNIT_RESET, h.nexus, RAW_LUN1,
                          out.append, wait_timeout=0.05)
        unstuck.set()
        return out

    assert h.loop.run_until_complete(main()) == [tmf.ServiceResponse.FUNCTION_REJECTED]


def test_an_aca_task_is_refused(h: Harness) -> None:
    task = ScsiTask(h.nexus, RAW_LUN1, bytes(16), attribute=TaskAttribute.ACA)
    r = h.loop.run_until_complete(h.target.execute(task))
    assert h.sense_of(r) == (0x05, 0x24, 0x00)
