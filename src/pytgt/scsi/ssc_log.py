"""Log pages of the tape LU (LOG SENSE, SPC-4 6.7; LOG SELECT, 6.6) and REPORT DENSITY
SUPPORT (SSC-3, 44h).

Pages: supported pages (00h, and subpage FFh), write and read error counters (02h, 03h,
SPC-4 7.3.20/7.3.18: no errors, the bytes processed), sequential-access device (0Ch,
SSC-3 8.2: bytes from and to the host and the medium, cleaning required 0), TapeAlert
(2Eh, SSC-3 8.2 and annex A: 64 flags; 0Bh CLEANING MEDIA with a cleaning cartridge loaded, 0Ch
UNSUPPORTED FORMAT with a medium refused as corrupted) and tape capacity (31h, as LTO
drives and mtx's tapeinfo have it: remaining and maximum capacity of partition 0, MiB).
Counters are the LU's since pytgtd started or the last LOG SELECT PCR=1.
"""

from __future__ import annotations

import contextlib
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytgt.scsi import spc
from pytgt.scsi.lu import LogicalUnit
from pytgt.scsi.sense import Asc, CheckCondition, SenseKey, invalid_field, invalid_param
from pytgt.scsi.tape_media import DENSITY_CODE, CleaningCartridge, MediaType, MediumFormatError
from pytgt.scsi.task import ScsiResult, ScsiTask

if TYPE_CHECKING:
    from pytgt.scsi.ssc import TapeUnit

MiB = 1 << 20
_U16 = struct.Struct(">H")
SUPPORTED, WRITE_ERRORS, READ_ERRORS, SEQUENTIAL_ACCESS, TAPE_ALERT, TAPE_CAPACITY = \
    0x00, 0x02, 0x03, 0x0C, 0x2E, 0x31
PAGES = (SUPPORTED, WRITE_ERRORS, READ_ERRORS, SEQUENTIAL_ACCESS, TAPE_ALERT, TAPE_CAPACITY)
PC_CUMULATIVE, PC_DEFAULT_CUMULATIVE = 1, 3
# TapeAlert flags (SSC-3 annex A)
CLEANING_MEDIA, UNSUPPORTED_FORMAT = 0x0B, 0x0C
# parameter control byte: FORMAT AND LINKING 00b (bounded data counter), 11b (binary)
_COUNTER, _BINARY = 0x00, 0x03


@dataclass
class TapeCounters:
    """Bytes moved by this LU's READ and WRITE commands (the medium's are the same:
    data is stored as written)."""

    written: int = 0
    read: int = 0

    def reset(self) -> None:
        self.written = self.read = 0


def _param(code: int, value: int, length: int, control: int = _COUNTER) -> bytes:
    return _U16.pack(code) + bytes((control, length)) + value.to_bytes(length, "big")


def _unit(lu: LogicalUnit) -> TapeUnit:
    from pytgt.scsi.ssc import TapeUnit

    assert isinstance(lu, TapeUnit)
    return lu


async def _state(unit: TapeUnit) -> tuple[set[int], int, int]:
    """Set TapeAlert flags, remaining and maximum capacity (bytes) of the medium."""
    flags: set[int] = set()
    if unit.store is None or not unit.loaded:
        return flags, 0, 0
    tape = unit.medium
    async with tape.lock:
        try:
            used = await tape.end_offset(len(await tape.records()))
        except CleaningCartridge:
            flags.add(CLEANING_MEDIA)
            return flags, 0, tape.capacity
        except MediumFormatError:
            flags.add(UNSUPPORTED_FORMAT)
            return flags, 0, 0
    return flags, max(tape.capacity - used, 0), tape.capacity


