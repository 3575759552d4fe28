"""Stream commands (SSC-3) for the "tape" device type, on top of the SPC-4 table.

A :class:`TapeUnit` is a removable (RMB=1) sequential-access LU (peripheral type 01h)
whose medium is a :class:`~pytgt.scsi.tape_media.TapeMedium` on the backing store.
The block length of the mode block descriptor is the LU's ``block_size``: 0 selects
variable-block mode, otherwise FIXED=1 transfers count blocks of that length. Conditions
met while reading, spacing or writing (filemark, EOD, BOP, early warning, incorrect
length) end with CHECK CONDITION whose sense carries the FILEMARK/EOM/ILI bits and the
residue in INFORMATION (SSC-3 4.2.x); the data read before the condition is returned.
The cartridge's medium auxiliary memory (READ/WRITE ATTRIBUTE) is ssc_mam.py's; the log
pages and REPORT DENSITY SUPPORT (an LTO-5-like density, 58h) are ssc_log.py's.
"""

from __future__ import annotations

import contextlib
import logging
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pytgt.scsi import cdb as c
from pytgt.scsi import spc, ssc_log, ssc_mam
from pytgt.scsi.cdb import Command, OperationCode
from pytgt.scsi.lu import LogicalUnit
from pytgt.scsi.pr import PR_ALLOWED, PR_READ
from pytgt.scsi.sense import (
    Asc,
    CheckCondition,
    SenseKey,
    build_sense,
    invalid_field,
    invalid_param,
)
from pytgt.scsi.ssc_mode import TapeModePages
from pytgt.scsi.tape_media import (
    DENSITY_CODE,
    CleaningCartridge,
    Kind,
    MediaType,
    MediumFormatError,
    MediumFull,
    Payload,
    TapeMedium,
)
from pytgt.scsi.task import ScsiResult, ScsiTask, Status
from pytgt.scsi.taskset import TaskSet

if TYPE_CHECKING:
    from pytgt.stores.base import BackingStore

# SSC-3 operation codes (SSC-3 table 5) not already named in cdb.OperationCode.
REWIND = 0x01
READ_BLOCK_LIMITS = 0x05
WRITE_FILEMARKS_6 = 0x10
SPACE_6 = 0x11
ERASE_6 = 0x19
LOAD_UNLOAD = 0x1B
LOCATE_10 = 0x2B
READ_POSITION = 0x34
SPACE_16 = 0x91
LOCATE_16 = 0x92
REPORT_DENSITY_SUPPORT = 0x44
READ_ATTRIBUTE = 0x8C
WRITE_ATTRIBUTE = 0x8D

MAX_BLOCK = 0xFFFFFF  # READ BLOCK LIMITS: MAXIMUM BLOCK LENGTH LIMIT (24 bits)
DENSITY = 0x00  # default density: MODE SELECT takes it for the medium's (DENSITY_CODE)

# Additional sense codes of SSC-3 (SPC-4 annex D).
FILEMARK_DETECTED = (0x00, 0x01)
END_OF_PARTITION_MEDIUM_DETECTED = (0x00, 0x02)
SETMARK_DETECTED = (0x00, 0x03)
BEGINNING_OF_PARTITION_MEDIUM_DETECTED = (0x00, 0x04)
END_OF_DATA_DETECTED = (0x00, 0x05)
MEDIUM_FORMAT_CORRUPTED = (0x31, 0x00)
SEQUENTIAL_POSITIONING_ERROR = (0x3B, 0x00)
CLEANING_CARTRIDGE_INSTALLED = (0x30, 0x03)
WORM_MEDIUM_OVERWRITE_ATTEMPTED = (0x30, 0x0C)
NOT_READY_TO_READY_CHANGE = (0x28, 0x00)  # MEDIUM MAY HAVE CHANGED

# Sense byte 2 flags (fixed format) / stream commands sense descriptor (SPC-4 4.5.2.3).
FILEMARK, EOM, ILI = 0x80, 0x40, 0x20

_U16 = struct.Struct(">H")
log = logging.getLogger("pytgt.scsi")


class TapeCondition(Exception):
    """A stream condition: sense with FILEMARK/EOM/ILI bits and INFORMATION (a residue)."""

    def __init__(self, key: int, asc: Asc | tuple[int, int], flags: int,
                 information: int) -> None:
        self.key, self.asc = key, (asc[0], asc[1])
        self.flags, self.information = flags, information
        super().__init__(f"sense {key:x}/{asc[0]:02x}/{asc[1]:02x} flags {flags:02x}")


