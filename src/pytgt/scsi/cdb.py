"""CDB decoding helpers and operation codes (SPC-4 4.2, SBC-3 5)."""

from __future__ import annotations

import enum
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytgt.scsi.lu import LogicalUnit
    from pytgt.scsi.task import ScsiResult, ScsiTask


class OperationCode(enum.IntEnum):
    """OPERATION CODE values (SPC-4 4.2.5.1), named as in SPC-4 / SBC-3."""

    TEST_UNIT_READY = 0x00
    REQUEST_SENSE = 0x03
    FORMAT_UNIT = 0x04
    READ_6 = 0x08
    WRITE_6 = 0x0A
    INQUIRY = 0x12
    MODE_SELECT_6 = 0x15
    RESERVE_6 = 0x16
    RELEASE_6 = 0x17
    MODE_SENSE_6 = 0x1A
    START_STOP_UNIT = 0x1B
    RECEIVE_DIAGNOSTIC_RESULTS = 0x1C
    SEND_DIAGNOSTIC = 0x1D
    PREVENT_ALLOW_MEDIUM_REMOVAL = 0x1E
    READ_CAPACITY_10 = 0x25
    READ_10 = 0x28
    WRITE_10 = 0x2A
    WRITE_AND_VERIFY_10 = 0x2E
    VERIFY_10 = 0x2F
    PRE_FETCH_10 = 0x34
    SYNCHRONIZE_CACHE_10 = 0x35
    READ_DEFECT_DATA_10 = 0x37
    WRITE_BUFFER = 0x3B
    READ_BUFFER = 0x3C
    WRITE_SAME_10 = 0x41
    UNMAP = 0x42
    SANITIZE = 0x48
    LOG_SELECT = 0x4C
    LOG_SENSE = 0x4D
    MODE_SELECT_10 = 0x55
    RESERVE_10 = 0x56
    RELEASE_10 = 0x57
    MODE_SENSE_10 = 0x5A
    PERSISTENT_RESERVE_IN = 0x5E
    PERSISTENT_RESERVE_OUT = 0x5F
    EXTENDED_COPY = 0x83
    RECEIVE_COPY_RESULTS = 0x84
    READ_16 = 0x88
    COMPARE_AND_WRITE = 0x89
    WRITE_16 = 0x8A
    ORWRITE_16 = 0x8B
    WRITE_AND_VERIFY_16 = 0x8E
    VERIFY_16 = 0x8F
    PRE_FETCH_16 = 0x90
    SYNCHRONIZE_CACHE_16 = 0x91
    WRITE_SAME_16 = 0x93
    WRITE_ATOMIC_16 = 0x9C
    SERVICE_ACTION_IN_16 = 0x9E
    REPORT_LUNS = 0xA0
    MAINTENANCE_IN = 0xA3
    MAINTENANCE_OUT = 0xA4
    READ_12 = 0xA8
    WRITE_12 = 0xAA
    WRITE_AND_VERIFY_12 = 0xAE
    VERIFY_12 = 0xAF
    READ_DEFECT_DATA_12 = 0xB7


class ServiceAction(enum.IntEnum):
    """Service actions of SERVICE ACTION IN(16) (9Eh) and MAINTENANCE IN (A3h)."""

    READ_CAPACITY_16 = 0x10
    GET_LBA_STATUS = 0x12
    REPORT_TARGET_PORT_GROUPS = 0x0A
    REPORT_SUPPORTED_OPERATION_CODES = 0x0C
    REPORT_SUPPORTED_TASK_MANAGEMENT_FUNCTIONS = 0x0D


def cdb_length(opcode: int) -> int:
    """CDB length from the GROUP CODE (SPC-4 4.2.5.1); 0 for vendor/reserved groups."""
    return (6, 10, 10, 0, 16, 12, 0, 0)[opcode >> 5]




