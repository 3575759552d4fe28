"""Data-Out accounting for one task: immediate, unsolicited and solicited data (RFC 7143 4.2.2)."""

from __future__ import annotations

import pytest

from pytgt.bufpool import BufferPool
from pytgt.iscsi.command import Limits, Task
from pytgt.iscsi.constants import RESERVED_TAG
from pytgt.iscsi.errors import ProtocolError
from pytgt.iscsi.pdu import DataOut, ScsiCommand


def write(edtl: int, data: bytes = b"", final: bool = True) -> ScsiCommand:
    return ScsiCommand(1, bytes(16), 0, edtl, write=True, final=final, data=data)


def test_immediate_data_covers_all() -> None:
    t = Task.start(write(512, b"x" * 512), Limits())
    assert t.data_complete and t.next_r2ts(1) == []
    assert bytes(t.data_out_buffer()) == b"x" * 512


def test_r2ts_respect_burst_and_outstanding_limits() -> None:
    lim = Limits(immediate_data=True, initial_r2t=True, first_burst_length=1024,
                 max_burst_length=4096, max_outstanding_r2t=2)
    t = Task.start(write(10240, b"a" * 1024), lim)
    r2ts = t.next_r2ts(100)
    assert [(r.ttt, r.offset, r.length, r.r2t_sn) for r in r2ts] == [
        (100, 1024, 4096, 0), (101, 5120, 4096, 1)]
    assert t.next_r2ts(102) == []  # MaxOutstandingR2T reached
    assert t.data_out(DataOut(1, 100, 0, 1024, b"b" * 4096, final=True))
    (third,) = t.next_r2ts(102)
    assert (third.offset, third.length, third.r2t_sn) == (9216, 1024, 2)


def test_unsolicited_data_out_until_first_burst() -> None:
    lim = Limits(immediate_data=True, initial_r2t=False, first_burst_length=2048)
    t = Task.start(write(4096, b"a" * 512, final=False), lim)
    assert t.unsolicited_end == 2048 and not t.unsolicited_done
    t.data_out(DataOut(1, RESERVED_TAG, 0, 512, b"b" * 1536, final=True))
    (r2t,) = t.next_r2ts(7)
    assert (r2t.offset, r2t.length) == (2048, 2048)
    t.data_out(DataOut(1, 7, 0, 2048, b"c" * 2048, final=True))
    assert t.data_complete
    assert bytes(t.data_out_buffer()) == b"a" * 512 + b"b" * 1536 + b"c" * 2048


@pytest.mark.parametrize(("data_sn", "offset", "length", "error"), [
    (1, 0, 512, (0x4B, 0x00)),      # DataSN must start at 0 for each R2T
    (0, 512, 512, (0x4B, 0x05)),    # outside the solicited burst
    (0, 0, 1024, (0x4B, 0x05)),     # longer than the burst
])
def test_bad_data_out_fails_the_command(data_sn: int, offset: int, length: int,
                                        error: tuple[int, int]) -> None:
    t = Task.start(write(512), Limits(initial_r2t=True))
    (r2t,) = t.next_r2ts(5)
    t.data_out(DataOut(1, 5, data_sn, offset, b"z" * length, final=True))
    assert t.data_error == error
    assert t.received == 0  # the bad PDU's data is dropped


@pytest.mark.parametrize("second_offset", [0, 256, 1024])  # overlay, overlay, gap
def test_data_out_offsets_must_follow_each_other(second_offset: int) -> None:
    """DataPDUInOrder=Yes (11.7.4): every byte of a burst is written once, in order."""
    t = Task.start(write(2048), Limits(initial_r2t=True))
    t.next_r2ts(5)
    t.data_out(DataOut(1, 5, 0, 0, b"a" * 512))
    t.data_out(DataOut(1, 5, 1, second_offset, b"b" * 512, final=True))
    assert t.data_error == (0x4B, 0x05)


def test_data_pdu_in_order_no_takes_a_burst_in_any_order() -> None:
    """DataPDUInOrder=No (13.18): PDUs of a sequence may come in any order, inside it."""
    t = Task.start(write(2048), Limits(initial_r2t=True, data_pdu_in_order=False))
    t.next_r2ts(5)
    t.data_out(DataOut(1, 5, 0, 1024, b"b" * 1024))
    t.data_out(DataOut(1, 5, 1, 0, b"a" * 1024, final=True))
    assert t.data_error is None and t.data_complete
    assert bytes(t.data_out_buffer()) == b"a" * 1024 + b"b" * 1024


def test_unsolicited_offsets_must_follow_the_immediate_data() -> None:
    lim = Limits(immediate_data=True, initial_r2t=False, first_burst_length=2048)
    t = Task.start(write(4096, b"a" * 512, final=False), lim)
    t.data_out(DataOut(1, RESERVED_TAG, 0, 0, b"b" * 512, final=True))  # over the immediate
    assert t.data_error == (0x4B, 0x05)


def test_buffer_pool_reuses_only_unreferenced_buffers() -> None:
    pool = BufferPool()
    a = pool.get(1 << 20)
    view = memoryview(a)[4096:]  # e.g. a store still writing it in a thread
    del a
    b = pool.get(1 << 20)
    assert b is not view.obj  # still referenced through the view: not handed out
    del view
    c = pool.get(1 << 20)
    assert c is not b
    del c
    assert pool.get(1 << 20) is not b  # b is still held here
    del b
    pool.clear()
    assert len(pool.get(1024)) == 1024  # small ones are not pooled


def test_pooled_buffer_is_overwritten_by_a_new_task() -> None:
    pool = BufferPool()
    lim = Limits(immediate_data=True, initial_r2t=True, first_burst_length=65536,
                 max_burst_length=1 << 20)
    for fill in (b"x", b"y"):
        t = Task(1, 0, bytes(16), 1 << 17, False, True, 0, lim)
        t.buffers = pool
        t.begin(fill * 1024, True)
        (r2t,) = t.next_r2ts(5)
        t.data_out(DataOut(1, 5, 0, 1024, fill * ((1 << 17) - 1024), final=True))
        assert t.data_complete and bytes(t.data_out_buffer()) == fill * (1 << 17)
        del t, r2t


def test_repeated_data_sn_fails_the_command() -> None:
    t = Task.start(write(1024), Limits(initial_r2t=True))
    t.next_r2ts(5)
    t.data_out(DataOut(1, 5, 0, 0, b"a" * 512))
    t.data_out(DataOut(1, 5, 0, 512, b"b" * 512, final=True))
    assert t.data_error == (0x4B, 0x00)


def test_unknown_ttt_and_unexpected_unsolicited() -> None:
    t = Task.start(write(512), Limits(initial_r2t=True))
    with pytest.raises(ProtocolError):
        t.data_out(DataOut(1, 99, 0, 0, b"z" * 512))
    with pytest.raises(ProtocolError):
        t.data_out(DataOut(1, RESERVED_TAG, 0, 0, b"z" * 512))


@pytest.mark.parametrize(("limits", "cmd"), [
    (Limits(immediate_data=False), write(512, b"x" * 512)),
    (Limits(first_burst_length=512), write(4096, b"x" * 1024)),
    (Limits(), ScsiCommand(1, bytes(16), 0, 0, read=True, data=b"x")),
    (Limits(initial_r2t=True), write(4096, b"", final=False)),
])
def test_immediate_data_rules(limits: Limits, cmd: ScsiCommand) -> None:
    with pytest.raises(ProtocolError):
        Task.start(cmd, limits)