def tape_sense(exc: TapeCondition, descriptor: bool) -> bytes:
    """Fixed (70h) or descriptor (72h) sense with the stream bits (SPC-4 4.5.2.3, 4.5.3)."""
    info = exc.information & 0xFFFFFFFF  # a negative residue in two's complement
    if not descriptor:
        sense = bytearray(build_sense(exc.key, *exc.asc, information=info))
        sense[2] |= exc.flags
        return bytes(sense)
    sense = bytearray(build_sense(exc.key, *exc.asc, descriptor=True, information=info))
    if exc.flags:
        sense += bytes((0x04, 0x02, 0, exc.flags))
        sense[7] += 4
    return bytes(sense)


class TapeUnit(LogicalUnit):
    """An SSC-3 sequential-access LU on a tape medium (docs/tape.md)."""

    def __init__(self, lun: int, store: BackingStore, *, tid: int, path: str = "",
                 bstype: str = "rdwr", bsoflags: str = "") -> None:
        self._block_length = 0
        super().__init__("tape", lun, store, tid=tid, path=path, bstype=bstype,
                         bsoflags=bsoflags)
        self.commands.clear()
        self.service_actions.clear()
        self._install(TAPE_COMMANDS)
        self.product_id = "VIRTUAL-TAPE"
        self.removable = True
        self.medium = TapeMedium(store, count_load=self._counts_loads)
        self.counters = ssc_log.TapeCounters()  # bytes read and written (log pages)
        self._block_length = 0  # variable-block mode until MODE SELECT sets a length
        self._reported: MediumFormatError | None = None  # the damage last logged
        self.mode = TapeModePages(lambda: self.medium.worm)  # SSC-3 8.3 (ssc_mode.py)
        self.task_set = TaskSet(self.mode)

    def _counts_loads(self) -> bool:
        """A load is counted in the cartridge's MAM unless the LU is read-only."""
        return not self.readonly

    @property
    def block_size(self) -> int:
        """The block length of the mode block descriptor (0: variable)."""
        return self._block_length

    @block_size.setter
    def block_size(self, value: int) -> None:
        self._block_length = value

    @property
    def num_blocks(self) -> int:
        return 0

    @property
    def thin_default(self) -> bool:
        """No thin provisioning (no UNMAP on a tape), as tgt shows a tape LU."""
        return False

    def change_medium(self, store: BackingStore | None, path: str) -> BackingStore | None:
        """Put a cartridge in (None: take it out), rewound; returns the old store.

        A media changer's MOVE MEDIUM does this (smc.py): a new cartridge gives every
        nexus NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED (SPC-4 5.14); without
        one, medium access commands end in NOT READY, MEDIUM NOT PRESENT. The caller
        closes the returned store.
        """
        old = self.store
        self.store = store
        self.path = path if store is not None else ""
        self.loaded = store is not None
        if store is not None:
            self.medium = TapeMedium(store, count_load=self._counts_loads)
            self.ua_add_all(self.nexus_keys, NOT_READY_TO_READY_CHANGE)
        return old

    async def run(self, task: ScsiTask, row: Command | None = None) -> ScsiResult:
        try:
            return await super().run(task, row)
        except MediumFormatError as exc:
            if exc is not self._reported:  # once per medium: the reason, for the admin
                self._reported = exc
                log.warning("LUN %d of target %d: %s: %s; the medium is refused (MEDIUM "
                            "FORMAT CORRUPTED; pytgtimg --op show names the damage)",
                            self.lun, self.tid, self.path, exc)
            return self.check_condition(CheckCondition(SenseKey.MEDIUM_ERROR,
                                                       MEDIUM_FORMAT_CORRUPTED))
        except CleaningCartridge:
            return self.check_condition(CheckCondition(SenseKey.NOT_READY,
                                                       CLEANING_CARTRIDGE_INSTALLED))


def _unit(lu: LogicalUnit) -> TapeUnit:
    assert isinstance(lu, TapeUnit)
    return lu


def _condition(lu: LogicalUnit, exc: TapeCondition,
               data: bytes | bytearray | memoryview = b"") -> ScsiResult:
    return ScsiResult(Status.CHECK_CONDITION, data, tape_sense(exc, lu.mode.d_sense))


