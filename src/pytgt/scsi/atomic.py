"""WRITE ATOMIC(16) (SBC-4 5.48).

An atomic write reaches the store as one write issued under the LU's ``caw_lock``, the
lock COMPARE AND WRITE and ORWRITE hold for their read-modify-write: no other atomic
command interleaves with it and a single ``pwrite`` is never split. The limits it
honours are the ones the block limits VPD page advertises (``vpd.MAX_ATOMIC_*``).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from pytgt.scsi import vpd
from pytgt.scsi.cdb import Command, OperationCode, usage_bits
from pytgt.scsi.sense import Asc, CheckCondition, SenseKey, invalid_field, lba_out_of_range
from pytgt.scsi.task import ScsiResult, ScsiTask, Status

if TYPE_CHECKING:
    from pytgt.scsi.lu import LogicalUnit

_ATOMIC16 = struct.Struct(">xBQHH")  # flags, LBA, ATOMIC BOUNDARY, TRANSFER LENGTH
_WRPROTECT, _FUA = 0xE0, 0x08


def _atomic_length(cdb: bytes, bs: int) -> int:
    return int(_ATOMIC16.unpack_from(cdb)[3]) * bs


async def write_atomic_16(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    flags, lba, boundary, n = _ATOMIC16.unpack_from(task.cdb)
    if flags & _WRPROTECT:
        raise invalid_field(1, 7)  # no protection information
    store = lu.store
    if store is None:
        raise CheckCondition(SenseKey.NOT_READY, Asc.MEDIUM_NOT_PRESENT)
    bs = lu.block_size
    if lba + n > store.size // bs:
        raise lba_out_of_range()
    if boundary:
        raise invalid_field(10)  # MAXIMUM ATOMIC BOUNDARY SIZE is 0: no boundaries
    if n > vpd.MAX_ATOMIC_TRANSFER_BLOCKS or n % vpd.ATOMIC_GRANULARITY:
        raise invalid_field(12)
    if lba % vpd.ATOMIC_ALIGNMENT:
        raise invalid_field(2)
    if not n:
        return ScsiResult(Status.GOOD)
    data = task.data_out
    if len(data) != n * bs:  # an atomic write is all of it or nothing
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.PARAMETER_LIST_LENGTH_ERROR)
    async with lu.caw_lock:
        await store.write(lba * bs, data)
        if flags & _FUA or not lu.mode.wce:
            await store.flush()
    return ScsiResult(Status.GOOD)


_LBA = (0xFF,) * 8
COMMANDS: list[Command] = [
    Command(OperationCode.WRITE_ATOMIC_16, "WRITE ATOMIC(16)", write_atomic_16, _atomic_length,
            usage=usage_bits(16, OperationCode.WRITE_ATOMIC_16, 0x18, *_LBA, 0, 0, 0xFF, 0xFF,
                             0x3F, 0x07),
            writes=True),
]
"""The command-table rows (block devices: sbc.DISK_COMMANDS)."""
