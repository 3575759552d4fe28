"""READ DEFECT DATA(10/12) (SBC-4 5.20, 5.21).

A virtual disk has no grown or primary defects: READ DEFECT DATA returns an empty list
in the format asked for, with PLISTV/GLISTV echoing the lists requested.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from pytgt.scsi.cdb import Command, OperationCode, usage_bits
from pytgt.scsi.pr import PR_READ
from pytgt.scsi.sense import invalid_field
from pytgt.scsi.task import ScsiResult, ScsiTask, Status

if TYPE_CHECKING:
    from pytgt.scsi.lu import LogicalUnit

# Defect list formats (SBC-4 6.2.1): short block, long block, bytes from index,
# physical sector, vendor specific, extended bytes from index, extended physical sector.
_FORMATS = frozenset({0b000, 0b011, 0b100, 0b101, 0b110})


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


COMMANDS: list[Command] = [
    Command(OperationCode.READ_DEFECT_DATA_10, "READ DEFECT DATA(10)", read_defect_data_10,
            usage=usage_bits(10, OperationCode.READ_DEFECT_DATA_10, 0, 0x1F, 0, 0, 0, 0, 0xFF,
                             0xFF, 0x07),
            pr_access=PR_READ),
    Command(OperationCode.READ_DEFECT_DATA_12, "READ DEFECT DATA(12)", read_defect_data_12,
            usage=usage_bits(12, OperationCode.READ_DEFECT_DATA_12, 0x1F, 0xFF, 0xFF, 0xFF, 0xFF,
                             0xFF, 0xFF, 0xFF, 0xFF, 0, 0x07),
            pr_access=PR_READ),
]
"""The command-table rows (block devices: sbc.DISK_COMMANDS)."""