def _count24(cdb: bytes) -> int:
    return int.from_bytes(cdb[2:5], "big")


def _mark_condition(kind: Kind, residue: int) -> TapeCondition:
    asc = SETMARK_DETECTED if kind == Kind.SETMARK else FILEMARK_DETECTED
    return TapeCondition(SenseKey.NO_SENSE, asc, FILEMARK, residue)


def _eod(residue: int) -> TapeCondition:
    return TapeCondition(SenseKey.BLANK_CHECK, END_OF_DATA_DETECTED, 0, residue)


def _bop(residue: int) -> TapeCondition:
    return TapeCondition(SenseKey.NO_SENSE, BEGINNING_OF_PARTITION_MEDIUM_DETECTED, EOM, residue)


# INQUIRY (SPC-4 6.6.2): the standard data names SSC-3 instead of SBC-3.
SSC3_VERSION = 0x0400  # version descriptor: SSC-3 (no version claimed)


async def inquiry(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    evpd, _, alloc = spc.check_inquiry_cdb(task.cdb)
    if evpd:
        return await spc.inquiry(lu, task)
    data = bytearray(spc.standard_inquiry(lu))
    struct.pack_into(">H", data, 64, SSC3_VERSION)  # the fourth version descriptor
    return spc.data_in(data, alloc)


# READ BLOCK LIMITS (SSC-3 7.4), REWIND (7.6), LOAD UNLOAD (7.2).
async def read_block_limits(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    if task.cdb[1] & 0x01:
        raise invalid_field(1, 0)  # MLOI: no maximum logical object identifier to report
    return ScsiResult(Status.GOOD, struct.pack(">BBHH", 0, MAX_BLOCK >> 16,
                                               MAX_BLOCK & 0xFFFF, 1))


async def rewind(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    tape = _unit(lu).medium
    async with tape.lock:
        tape.position = 0
    return spc.good()


async def load_unload(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    b4 = task.cdb[4]
    if b4 & 0x04 and b4 & 0x01:
        raise invalid_field(4, 2)  # EOT with LOAD
    unit = _unit(lu)
    if unit.store is None:  # a changer took the cartridge out
        raise CheckCondition(SenseKey.NOT_READY, Asc.MEDIUM_NOT_PRESENT)
    if not b4 & 0x01 and unit.prevent_removal:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.MEDIUM_REMOVAL_PREVENTED)
    async with unit.medium.lock:
        unit.medium.position = 0
        unit.loaded = bool(b4 & 0x01)
    return spc.good()


# READ(6) (SSC-3 6.4, 4.2.x).
async def read_6(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    fixed, sili = bool(cdb[1] & 0x01), bool(cdb[1] & 0x02)
    if cdb[1] & 0xFC:
        raise invalid_field(1)
    count = _count24(cdb)
    unit = _unit(lu)
    if fixed and (sili or not unit.block_size):
        raise invalid_field(1, 1 if sili else 0)
    if not count:
        return spc.good()
    async with unit.medium.lock:
        if fixed:
            result = await _read_fixed(unit, count)
        else:
            result = await _read_variable(unit, count, sili)
    unit.counters.read += len(result.data)
    return result


async def _read_variable(unit: TapeUnit, length: int, sili: bool) -> ScsiResult:
    tape = unit.medium
    recs = await tape.records()
    if tape.position == len(recs):
        return _condition(unit, _eod(length))
    rec = recs[tape.position]
    tape.position += 1
    if rec.kind != Kind.DATA:
        return _condition(unit, _mark_condition(rec.kind, length))
    data = await tape.payload(rec)
    if rec.length == length:
        return ScsiResult(Status.GOOD, data)
    data = memoryview(data)[:length] if rec.length > length else data
    if sili and (rec.length < length or not unit.block_size):
        return ScsiResult(Status.GOOD, data)
    return _condition(unit, TapeCondition(SenseKey.NO_SENSE, Asc.NO_ADDITIONAL_SENSE, ILI,
                                          length - rec.length), data)


async def _read_fixed(unit: TapeUnit, count: int) -> ScsiResult:
    tape, bs = unit.medium, unit.block_size
    recs = await tape.records()
    parts: list[bytes | bytearray | memoryview] = []
    for done in range(count):
        if tape.position == len(recs):
            return _condition(unit, _eod(count - done), b"".join(parts))
        rec = recs[tape.position]
        tape.position += 1
        if rec.kind != Kind.DATA:
            return _condition(unit, _mark_condition(rec.kind, count - done), b"".join(parts))
        if rec.length != bs:  # incorrect length: the block is not transferred
            return _condition(unit, TapeCondition(SenseKey.NO_SENSE, Asc.NO_ADDITIONAL_SENSE,
                                                  ILI, count - done), b"".join(parts))
        parts.append(await tape.payload(rec))
    return ScsiResult(Status.GOOD, parts[0] if len(parts) == 1 else b"".join(parts))


# WRITE(6) (SSC-3 6.8), WRITE FILEMARKS(6) (6.9), ERASE(6) (6.2).
def write_6_data_out(cdb: bytes, bs: int) -> int:
    count = _count24(cdb)
    return count * bs if cdb[1] & 0x01 else count


async def write_6(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    fixed = bool(cdb[1] & 0x01)
    if cdb[1] & 0xFE:
        raise invalid_field(1)
    unit = _unit(lu)
    count, bs = _count24(cdb), unit.block_size
    if fixed and not bs:
        raise invalid_field(1, 0)
    if not fixed and count > MAX_BLOCK:
        raise invalid_field(2)
    if not count:
        return spc.good()
    length = count * bs if fixed else count
    data = memoryview(task.data_out).cast("B")
    if len(data) < length:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.PARAMETER_LIST_LENGTH_ERROR)
    if fixed:
        items = [(Kind.DATA, data[i * bs:(i + 1) * bs]) for i in range(count)]
    else:
        items = [(Kind.DATA, data[:length])]
    return await _write(unit, items, count)


async def write_filemarks_6(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    if cdb[1] & 0xFC:
        raise invalid_field(1)
    kind = Kind.SETMARK if cdb[1] & 0x02 else Kind.FILEMARK
    count = _count24(cdb)
    unit = _unit(lu)
    if not count:  # flushes buffered data: there is none
        await unit.medium.store.flush()
        return spc.good()
    return await _write(unit, [(kind, b"")] * count, count)


async def _worm_check(tape: TapeMedium) -> None:
    """On a WORM medium only EOD, or filemarks just before it, may be overwritten
    (SSC-3 WORM mode; the medium configuration page's restrictions, ssc_mode.py)."""
    recs = await tape.records()  # reads the label first: the media type is in it
    if tape.worm and any(rec.kind != Kind.FILEMARK for rec in recs[tape.position:]):
        raise CheckCondition(SenseKey.DATA_PROTECT, WORM_MEDIUM_OVERWRITE_ATTEMPTED)


async def _write(unit: TapeUnit, items: Sequence[tuple[Kind, Payload]],
                 count: int) -> ScsiResult:
    async with unit.medium.lock:
        await _worm_check(unit.medium)
        try:
            early_warning = await unit.medium.write(items)
        except MediumFull:  # VOLUME OVERFLOW, nothing written (SSC-3 4.2.5)
            return _condition(unit, TapeCondition(SenseKey.VOLUME_OVERFLOW,
                                                  END_OF_PARTITION_MEDIUM_DETECTED, EOM, count))
    unit.counters.written += sum(len(payload) for _, payload in items)
    if early_warning:  # written; the application is told the end is near
        return _condition(unit, TapeCondition(SenseKey.NO_SENSE,
                                              END_OF_PARTITION_MEDIUM_DETECTED, EOM, 0))
    return spc.good()


async def erase_6(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    if task.cdb[1] & 0xFC:
        raise invalid_field(1)
    unit = _unit(lu)
    async with unit.medium.lock:
        await _worm_check(unit.medium)
        await unit.medium.erase()
    return spc.good()


# SPACE(6) (SSC-3 6.6), LOCATE(10) (7.1), READ POSITION (7.5).
async def space_6(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    code = cdb[1] & 0x0F
    if cdb[1] & 0xF0 or code not in (0, 1, 3, 4):
        raise invalid_field(1, 0)  # 2 (sequential filemarks) is not supported
    return await _space(_unit(lu), code, int.from_bytes(cdb[2:5], "big", signed=True))


async def space_16(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    """SPACE(16) (SSC-3 6.7): SPACE(6) with a 64-bit COUNT; no parameter list."""
    cdb = task.cdb
    code = cdb[1] & 0x0F
    if cdb[1] & 0xF0 or code not in (0, 1, 3, 4):
        raise invalid_field(1, 0)
    if _U16.unpack_from(cdb, 12)[0]:
        raise invalid_field(12)  # PARAMETER LENGTH: no parameter list is defined
    return await _space(_unit(lu), code, int.from_bytes(cdb[4:12], "big", signed=True))


async def _space(unit: TapeUnit, code: int, count: int) -> ScsiResult:
    tape = unit.medium
    async with tape.lock:
        recs = await tape.records()
        if code == 3:
            tape.position = len(recs)
            return spc.good()
        want = Kind.DATA if code == 0 else Kind.FILEMARK if code == 1 else Kind.SETMARK
        n, done = abs(count), 0
        while done < n:
            if count > 0:
                if tape.position == len(recs):
                    return _condition(unit, _eod(n - done))
                rec = recs[tape.position]
                tape.position += 1
            else:
                if tape.position == 0:
                    return _condition(unit, _bop(n - done))
                tape.position -= 1
                rec = recs[tape.position]
            if rec.kind == want:
                done += 1
            elif want == Kind.DATA:  # a mark ends spacing over blocks, past the mark
                return _condition(unit, _mark_condition(rec.kind, n - done))
    return spc.good()


async def locate_10(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    if cdb[1] & 0xF8:
        raise invalid_field(1)
    if cdb[1] & 0x02 and cdb[8]:
        raise invalid_field(8)  # CP: one partition only
    return await _locate(lu, struct.unpack_from(">I", cdb, 3)[0])


# LOCATE(16) DEST_TYPE (SSC-3 7.3): logical object, logical file, end of data
DEST_OBJECT, DEST_FILE, DEST_EOD = 0, 1, 3


async def locate_16(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    """LOCATE(16) (SSC-3 7.3): to a logical object identifier, to the start of a
    logical file (after its filemark), or to EOD."""
    cdb = task.cdb
    dest = (cdb[1] >> 3) & 0x07
    if cdb[1] & 0xC4:
        raise invalid_field(1)
    if dest not in (DEST_OBJECT, DEST_FILE, DEST_EOD):
        raise invalid_field(1, 5)
    if cdb[1] & 0x02 and cdb[3]:  # IMMED (bit 0) is taken: the locate ends at once
        raise invalid_field(3)  # CP: one partition only
    ident = struct.unpack_from(">Q", cdb, 4)[0]
    if dest == DEST_OBJECT:
        return await _locate(lu, ident)
    tape = _unit(lu).medium
    async with tape.lock:
        recs = await tape.records()
        if dest == DEST_EOD:
            tape.position = len(recs)
            return spc.good()
        target, marks = 0, 0
        while marks < ident:  # logical file N starts after the N-th filemark
            if target == len(recs):
                tape.position = target
                return _condition(lu, _eod(0))
            marks += recs[target].kind == Kind.FILEMARK
            target += 1
        tape.position = target
    return spc.good()


async def _locate(lu: LogicalUnit, target: int) -> ScsiResult:
    tape = _unit(lu).medium
    async with tape.lock:
        recs = await tape.records()
        if target > len(recs):
            tape.position = len(recs)
            return _condition(lu, _eod(0))
        tape.position = target
    return spc.good()


# READ POSITION service actions (SSC-3 7.5)
SHORT_FORM_BLOCK_ID, SHORT_FORM_VENDOR, LONG_FORM, EXTENDED_FORM = 0x00, 0x01, 0x06, 0x08
BOP, BPEW = 0x80, 0x01


async def read_position(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    """READ POSITION (SSC-3 7.5): short (00h, 01h: 20 bytes), long (06h: 32 bytes,
    with the logical file and set identifiers) and extended (08h: 32 bytes, 64-bit
    identifiers) forms. The object buffer is always empty (writes are synchronous)."""
    cdb = task.cdb
    sa = cdb[1] & 0x1F
    if cdb[1] & 0xE0 or sa not in (SHORT_FORM_BLOCK_ID, SHORT_FORM_VENDOR, LONG_FORM,
                                   EXTENDED_FORM):
        raise invalid_field(1, 4)
    alloc = _U16.unpack_from(cdb, 7)[0]
    if alloc and sa != EXTENDED_FORM:
        raise invalid_field(7)  # ALLOCATION LENGTH shall be zero but for the extended form
    tape = _unit(lu).medium
    async with tape.lock:
        pos = tape.position
        bpew = await tape.past_early_warning()
        files, sets = await tape.marks_before(pos) if sa == LONG_FORM else (0, 0)
    flags = (BOP if pos == 0 else 0) | (BPEW if bpew else 0)
    if sa == LONG_FORM:  # MPU=0, LONU=0: the identifiers are known; partition 0
        return ScsiResult(Status.GOOD, struct.pack(">B3xIQQQ", flags, 0, pos, files, sets))
    if sa == EXTENDED_FORM:  # additional length 1Ch; no objects or bytes buffered
        data = struct.pack(">BBHxBHQQQ", flags, 0, 0x1C, 0, 0, pos, pos, 0)
        return spc.data_in(data, alloc)
    return ScsiResult(Status.GOOD, struct.pack(">BB2xIIxBBBI", flags, 0, pos, pos, 0, 0, 0, 0))


# MODE SENSE / MODE SELECT with the sequential-access block descriptor (SSC-3 8.3).
def _pages(lu: LogicalUnit, cdb: bytes) -> bytes:
    page, subpage, pc = cdb[2] & 0x3F, cdb[3], cdb[2] >> 6
    if pc == 3:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.SAVING_PARAMETERS_NOT_SUPPORTED,
                             field=2, bit=7)
    if subpage not in (0x00, 0xFF):
        raise invalid_field(3)
    codes = lu.mode.pages(False)
    if page == 0x00:  # "no page": the header and block descriptor (Linux st asks this)
        return b""
    if page == 0x3F:
        return b"".join(lu.mode.page(p, pc) for p in codes)
    if page not in codes:
        raise invalid_field(2, 5)
    return lu.mode.page(page, pc)


def _medium_type(lu: LogicalUnit) -> int:
    """The mode header's MEDIUM TYPE: LTO-5's data (58h) or WORM (5Ch) cartridge as LTO
    drives report it, 00h without a medium or with a cleaning cartridge."""
    unit = _unit(lu)
    if not unit.loaded or unit.store is None:
        return 0
    return {MediaType.DATA: 0x58, MediaType.WORM: 0x5C}.get(unit.medium.label.media_type, 0)


def _device_specific(lu: LogicalUnit) -> int:
    return (0x80 if lu.write_protected else 0) | 0x10  # WP, BUFFERED MODE 1


def _descriptor(lu: LogicalUnit) -> bytes:
    """The block descriptor: the medium's density code (none without a medium)."""
    density = DENSITY_CODE if lu.loaded and lu.store is not None else DENSITY
    return struct.pack(">I", density << 24) + struct.pack(">I", lu.block_size & 0xFFFFFF)


async def _read_label(lu: LogicalUnit) -> None:
    """The medium's label (WORM: the medium configuration page) before MODE SENSE."""
    unit = _unit(lu)
    if unit.loaded:
        with contextlib.suppress(MediumFormatError, CleaningCartridge):
            async with unit.medium.lock:
                await unit.medium.records()


async def mode_sense_6(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    await _read_label(lu)
    pages = _pages(lu, cdb)
    bd = b"" if cdb[1] & 0x08 else _descriptor(lu)
    body = bytes((_medium_type(lu), _device_specific(lu), len(bd))) + bd + pages
    return spc.data_in(bytes((min(len(body), 255),)) + body, cdb[4])


async def mode_sense_10(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    await _read_label(lu)
    pages = _pages(lu, cdb)
    bd = b"" if cdb[1] & 0x08 else _descriptor(lu)
    body = struct.pack(">BBBBH", _medium_type(lu), _device_specific(lu), 0, 0, len(bd)) \
        + bd + pages
    return spc.data_in(_U16.pack(len(body)) + body, _U16.unpack_from(cdb, 7)[0])


async def mode_select_6(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    return _mode_select(lu, task, task.cdb[4], 4)


async def mode_select_10(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    return _mode_select(lu, task, _U16.unpack_from(task.cdb, 7)[0], 8)


def _mode_select(lu: LogicalUnit, task: ScsiTask, length: int, header: int) -> ScsiResult:
    if task.cdb[1] & 0x01:
        raise invalid_field(1, 0)  # SP: saving pages is not supported
    if not length:
        return spc.good()
    data = spc.param_list(task, length)
    if len(data) < header:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.PARAMETER_LIST_LENGTH_ERROR)
    bdl = data[3] if header == 4 else _U16.unpack_from(data, 6)[0]
    if header == 8 and data[4] & 0x01:
        raise invalid_param(4, 0)  # LONGLBA: sequential access has no long descriptor
    if bdl not in (0, 8):
        raise invalid_param(header - 1)
    if len(data) < header + bdl:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.PARAMETER_LIST_LENGTH_ERROR)
    block_length = lu.block_size
    if bdl:
        bd = data[header:header + 8]
        if bd[0] not in (DENSITY, DENSITY_CODE, 0x7F):  # 7Fh: no change (SSC-3 8.3.3)
            raise invalid_param(header)
        block_length = int.from_bytes(bd[5:8], "big")
        if block_length > MAX_BLOCK:
            raise invalid_param(header + 5)
    if lu.mode.select(data[header + bdl:], False, header + bdl):
        lu.ua_add_all(lu.nexus_keys, Asc.MODE_PARAMETERS_CHANGED, except_key=task.nexus.key)
    lu.block_size = block_length
    return spc.good()


def _rows() -> list[Command]:
    O, W, R, A = OperationCode, True, PR_READ, PR_ALLOWED  # noqa: N806, E741
    replaced = {O.INQUIRY, O.MODE_SENSE_6, O.MODE_SENSE_10, O.MODE_SELECT_6, O.MODE_SELECT_10}
    return [
        *(row for row in spc.SPC_COMMANDS if row.opcode not in replaced),
        Command(O.INQUIRY, "INQUIRY", inquiry, skip_ua=True, medium=False, conflicts=False,
                pr_access=A),
        Command(O.MODE_SENSE_6, "MODE SENSE(6)", mode_sense_6, medium=False, pr_access=R),
        Command(O.MODE_SENSE_10, "MODE SENSE(10)", mode_sense_10, medium=False, pr_access=R),
        Command(O.MODE_SELECT_6, "MODE SELECT(6)", mode_select_6, c.param_len_6, medium=False),
        Command(O.MODE_SELECT_10, "MODE SELECT(10)", mode_select_10, c.param_len_7,
                medium=False),
        Command(REWIND, "REWIND", rewind, pr_access=R),
        Command(READ_BLOCK_LIMITS, "READ BLOCK LIMITS", read_block_limits, medium=False,
                pr_access=A),
        Command(O.READ_6, "READ(6)", read_6, pr_access=R),
        Command(O.WRITE_6, "WRITE(6)", write_6, write_6_data_out, writes=W),
        Command(WRITE_FILEMARKS_6, "WRITE FILEMARKS(6)", write_filemarks_6, writes=W),
        Command(SPACE_6, "SPACE(6)", space_6, pr_access=R),
        Command(ERASE_6, "ERASE(6)", erase_6, writes=W),
        Command(LOAD_UNLOAD, "LOAD UNLOAD", load_unload, medium=False, pr_access=R),
        Command(LOCATE_10, "LOCATE(10)", locate_10, pr_access=R),
        Command(READ_POSITION, "READ POSITION", read_position, pr_access=R),
        Command(SPACE_16, "SPACE(16)", space_16, pr_access=R),
        Command(LOCATE_16, "LOCATE(16)", locate_16, pr_access=R),
        Command(REPORT_DENSITY_SUPPORT, "REPORT DENSITY SUPPORT",
                ssc_log.report_density_support, medium=False, pr_access=A),
        Command(O.LOG_SENSE, "LOG SENSE", ssc_log.log_sense, medium=False, pr_access=A),
        Command(O.LOG_SELECT, "LOG SELECT", ssc_log.log_select, c.param_len_7,
                medium=False),
        Command(READ_ATTRIBUTE, "READ ATTRIBUTE", ssc_mam.read_attribute, pr_access=R),
        Command(WRITE_ATTRIBUTE, "WRITE ATTRIBUTE", ssc_mam.write_attribute,
                ssc_mam.write_attribute_data_out, writes=W),
        Command(O.PREVENT_ALLOW_MEDIUM_REMOVAL, "PREVENT ALLOW MEDIUM REMOVAL",
                spc.prevent_allow_medium_removal, medium=False, pr_access=R),
    ]


TAPE_COMMANDS: list[Command] = _rows()