async def _page(unit: TapeUnit, code: int, pc: int) -> list[tuple[int, bytes]]:
    """(parameter code, parameter) of a page, in order."""
    live = pc == PC_CUMULATIVE  # the counters' threshold and default values: zeros
    c = unit.counters
    if code in (WRITE_ERRORS, READ_ERRORS):  # SPC-4 7.3.20, 7.3.18
        done = (c.written if code == WRITE_ERRORS else c.read) if live else 0
        return [(n, _param(n, done if n == 5 else 0, 8 if n == 5 else 4)) for n in range(7)]
    if code == SEQUENTIAL_ACCESS:  # SSC-3 8.2
        w, r = (c.written, c.read) if live else (0, 0)
        return [(0, _param(0, w, 8)), (1, _param(1, w, 8)), (2, _param(2, r, 8)),
                (3, _param(3, r, 8)), (0x100, _param(0x100, 0, 1, _BINARY))]
    # TapeAlert flags and capacities are not counters: the current values whatever the
    # PAGE CONTROL (mtx's tapeinfo asks with PC 00b)
    flags, remaining, maximum = await _state(unit)
    if code == TAPE_ALERT:  # 64 one-byte flags
        return [(n, _param(n, int(n in flags), 1, _BINARY)) for n in range(1, 0x41)]
    assert code == TAPE_CAPACITY
    return [(1, _param(1, remaining // MiB, 4, _BINARY)), (2, _param(2, 0, 4, _BINARY)),
            (3, _param(3, maximum // MiB, 4, _BINARY)), (4, _param(4, 0, 4, _BINARY))]


async def log_sense(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    """LOG SENSE (SPC-4 6.7); SP (saving) and PPC are refused."""
    cdb = task.cdb
    if cdb[1]:  # SP (bit 0): nothing is saved; PPC (bit 1): changes are not tracked
        raise invalid_field(1, cdb[1].bit_length() - 1)
    pc, code, subpage = cdb[2] >> 6, cdb[2] & 0x3F, cdb[3]
    pointer, alloc = _U16.unpack_from(cdb, 5)[0], _U16.unpack_from(cdb, 7)[0]
    if code not in PAGES:
        raise invalid_field(2, 5)
    if subpage and not (code == SUPPORTED and subpage == 0xFF):
        raise invalid_field(3)
    if code == SUPPORTED:
        if subpage == 0xFF:  # supported pages and subpages: (page, 00h) each, and (00h, FFh)
            pairs = [(p, 0) for p in PAGES]
            pairs.insert(1, (SUPPORTED, 0xFF))
            body = b"".join(bytes(p) for p in pairs)
            return spc.data_in(bytes((0x40, 0xFF)) + _U16.pack(len(body)) + body, alloc)
        body = bytes(PAGES)
        return spc.data_in(bytes((0, 0)) + _U16.pack(len(body)) + body, alloc)
    params = await _page(_unit(lu), code, pc)
    if pointer > params[-1][0]:
        raise invalid_field(5)  # PARAMETER POINTER beyond the last parameter code
    body = b"".join(p for n, p in params if n >= pointer)
    return spc.data_in(bytes((code, 0)) + _U16.pack(len(body)) + body, alloc)


async def log_select(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    """LOG SELECT (SPC-4 6.6): PCR=1 (or PC 11b without parameters) resets the counters;
    no parameter is changeable."""
    cdb = task.cdb
    if cdb[1] & 0xFD:  # SP (bit 0): nothing is saved
        raise invalid_field(1, (cdb[1] & 0xFD).bit_length() - 1)
    pcr, pc, code = bool(cdb[1] & 0x02), cdb[2] >> 6, cdb[2] & 0x3F
    length = _U16.unpack_from(cdb, 7)[0]
    if code and code not in PAGES:
        raise invalid_field(2, 5)
    if cdb[3]:
        raise invalid_field(3)
    if pcr and length:
        raise invalid_field(7)  # PCR with a parameter list
    if length:
        data = spc.param_list(task, length)
        if len(data) < 4:
            raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.PARAMETER_LIST_LENGTH_ERROR)
        raise invalid_param(4 if len(data) > 4 else 0)  # no parameter may be changed
    if pcr or pc == PC_DEFAULT_CUMULATIVE:
        _unit(lu).counters.reset()
    return spc.good()


# REPORT DENSITY SUPPORT (SSC-3): one LTO-5-like density, and its medium type
_DENSITY = struct.Struct(">BBBxx3sHHI8s8s20s")
_MEDIUM_TYPE = struct.Struct(">BxHB9sHHxx8s8s20s")
WRTOK, DEFLT = 0x80, 0x20
NATIVE_MB = 1_500_000  # LTO-5's native capacity, 10^6 bytes
_BITS_PER_MM, _WIDTH, _TRACKS, _LENGTH = 15142, 127, 1280, 846  # 0.5 inch, 846 m


async def report_density_support(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    """REPORT DENSITY SUPPORT: MEDIA=1 for the loaded medium (its capacity), MEDIUM TYPE=1
    for the medium type descriptor."""
    cdb = task.cdb
    if cdb[1] & 0xFC:
        raise invalid_field(1, (cdb[1] & 0xFC).bit_length() - 1)
    media, medium_type = bool(cdb[1] & 0x01), bool(cdb[1] & 0x02)
    alloc = _U16.unpack_from(cdb, 7)[0]
    unit = _unit(lu)
    capacity_mb = NATIVE_MB
    wrtok = WRTOK
    if media:
        if unit.store is None or not unit.loaded:
            raise CheckCondition(SenseKey.NOT_READY, Asc.MEDIUM_NOT_PRESENT)
        async with unit.medium.lock:  # the label and a tgt image's capacity
            with contextlib.suppress(CleaningCartridge):
                await unit.medium.records()
        capacity_mb = unit.medium.capacity // 1_000_000
        if unit.write_protected or unit.medium.label.media_type == MediaType.CLEAN:
            wrtok = 0
    if medium_type:
        desc = _MEDIUM_TYPE.pack(0x00, 52, 1, bytes((DENSITY_CODE,)).ljust(9, b"\0"),
                                 _WIDTH, _LENGTH, b"LTO-CVE ", b"U-516   ",
                                 b"Ultrium 5/16T".ljust(20))
    else:
        desc = _DENSITY.pack(DENSITY_CODE, DENSITY_CODE, wrtok | DEFLT,
                             _BITS_PER_MM.to_bytes(3, "big"), _WIDTH, _TRACKS, capacity_mb,
                             b"LTO-CVE ", b"U-516   ", b"LTO-5".ljust(20))
    return spc.data_in(_U16.pack(len(desc) + 2) + b"\0\0" + desc, alloc)
