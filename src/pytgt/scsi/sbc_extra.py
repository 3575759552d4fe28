"""WRITE ATOMIC(16) (SBC-4 5.48) and READ DEFECT DATA(10/12) (SBC-4 5.20, 5.21).

An atomic write reaches the store as one write issued under the LU's ``caw_lock``, the
lock COMPARE AND WRITE and ORWRITE hold for their read-modify-write: no other atomic
command interleaves with it and a single ``pwrite`` is never split. The limits it
honours are the ones the block limits VPD page advertises (``vpd.MAX_ATOMIC_*``).

A virtual disk has no grown or primary defects: READ DEFECT DATA returns an empty list
in the format asked for, with PLISTV/GLISTV echoing the lists requested.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from pytgt.scsi import vpd
from pytgt.scsi.cdb import Command, Opcode, usage_bits
from pytgt.scsi.pr import PR_READ
from pytgt.scsi.sense import Asc, CheckCondition, SenseKey, invalid_field, lba_out_of_range
from pytgt.scsi.task import ScsiResult, ScsiTask, Status

if TYPE_CHECKING:
    from pytgt.scsi.lu import LogicalUnit

_ATOMIC16 = struct.Struct(">xBQHH")  # flags, LBA, ATOMIC BOUNDARY, TRANSFER LENGTH
_WRPROTECT, _FUA = 0xE0, 0x08

# Defect list formats (SBC-4 6.2.1): short block, long block, bytes from index,
# physical sector, vendor specific, extended bytes from index, extended physical sector.
_FORMATS = frozenset({0b000, 0b011, 0b100, 0b101, 0b110})


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


def _defect_format(fmt: int, field: int) -> int:
    if fmt not in _FORMATS:
        raise invalid_field(field, 2)
    return fmt


async def read_defect_data_10(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    lists = cdb[2] & 0x18  # REQ_PLIST, REQ_GLIST
    fmt = _defect_format(cdb[2] & 0x07, 2)
    alloc = struct.unpack_from(">H", cdb, 7)[0]
    header = struct.pack(">xBH", lists | fmt, 0)  # PLISTV/GLISTV, DEFECT LIST LENGTH 0
    return ScsiResult(Status.GOOD, header[:alloc])


async def read_defect_data_12(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    lists = cdb[1] & 0x18
    fmt = _defect_format(cdb[1] & 0x07, 1)
    alloc = struct.unpack_from(">I", cdb, 6)[0]
    # PLISTV/GLISTV and format, GENERATION CODE 0, DEFECT LIST LENGTH 0.
    header = struct.pack(">xBHI", lists | fmt, 0, 0)
    return ScsiResult(Status.GOOD, header[:alloc])


def extra_rows() -> list[Command]:
    """Rows for the disk command table."""
    lba = (0xFF,) * 8
    return [
        Command(Opcode.WRITE_ATOMIC_16, "WRITE ATOMIC(16)", write_atomic_16, _atomic_length,
                usage=usage_bits(16, Opcode.WRITE_ATOMIC_16, 0x18, *lba, 0, 0, 0xFF, 0xFF,
                                 0x3F, 0x07),
                writes=True),
        Command(Opcode.READ_DEFECT_DATA_10, "READ DEFECT DATA(10)", read_defect_data_10,
                usage=usage_bits(10, Opcode.READ_DEFECT_DATA_10, 0, 0x1F, 0, 0, 0, 0, 0xFF,
                                 0xFF, 0x07),
                pr_access=PR_READ),
        Command(Opcode.READ_DEFECT_DATA_12, "READ DEFECT DATA(12)", read_defect_data_12,
                usage=usage_bits(12, Opcode.READ_DEFECT_DATA_12, 0x1F, 0xFF, 0xFF, 0xFF, 0xFF,
                                 0xFF, 0xFF, 0xFF, 0xFF, 0, 0x07),
                pr_access=PR_READ),
    ]
