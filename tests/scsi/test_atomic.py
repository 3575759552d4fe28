"""WRITE ATOMIC(16) and the block limits atomic fields."""

from __future__ import annotations

import asyncio
import struct

import pytest

from pytgt.scsi import Status, vpd
from pytgt.scsi.task import ScsiTask

from .conftest import BLOCKS, BS, RAW_LUN1, Harness, cdb10

INVALID_FIELD = (0x05, 0x24, 0x00)
LBA_RANGE = (0x05, 0x21, 0x00)


def atomic(lba: int, n: int, flags: int = 0, boundary: int = 0) -> bytes:
    return struct.pack(">BBQHHBB", 0x9C, flags, lba, boundary, n, 0, 0)


def test_write_atomic_writes(h: Harness) -> None:
    data = bytes(range(256)) * (3 * BS // 256)
    assert h.run(atomic(5, 3), data).status == Status.GOOD
    assert bytes(h.run(cdb10(0x28, 5, 3)).data) == data
    assert h.run(atomic(BLOCKS - 1, 1, flags=0x18), bytes(BS)).status == Status.GOOD  # DPO FUA


@pytest.mark.parametrize(("lba", "n"), [(BLOCKS, 1), (BLOCKS - 1, 2), (1 << 63, 1),
                                        ((1 << 64) - 1, 1), (BLOCKS + 1, 0)])
def test_write_atomic_beyond_end(h: Harness, lba: int, n: int) -> None:
    assert h.sense(atomic(lba, n), bytes(n * BS)) == LBA_RANGE


def test_write_atomic_zero_blocks(h: Harness) -> None:
    assert h.run(atomic(0, 0)).status == Status.GOOD


def test_write_atomic_limits(h: Harness) -> None:
    n = vpd.MAX_ATOMIC_TRANSFER_BLOCKS
    assert h.run(atomic(0, n), bytes(n * BS)).status == Status.GOOD
    assert h.sense(atomic(0, n + 1), bytes((n + 1) * BS)) == INVALID_FIELD
    assert h.sense(atomic(0, 1, boundary=1), bytes(BS)) == INVALID_FIELD
    assert h.sense(atomic(0, 1, flags=0x20), bytes(BS)) == INVALID_FIELD  # WRPROTECT
    assert h.sense(atomic(0, 2), bytes(BS)) == (0x05, 0x1A, 0x00)  # short Data-Out


def test_write_atomic_write_protected(h: Harness) -> None:
    h.lu.update_params({"swp": "1"})
    assert h.sense(atomic(0, 1), bytes(BS)) == (0x07, 0x27, 0x00)


def test_write_atomic_expected_data_out(h: Harness) -> None:
    assert h.target.expected_data_out(RAW_LUN1, atomic(0, 7)) == 7 * BS


def test_write_atomic_is_not_interleaved_with_compare_and_write(h: Harness) -> None:
    n = 64
    old, new = b"\x01" * BS, b"\x02" * BS
    h.run(cdb10(0x2A, 0, 1), old)
    caw = struct.pack(">BBQ3xBBB", 0x89, 0, 0, 1, 0, 0)

    async def both() -> list[int]:
        tasks = [ScsiTask(h.nexus, RAW_LUN1, atomic(0, n), data_out=new * n),
                 ScsiTask(h.nexus, RAW_LUN1, caw, data_out=old + b"\x03" * BS)]
        results = await asyncio.gather(*(h.target.execute(t) for t in tasks))
        return [r.status for r in results]

    statuses = h.loop.run_until_complete(both())
    first = bytes(h.run(cdb10(0x28, 0, n)).data)
    # Either order is fine, but never a mix: the CAW saw all-old or all-new blocks.
    assert statuses[0] == Status.GOOD
    assert first == new * n or first == b"\x03" * BS + new * (n - 1)


def test_block_limits_atomic_fields(h: Harness) -> None:
    d = bytes(h.run([0x12, 1, 0xB0, 0, 64, 0]).data)
    assert struct.unpack_from(">H", d, 2)[0] == 0x3C
    max_xfer = struct.unpack_from(">I", d, 8)[0]
    max_atomic, align, gran, with_boundary, boundary = struct.unpack_from(">5I", d, 44)
    assert max_atomic == vpd.MAX_ATOMIC_TRANSFER_BLOCKS <= max_xfer
    assert (align, gran, with_boundary, boundary) == (1, 1, 0, 0)


def test_rsoc_usage_data_for_write_atomic(h: Harness) -> None:
    d = bytes(h.run([0xA3, 0x0C, 0x01, 0x9C, 0, 0, 0, 0, 0, 64, 0, 0]).data)
    assert d[1] & 0x07 == 0x03 and struct.unpack_from(">H", d, 2)[0] == 16
    usage = d[4:20]
    assert usage[0] == 0x9C and usage[1] & 0x18 == 0x18 and usage[12:14] == b"\xff\xff"