@dataclass(frozen=True, slots=True)
class Command:
    """One row of a device type's command table (tgt's ``device_type_operations``).

    ``data_out(cdb, block_size)`` is the number of Data-Out bytes the CDB transfers;
    ``skip_ua`` commands (INQUIRY, REPORT LUNS, REQUEST SENSE) never report a unit
    attention; ``medium`` commands fail with NOT READY when the LU is offline;
    ``writes`` commands fail with DATA PROTECT when read-only and map store errors to
    WRITE ERROR; ``conflicts`` commands are refused while another nexus holds an
    SPC-2 reservation; ``pr_access`` says how a persistent reservation held elsewhere
    affects the command (0 allowed, 1 read: refused under exclusive access types,
    2 write: refused under every type; SPC-4 5.9.1). ``available(lu)``, when given, says
    whether this LU offers the command now (e.g. only when thin provisioned): when it
    does not, the command is refused as unsupported and REPORT SUPPORTED OPERATION
    CODES leaves it out. ``nowait(lu, task)``, when given, answers an admitted SIMPLE
    command at once if the store can (its Data-In, or None to run ``handler``;
    ``fastpath.py``).
    """

    opcode: int
    name: str
    handler: Callable[[LogicalUnit, ScsiTask], Awaitable[ScsiResult]]
    data_out: Callable[[bytes, int], int] | None = None
    service_action: int | None = None
    usage: bytes = b""
    skip_ua: bool = False
    medium: bool = True
    writes: bool = False
    conflicts: bool = True
    pr_access: int = 2
    available: Callable[[LogicalUnit], bool] | None = None
    nowait: Callable[[LogicalUnit, ScsiTask], bytes | bytearray | memoryview | None] | None = None


def usage_bits(length: int, opcode: int, *masks: int) -> bytes:
    """CDB USAGE DATA (SPC-4 6.35.3): opcode then one mask byte per CDB byte."""
    out = bytes((opcode, *masks))
    return out + b"\0" * (length - len(out))


# Data-Out lengths per CDB (bytes), for expected_data_out / R2T (Command.data_out); the
# handlers of the same commands are in sbc.py.
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


def blocks_6(cdb: bytes, bs: int) -> int:
    return (cdb[4] or 256) * bs


def blocks_10(cdb: bytes, bs: int) -> int:
    return int(_U16.unpack_from(cdb, 7)[0]) * bs


def blocks_12(cdb: bytes, bs: int) -> int:
    return int(_U32.unpack_from(cdb, 6)[0]) * bs


def blocks_16(cdb: bytes, bs: int) -> int:
    return int(_U32.unpack_from(cdb, 10)[0]) * bs


def param_len_6(cdb: bytes, bs: int) -> int:
    """MODE SELECT(6): PARAMETER LIST LENGTH in byte 4."""
    return cdb[4]


def param_len_7(cdb: bytes, bs: int) -> int:
    """MODE SELECT(10), UNMAP, LOG SELECT: PARAMETER LIST LENGTH in bytes 7-8."""
    return int(_U16.unpack_from(cdb, 7)[0])


def param_len_5_4(cdb: bytes, bs: int) -> int:
    """PERSISTENT RESERVE OUT: PARAMETER LIST LENGTH in bytes 5-8."""
    return int(_U32.unpack_from(cdb, 5)[0])


def param_len_3(cdb: bytes, bs: int) -> int:
    """SEND DIAGNOSTIC: PARAMETER LIST LENGTH in bytes 3-4."""
    return int(_U16.unpack_from(cdb, 3)[0])


def param_len_6_3(cdb: bytes, bs: int) -> int:
    """WRITE BUFFER: PARAMETER LIST LENGTH in bytes 6-8."""
    return int.from_bytes(cdb[6:9], "big")


def verify_10_data_out(cdb: bytes, bs: int) -> int:
    return _bytchk(cdb, bs, blocks_10)


def verify_12_data_out(cdb: bytes, bs: int) -> int:
    return _bytchk(cdb, bs, blocks_12)


def verify_16_data_out(cdb: bytes, bs: int) -> int:
    return _bytchk(cdb, bs, blocks_16)


def _bytchk(cdb: bytes, bs: int, blocks: Callable[[bytes, int], int]) -> int:
    """VERIFY: BYTCHK 00b no Data-Out, 01b all blocks, 11b one block (SBC-3 5.29)."""
    bytchk = (cdb[1] >> 1) & 3
    if bytchk == 0:
        return 0
    if bytchk == 3:
        return bs
    return blocks(cdb, bs)


def write_same_10_data_out(cdb: bytes, bs: int) -> int:
    return bs


def write_same_16_data_out(cdb: bytes, bs: int) -> int:
    return 0 if cdb[1] & 0x01 else bs  # NDOB


def compare_and_write_data_out(cdb: bytes, bs: int) -> int:
    return 2 * cdb[13] * bs
