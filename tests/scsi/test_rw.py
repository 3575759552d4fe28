"""READ/WRITE(6/10/12/16): data, ranges, flags, short Data-Out, write protection, store errors."""

from __future__ import annotations

import errno

import pytest

from pytgt.scsi import Status
from pytgt.stores.base import StoreIOError

from .conftest import BLOCKS, BS, Harness, cdb6, cdb10, cdb12, cdb16

READS = [(0x08, cdb6), (0x28, cdb10), (0xA8, cdb12), (0x88, cdb16)]
WRITES = [(0x0A, cdb6), (0x2A, cdb10), (0xAA, cdb12), (0x8A, cdb16)]
PAIRS = list(zip(READS, WRITES, strict=True))

ILLEGAL_LBA = (0x05, 0x21, 0x00)
INVALID_FIELD = (0x05, 0x24, 0x00)


@pytest.mark.parametrize(("rd", "wr"), PAIRS, ids=["6", "10", "12", "16"])
def test_write_then_read_back(h: Harness, rd: tuple, wr: tuple) -> None:
    data = bytes(range(256)) * (3 * BS // 256)
    r = h.run(wr[1](wr[0], 7, 3), data)
    assert (r.status, r.sense) == (Status.GOOD, b"")
    r = h.run(rd[1](rd[0], 7, 3))
    assert r.status == Status.GOOD and bytes(r.data) == data
    assert bytes(h.store._buf[7 * BS:10 * BS]) == data


@pytest.mark.parametrize(("op", "make"), READS + WRITES)
def test_beyond_end_is_lba_out_of_range(h: Harness, op: int, make: object) -> None:
    assert h.sense(make(op, BLOCKS - 1, 2), bytes(2 * BS)) == ILLEGAL_LBA  # type: ignore[operator]


@pytest.mark.parametrize(("op", "make"), READS + WRITES)
def test_last_block_is_in_range(h: Harness, op: int, make: object) -> None:
    r = h.run(make(op, BLOCKS - 1, 1), bytes(BS))  # type: ignore[operator]
    assert r.status == Status.GOOD


@pytest.mark.parametrize(("op", "make"), [(o, m) for o, m in READS + WRITES if o not in (8, 10)])
def test_zero_blocks_transfer_nothing(h: Harness, op: int, make: object) -> None:
    r = h.run(make(op, 0, 0))  # type: ignore[operator]
    assert (r.status, bytes(r.data), r.sense) == (Status.GOOD, b"", b"")
    r = h.run(make(op, BLOCKS, 0))  # type: ignore[operator]
    assert r.status == Status.GOOD
    assert h.sense(make(op, BLOCKS + 1, 0)) == ILLEGAL_LBA  # type: ignore[operator]


def test_read6_zero_means_256_blocks(h: Harness) -> None:
    r = h.run(cdb6(0x08, 0, 0))
    assert r.status == Status.GOOD and len(r.data) == 256 * BS
    assert h.target.expected_data_out(1 << 48, cdb6(0x0A, 0, 0)) == 256 * BS


@pytest.mark.parametrize(("op", "make"), [(o, m) for o, m in READS + WRITES if o not in (8, 10)])
@pytest.mark.parametrize("protect", [1, 2, 7])
def test_protect_field_is_invalid(h: Harness, op: int, make: object, protect: int) -> None:
    r = h.run(make(op, 0, 1, protect << 5), bytes(BS))  # type: ignore[operator]
    assert r.status == Status.CHECK_CONDITION
    # Fixed format: SKSV, C/D=1 (CDB), BPV, bit 7 of byte 1.
    assert r.sense == bytes([0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0, 0, 0xCF, 0, 1])


@pytest.mark.parametrize(("op", "make"), [(o, m) for o, m in READS + WRITES if o not in (8, 10)])
@pytest.mark.parametrize("flags", [0x10, 0x08, 0x18, 0x04])  # DPO, FUA, both, (R|W)ARC-ish
def test_dpo_fua_accepted(h: Harness, op: int, make: object, flags: int) -> None:
    r = h.run(make(op, 1, 1, flags), bytes(BS))  # type: ignore[operator]
    assert r.status == Status.GOOD


def test_fua_flushes_before_status(h: Harness) -> None:
    calls: list[str] = []
    orig = h.store.flush

    async def flush() -> None:
        calls.append("flush")
        await orig()

    h.store.flush = flush  # type: ignore[method-assign]
    h.run(cdb10(0x2A, 0, 1), bytes(BS))
    assert calls == []
    h.run(cdb10(0x2A, 0, 1, 0x08), bytes(BS))
    assert calls == ["flush"]
    h.lu.mode.wce = False  # write-through: every write is flushed
    h.run(cdb10(0x2A, 0, 1), bytes(BS))
    assert calls == ["flush", "flush"]


def test_read_returns_store_buffer_unchanged(h: Harness) -> None:
    sentinel = memoryview(b"z" * BS)

    async def read(offset: int, length: int) -> memoryview:
        return sentinel

    h.store.read = read  # type: ignore[method-assign]
    assert h.run(cdb10(0x28, 0, 1)).data is sentinel


def test_write_passes_data_out_through(h: Harness) -> None:
    seen: list[object] = []

    async def write(offset: int, data: object) -> None:
        seen.append(data)

    h.store.write = write  # type: ignore[method-assign]
    payload = bytearray(2 * BS)
    h.run(cdb10(0x2A, 0, 2), payload)  # type: ignore[arg-type]
    assert seen[0] is payload


def _fill(h: Harness, char: bytes, n: int = 2) -> None:
    assert h.run(cdb10(0x2A, 0, n), char * (n * BS)).status == Status.GOOD


def _blocks(h: Harness, n: int = 2) -> bytes:
    return bytes(h.run(cdb10(0x28, 0, n)).data)


def test_short_data_out_writes_only_whole_blocks_received(h: Harness) -> None:
    # libiscsi test_write10_residuals: EDTL < transfer length -> write only EDTL.
    _fill(h, b"a")
    assert h.run(cdb10(0x2A, 0, 2), b"b" * BS).status == Status.GOOD
    assert _blocks(h) == b"b" * BS + b"a" * BS
    assert h.run(cdb10(0x2A, 0, 1), b"c" * 200).status == Status.GOOD  # partial block: none
    assert h.run(cdb10(0x2A, 0, 1), b"").status == Status.GOOD
    assert _blocks(h) == b"b" * BS + b"a" * BS


def test_long_data_out_writes_only_transfer_length(h: Harness) -> None:
    _fill(h, b"a")
    assert h.run(cdb10(0x2A, 0, 1), b"b" * (2 * BS)).status == Status.GOOD
    assert _blocks(h) == b"b" * BS + b"a" * BS


@pytest.mark.parametrize("param", ["readonly", "swp"])
@pytest.mark.parametrize(("op", "make"), WRITES)
def test_write_protected(h: Harness, param: str, op: int, make: object) -> None:
    h.lu.update_params({param: "1"})
    r = h.run(make(op, 0, 1), bytes(BS))  # type: ignore[operator]
    assert r.sense == bytes([0x70, 0, 7, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x27, 0, 0, 0, 0, 0])
    assert h.run(cdb10(0x28, 0, 1)).status == Status.GOOD


@pytest.mark.parametrize(("err", "reading", "sense"), [
    (errno.EIO, True, (0x03, 0x11, 0x00)),
    (errno.EIO, False, (0x03, 0x0C, 0x00)),
    (errno.ENOSPC, False, (0x07, 0x27, 0x07)),
    (errno.EBADF, True, (0x04, 0x44, 0x00)),
    (errno.EINVAL, False, (0x04, 0x44, 0x00)),
])
def test_store_errors(h: Harness, err: int, reading: bool, sense: tuple[int, int, int]) -> None:
    async def fail(*args: object) -> None:
        raise StoreIOError(err)

    if reading:
        h.store.read = fail  # type: ignore[method-assign,assignment]
        assert h.sense(cdb10(0x28, 0, 1)) == sense
    else:
        h.store.write = fail  # type: ignore[method-assign]
        assert h.sense(cdb10(0x2A, 0, 1), bytes(BS)) == sense
    assert h.run([0, 0, 0, 0, 0, 0]).status == Status.GOOD  # that command only


def test_descriptor_sense_format(h: Harness) -> None:
    h.lu.update_params({"sense_format": "1"})
    r = h.run(cdb16(0x88, BLOCKS, 1))
    assert r.sense == bytes([0x72, 5, 0x21, 0, 0, 0, 0, 0])
    r = h.run(cdb16(0x88, 0, 1, 0x20))
    assert r.sense == bytes([0x72, 5, 0x24, 0, 0, 0, 0, 8, 2, 6, 0, 0, 0xCF, 0, 1, 0])


def test_aborted_task_reports_task_aborted(h: Harness) -> None:
    from pytgt.scsi import ScsiTask

    task = ScsiTask(h.nexus, 1 << 48, cdb10(0x28, 0, 1))
    task.aborted = True
    r = h.loop.run_until_complete(h.target.execute(task))
    assert r.status == Status.TASK_ABORTED
