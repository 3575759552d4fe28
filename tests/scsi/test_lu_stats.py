"""The per-LU counters behind ``--op stat`` and ``pytgtd --metrics``: latency buckets,
sampled timing through ``ScsiTarget.submit``, errors by status and sense key, TMFs."""

from __future__ import annotations

import asyncio
import random

import pytest

from pytgt.scsi import ScsiTask, tmf
from pytgt.scsi import lu_stats as ls
from pytgt.scsi.sense import SenseKey, build_sense
from pytgt.scsi.task import Status
from tests.scsi.conftest import RAW_LUN1, Harness, cdb16

READ16, WRITE16 = 0x88, 0x8A


def test_buckets_hold_what_their_bounds_say() -> None:
    bounds = ls.BUCKET_BOUNDS_NS
    cases = [0, 1, 1023, 1024, 1025, 4096, 4097, 2**30, 2**30 + 1, 10**10]
    for ns in cases + [random.randrange(1, 2**36) for _ in range(2000)]:
        lat = ls.Latency()
        lat.observe(ls.READ, ns)
        slot = lat.counts[ls.READ].index(1)
        if slot == len(bounds):
            assert ns > bounds[-1]
        else:
            assert ns <= bounds[slot] and (slot == 0 or ns > bounds[slot - 1])
        assert lat.sums == [ns, 0, 0]


def test_error_kind_reads_fixed_and_descriptor_sense() -> None:
    fixed = build_sense(SenseKey.MEDIUM_ERROR, 0x11, 0)
    assert ls.error_kind(Status.CHECK_CONDITION, fixed) == ("check_condition", "medium_error")
    descriptor = bytes([0x72, SenseKey.UNIT_ATTENTION, 0x29, 0, 0, 0, 0, 0])
    assert ls.error_kind(2, descriptor) == ("check_condition", "unit_attention")
    assert ls.error_kind(Status.RESERVATION_CONFLICT, b"") == ("reservation_conflict", "")
    assert ls.error_kind(0x7E, b"") == ("0x7e", "")


def submit(h: Harness, cdb: bytes, data: bytes = b"") -> int:
    """Submit through the transport's entry point; the status once answered."""
    fut: asyncio.Future[int] = h.loop.create_future()
    task = ScsiTask(h.nexus, RAW_LUN1, cdb, data_out=data, expected_in=4096)
    if h.target.submit(task, lambda _t, status, _d, _s: fut.set_result(status)) is not None:
        return 0  # answered at once (the fast path)
    return h.loop.run_until_complete(fut)


@pytest.mark.parametrize("every", [1, 4])
def test_submit_times_one_command_in_n(h: Harness, every: int) -> None:
    h.target.timing = every
    h.target._until_timed = 1
    for i in range(4):
        assert submit(h, cdb16(WRITE16, i, 8), bytes(4096)) == 0
        assert submit(h, cdb16(READ16, i, 8)) == 0
    for _ in range(4):
        assert submit(h, bytes(16)) == 0  # TEST UNIT READY
    lat = h.lu.stat_latency
    assert lat is not None
    timed = [sum(c) for c in lat.counts]
    assert sum(timed) == 12 // every
    if every == 1:
        assert timed == [4, 4, 4] and all(s > 0 for s in lat.sums)
    assert (h.lu.stat_read_cmds, h.lu.stat_write_cmds) == (4, 4)  # every one counted


def test_untimed_target_keeps_no_latency(h: Harness) -> None:
    assert submit(h, cdb16(READ16, 0, 8)) == 0
    assert h.lu.stat_latency is None


def test_errors_by_kind_and_tmf_counts(h: Harness) -> None:
    assert h.lu.stat_error_kinds == {("check_condition", "unit_attention"): 1}  # setup's
    assert submit(h, cdb16(READ16, 1 << 40, 1)) == Status.CHECK_CONDITION  # out of range
    assert h.lu.stat_error_kinds == {("check_condition", "unit_attention"): 1,
                                     ("check_condition", "illegal_request"): 1}
    assert h.tmf(tmf.Function.LOGICAL_UNIT_RESET) is tmf.ServiceResponse.FUNCTION_COMPLETE
    assert h.tmf(tmf.Function.ABORT_TASK_SET, lun=7) is \
        tmf.ServiceResponse.INCORRECT_LOGICAL_UNIT_NUMBER
    assert h.target.stat_tmf == {("logical_unit_reset", "function_complete"): 1,
                                 ("abort_task_set", "incorrect_logical_unit_number"): 1}
