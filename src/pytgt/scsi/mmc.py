"""Multimedia commands (MMC-6) for the "cd" device type: an ISO file as read-only media.

A CD/DVD-ROM drive (peripheral type 05h, RMB=1) with a tray: the medium is the LU's
backing store (None: no disc), ``tray_open`` says whether START STOP UNIT ejected it.
The profile is DVD-ROM (0010h) for a medium larger than a CD (MMC-6 5.3.x), else CD-ROM
(0008h). Writes end in DATA PROTECT, WRITE PROTECTED (MMC-6 4.1: read-only medium).
"""

from __future__ import annotations

import struct

from pytgt.scsi import cdb as c
from pytgt.scsi import modepages as mp
from pytgt.scsi import sbc, spc
from pytgt.scsi.cdb import Command, OperationCode
from pytgt.scsi.lu import LogicalUnit
from pytgt.scsi.pr import PR_ALLOWED, PR_READ
from pytgt.scsi.sense import (
    Asc,
    CheckCondition,
    SenseKey,
    build_sense,
    invalid_field,
    lba_out_of_range,
)
from pytgt.scsi.task import ScsiResult, ScsiTask, Status
from pytgt.stores.base import BackingStore

BLOCK_SIZE = 2048
CD_MAX_BLOCKS = 360_000  # 80 minutes at 75 sectors/s: larger media are DVDs
PROFILE_NONE, PROFILE_CD_ROM, PROFILE_DVD_ROM = 0x0000, 0x0008, 0x0010

# MMC-6 operation codes (MMC-6 6.1, table 348).
GET_CONFIGURATION = 0x46
GET_EVENT_STATUS_NOTIFICATION = 0x4A
READ_TOC_PMA_ATIP = 0x43
READ_DISC_INFORMATION = 0x51
READ_TRACK_INFORMATION = 0x52
MECHANISM_STATUS = 0xBD
READ_CD = 0xBE
GET_PERFORMANCE = 0xAC
READ_DISC_STRUCTURE = 0xAD
SET_STREAMING = 0xB6
SET_CD_SPEED = 0xBB

SPEED_KBS = 0x1B90  # 7056 kB/s: 40x CD, what page 2Ah reports as the maximum read speed

# Media event codes of GET EVENT STATUS NOTIFICATION (MMC-6 6.7.2.5, table 174).
EVENT_NONE, EVENT_EJECT_REQUEST, EVENT_NEW_MEDIA, EVENT_MEDIA_REMOVAL = 0, 1, 2, 3

NOT_READY_TO_READY_CHANGE = (0x28, 0x00)  # MEDIUM MAY HAVE CHANGED
MEDIUM_NOT_PRESENT_TRAY_CLOSED = (0x3A, 0x01)
MEDIUM_NOT_PRESENT_TRAY_OPEN = (0x3A, 0x02)
ILLEGAL_MODE_FOR_THIS_TRACK = (0x64, 0x00)
CANNOT_READ_MEDIUM_INCOMPATIBLE_FORMAT = (0x30, 0x02)

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


class CdLogicalUnit(LogicalUnit):
    """A CD/DVD drive: MMC-6's command table, a tray and a replaceable medium."""

    def __init__(self, lun: int, store: BackingStore | None, *, tid: int, path: str = "",
                 bstype: str = "rdwr", bsoflags: str = "") -> None:
        super().__init__("cd", lun, store, tid=tid, path=path, bstype=bstype,
                         bsoflags=bsoflags, block_size=BLOCK_SIZE)
        self.path = path if store is not None else ""
        self.bstype = bstype  # what a medium put in later opens with, if the drive is empty
        self.thin_provisioning = False  # pressed media: no UNMAP (tgt shows "No")
        self.product_id = "VIRTUAL-CDROM"
        self.removable = True
        self.readonly = True
        self.tray_open = False
        self.loaded = store is not None
        self.media_events: dict[str, int] = {}  # nexus key -> pending media event code
        self.commands.clear()
        self.service_actions.clear()
        self._install(CD_COMMANDS)

    @property
    def profile(self) -> int:
        """The current profile (MMC-6 5.3.1): none without a readable medium."""
        if not self.loaded:
            return PROFILE_NONE
        return PROFILE_DVD_ROM if self.num_blocks > CD_MAX_BLOCKS else PROFILE_CD_ROM

    def _not_ready(self) -> CheckCondition:
        """MEDIUM NOT PRESENT, with the tray state (MMC-6 F.2)."""
        if self.tray_open:
            return CheckCondition(SenseKey.NOT_READY, MEDIUM_NOT_PRESENT_TRAY_OPEN)
        if self.store is None:
            return CheckCondition(SenseKey.NOT_READY, MEDIUM_NOT_PRESENT_TRAY_CLOSED)
        return CheckCondition(SenseKey.NOT_READY, Asc.MEDIUM_NOT_PRESENT)

    def _media_event(self, code: int, except_key: str | None = None) -> None:
        for key in self.nexus_keys:
            if key != except_key:
                self.media_events[key] = code

    def set_tray(self, open_: bool, nexus_key: str | None = None) -> None:
        """START STOP UNIT LoEj: open (eject) or close (load) the tray."""
        self.tray_open = open_
        was = self.loaded
        self.loaded = not open_ and self.store is not None
        if was and not self.loaded:
            self._media_event(EVENT_MEDIA_REMOVAL)
        elif self.loaded and not was:
            self._media_event(EVENT_NEW_MEDIA)
            self.ua_add_all(self.nexus_keys, NOT_READY_TO_READY_CHANGE, except_key=nexus_key)

    def change_medium(self, store: BackingStore | None, path: str) -> BackingStore | None:
        """Put in a new medium (None: take it out), tray closed; returns the old store.

        Every nexus gets NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED and a new
        media event (MMC-6 4.1.6.2); the caller closes the returned store. A disc brings
        an offline drive (``online=0``) back online, as in tgt.
        """
        old = self.store
        self.store = store
        self.path = path if store is not None else ""
        self.tray_open = False
        self.loaded = store is not None
        self.online = self.online or self.loaded
        if store is not None:
            self._media_event(EVENT_NEW_MEDIA)
            self.ua_add_all(self.nexus_keys, NOT_READY_TO_READY_CHANGE)
        elif old is not None:
            self._media_event(EVENT_MEDIA_REMOVAL)
        return old


def _cd(lu: LogicalUnit) -> CdLogicalUnit:
    assert isinstance(lu, CdLogicalUnit)
    return lu


def _msf(lba: int) -> bytes:
    """M/S/F of an LBA with the 150-frame pregap (MMC-6 6.26.3.2); past 255:59:74 (a DVD's
    end) it stays there, as the field can say no more."""
    frames = min(lba + 150, 255 * 4500 + 59 * 75 + 74)
    return bytes((frames // 4500, frames // 75 % 60, frames % 75))


def _lba_field(lba: int, msf: bool) -> bytes:
    """A 4-byte address: LBA, or 0/M/S/F."""
    return b"\0" + _msf(lba) if msf else _U32.pack(lba)


def _full_toc(lu: LogicalUnit, session: int) -> bytes:
    """Format 0010b, the raw TOC of the one session: points A0h (first track, disc type
    CD-ROM), A1h (last track), A2h (lead-out) and track 1, each with its P-MSF."""
    if session > 1:
        raise invalid_field(6)
    points = [(0xA0, bytes((1, 0x00, 0))), (0xA1, bytes((1, 0, 0))),
              (0xA2, _msf(lu.num_blocks)), (0x01, _msf(0))]
    body = b"".join(bytes((1, 0x14, 0, point, 0, 0, 0, 0)) + pmsf for point, pmsf in points)
    return _U16.pack(len(body) + 2) + bytes((1, 1)) + body


# READ TOC/PMA/ATIP (MMC-6 6.26): formats 0 (TOC), 1 (session information) and 2 (full
# TOC). A zero Format field takes SFF-8020i's from CONTROL bits 7-6, which Linux's sr
# still sends for the multisession offset.
async def read_toc(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    msf, fmt, track = bool(cdb[1] & 0x02), cdb[2] & 0x0F or cdb[9] >> 6, cdb[6]
    alloc = _U16.unpack_from(cdb, 7)[0]
    if fmt == 0:
        if track > 1 and track != 0xAA:
            raise invalid_field(6)
        entries = [] if track == 0xAA else [(1, 0)]
        entries.append((0xAA, lu.num_blocks))
        body = b"".join(bytes((0, 0x14, n, 0)) + _lba_field(a, msf) for n, a in entries)
        data = _U16.pack(len(body) + 2) + bytes((1, 1)) + body
    elif fmt == 1:
        body = bytes((0, 0x14, 1, 0)) + _lba_field(0, msf)
        data = _U16.pack(len(body) + 2) + bytes((1, 1)) + body
    elif fmt == 2:
        data = _full_toc(lu, track)
    else:  # PMA, ATIP and CD-TEXT: none on a pressed disc
        raise invalid_field(2, 3)
    return spc.data_in(data, alloc)


# GET CONFIGURATION (MMC-6 6.6) and its features (MMC-6 5.3).
def _feature(code: int, version: int, current: bool, body: bytes) -> bytes:
    flags = version << 2 | 0x02 | (0x01 if current else 0)  # PERSISTENT for all ours
    return _U16.pack(code) + bytes((flags, len(body))) + body


def _features(lu: CdLogicalUnit) -> list[tuple[int, bytes]]:
    profile = lu.profile
    profiles = b"".join(_U16.pack(p) + bytes((int(p == profile), 0))
                        for p in (PROFILE_DVD_ROM, PROFILE_CD_ROM))
    removable = 0x20 | 0x08 | 0x01 | (0x02 if lu.prevent_removal else 0)  # tray, Eject, Lock
    blocking = 16 if profile == PROFILE_DVD_ROM else 1
    cd, dvd = profile == PROFILE_CD_ROM, profile == PROFILE_DVD_ROM
    return [
        (0x0000, _feature(0x0000, 0, True, profiles)),  # Profile List
        (0x0001, _feature(0x0001, 2, True, _U32.pack(1) + bytes((0x01, 0, 0, 0)))),  # Core
        (0x0002, _feature(0x0002, 1, True, bytes((0x02, 0, 0, 0)))),  # Morphing: OCEvent
        (0x0003, _feature(0x0003, 2, True, bytes((removable, 0, 0, 0)))),  # Removable
        (0x0010, _feature(0x0010, 0, bool(profile), _U32.pack(BLOCK_SIZE)
                          + _U16.pack(blocking) + bytes(2))),  # Random Readable
        (0x001E, _feature(0x001E, 2, cd, bytes(4))),  # CD Read: READ CD, no C2/CD-Text
        (0x001F, _feature(0x001F, 1, dvd, bytes(4))),  # DVD Read
    ]


async def get_configuration(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    rt, start, alloc = cdb[1] & 0x03, _U16.unpack_from(cdb, 2)[0], _U16.unpack_from(cdb, 7)[0]
    if rt == 3:
        raise invalid_field(1, 1)
    cd = _cd(lu)
    out = []
    for code, desc in _features(cd):
        if rt == 2 and code != start or code < start:
            continue
        if rt == 1 and not desc[2] & 0x01:
            continue
        out.append(desc)
    body = b"".join(out)
    head = _U32.pack(len(body) + 4) + bytes(2) + _U16.pack(cd.profile)
    return spc.data_in(head + body, alloc)


# GET EVENT STATUS NOTIFICATION (MMC-6 6.7): polled only, media class. Like GET
# CONFIGURATION it neither reports nor clears a unit attention (MMC-6 4.1.6.1).
async def get_event_status(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    if not cdb[1] & 0x01:
        raise invalid_field(1, 0)  # asynchronous operation is not supported
    classes, alloc = cdb[4], _U16.unpack_from(cdb, 7)[0]
    if not classes & 0x10:  # no supported class requested: NEA
        return spc.data_in(_U16.pack(2) + bytes((0x80, 0x10)), alloc)
    cd = _cd(lu)
    event = cd.media_events.pop(task.nexus.key, EVENT_NONE)
    status = (0x02 if cd.loaded else 0) | (0x01 if cd.tray_open else 0)
    desc = bytes((event, status, 0, 0))
    return spc.data_in(_U16.pack(2 + len(desc)) + bytes((0x04, 0x10)) + desc, alloc)


# READ DISC INFORMATION (MMC-6 6.22): a complete, finalised single-session disc.
async def read_disc_information(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    if cdb[1] & 0x07:
        raise invalid_field(1, 2)  # only standard disc information (type 000b)
    data = (_U16.pack(32) + bytes((0x0E, 1, 1, 1, 1, 0x20, 0x00, 0, 0, 0)) + bytes(4)
            + b"\xff" * 8 + bytes(8) + bytes(2))
    return spc.data_in(data, _U16.unpack_from(cdb, 7)[0])


# READ TRACK INFORMATION (MMC-6 6.27): the one data track.
async def read_track_information(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    kind, number = cdb[1] & 0x03, _U32.unpack_from(cdb, 2)[0]
    blocks = lu.num_blocks
    if kind == 3 or (kind == 0 and number >= blocks) or (kind in (1, 2) and number != 1):
        raise invalid_field(2) if kind != 3 else invalid_field(1, 1)
    data = (_U16.pack(46) + bytes((1, 1, 0, 0x04, 0x01, 0x00)) + _U32.pack(0) + bytes(12)
            + _U32.pack(blocks) + _U32.pack(blocks - 1) + bytes(16))
    return spc.data_in(data, _U16.unpack_from(cdb, 7)[0])


# READ CD (MMC-6 6.20) of user data: a data disc's sectors are Mode 1, 2048 bytes each.
# Sync, headers, EDC/ECC, C2 and sub-channel data are not kept in an ISO file.
_SECTOR_TYPES_OF_MODE_1 = (0, 2)  # any type, Mode 1


async def read_cd(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    kind = cdb[1] >> 2 & 0x07
    if kind > 5:
        raise invalid_field(1, 4)
    if cdb[9] not in (0x00, 0x10):  # only the User Data bit (or nothing)
        raise invalid_field(9)
    if cdb[10] & 0x07:
        raise invalid_field(10, 2)
    if _cd(lu).profile != PROFILE_CD_ROM:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, CANNOT_READ_MEDIUM_INCOMPATIBLE_FORMAT)
    lba, n = _U32.unpack_from(cdb, 2)[0], int.from_bytes(cdb[6:9], "big")
    if kind not in _SECTOR_TYPES_OF_MODE_1:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, ILLEGAL_MODE_FOR_THIS_TRACK)
    if lba + n > lu.num_blocks:
        raise lba_out_of_range()
    store = lu.store
    if store is None:
        raise _cd(lu)._not_ready()
    if not n or not cdb[9]:
        return spc.good()
    return ScsiResult(Status.GOOD, await store.read(lba * BLOCK_SIZE, n * BLOCK_SIZE))


# GET PERFORMANCE (MMC-6 6.8): type 00h, one nominal read descriptor across the disc.
async def get_performance(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    write, max_desc, kind = bool(cdb[1] & 0x04), _U16.unpack_from(cdb, 8)[0], cdb[10]
    if kind != 0x00:
        raise invalid_field(10)
    if cdb[1] & 0x03:  # nominal performance only (EXCEPT 00b)
        raise invalid_field(1, 1)
    descs = b"" if write or not max_desc else (
        _U32.pack(0) + _U32.pack(SPEED_KBS) + _U32.pack(lu.num_blocks - 1)
        + _U32.pack(SPEED_KBS))
    head = _U32.pack(len(descs) + 4) + bytes((0x02 if write else 0, 0, 0, 0))
    return spc.data_in(head + descs, len(head) + len(descs))


# READ DISC STRUCTURE (MMC-6 6.23), DVD media type: physical format (00h), copyright
# (01h) and the list of structures (FFh). A CD has none: INCOMPATIBLE FORMAT.
_STRUCTURES = (0x00, 0x01, 0xFF)


def _physical_format(lu: LogicalUnit) -> bytes:
    """Layer 0's descriptor: DVD-ROM book, 120 mm, one embossed layer, the data area
    from physical sector 30000h (the DVD-ROM book's layout)."""
    first = 0x030000
    desc = (bytes((0x01, 0x0F, 0x01, 0x00)) + _U32.pack(first)
            + _U32.pack(first + lu.num_blocks - 1) + _U32.pack(0) + bytes(1))
    return desc.ljust(2048, b"\0")


async def read_disc_structure(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    media, layer, fmt, alloc = cdb[1] & 0x0F, cdb[6], cdb[7], _U16.unpack_from(cdb, 8)[0]
    if media:  # 0: DVD and HD DVD; BD's structures are not offered
        raise invalid_field(1, 3)
    if fmt not in _STRUCTURES:
        raise invalid_field(7)
    if fmt != 0xFF and _cd(lu).profile != PROFILE_DVD_ROM:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, CANNOT_READ_MEDIUM_INCOMPATIBLE_FORMAT)
    if fmt == 0x00:
        if layer:
            raise invalid_field(6)
        body = _physical_format(lu)
    elif fmt == 0x01:
        body = bytes(4)  # no copy protection, no region restriction
    else:
        body = b"".join(bytes((f, 0x40)) + _U16.pack(n + 4)  # readable (RDS)
                        for f, n in ((0x00, 2048), (0x01, 4), (0xFF, 12)))
    return spc.data_in(_U16.pack(len(body) + 2) + bytes(2) + body, alloc)


# SET CD SPEED (BBh) and SET STREAMING (B6h) of MMC-6: requests a drive may round
# down as it likes; the data comes from a file, at whatever speed the store gives.
async def set_cd_speed(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    if task.cdb[1] & 0xFC:
        raise invalid_field(1, 7)
    return spc.good()


def _streaming_length(cdb: bytes, bs: int) -> int:
    return int.from_bytes(cdb[9:11], "big")


async def set_streaming(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    if cdb[8] != 0x00:  # only the performance descriptor type
        raise invalid_field(8)
    if 0 < _streaming_length(cdb, BLOCK_SIZE) < 28:  # a descriptor is 28 bytes
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.PARAMETER_LIST_LENGTH_ERROR)
    return spc.good()


# MECHANISM STATUS (MMC-6 6.10): a tray, no changer.
async def mechanism_status(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    door = 0x10 if _cd(lu).tray_open else 0
    data = bytes((0, door, 0, 0, 0, 0)) + _U16.pack(0)
    return spc.data_in(data, _U16.unpack_from(task.cdb, 8)[0])


# START STOP UNIT (MMC-6 6.39), PREVENT ALLOW MEDIUM REMOVAL (MMC-6 6.12).
async def start_stop_unit(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    b4 = task.cdb[4]
    if b4 >> 4 or not b4 & 0x02:  # power conditions, or START/STOP without LoEj
        return spc.good()
    cd = _cd(lu)
    if not b4 & 0x01:
        if cd.prevent_removal:
            raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.MEDIUM_REMOVAL_PREVENTED)
        cd.set_tray(True, task.nexus.key)
    else:
        cd.set_tray(False, task.nexus.key)
    return spc.good()


async def request_sense(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    """REQUEST SENSE (SPC-4 6.29): with no unit attention, an absent medium is reported."""
    if lu.loaded or not lu.online or lu.ua.get(task.nexus.key):
        return await spc.request_sense(lu, task)
    exc = _cd(lu)._not_ready()
    sense = build_sense(exc.key, exc.asc, exc.ascq, descriptor=bool(task.cdb[1] & 0x01))
    return spc.data_in(sense, task.cdb[4])


async def prevent_allow(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    lu.set_prevent(task.nexus.key, bool(task.cdb[4] & 0x01))  # bit 1: persistent prevent
    return spc.good()


# MODE SENSE (SPC-4 6.11-6.12) with MMC-6's pages, as tgt offers them.
def _capabilities(lu: LogicalUnit) -> bytes:
    """MM Capabilities and Mechanical Status page (2Ah, MMC-3 6.3.11; used by sr)."""
    lock = 0x29 | (0x02 if lu.prevent_removal else 0)  # tray, Eject, Lock, lock state
    body = (bytes((0x3F, 0x00, 0x71, 0x00, lock, 0x00)) + _U16.pack(0x1B90) + _U16.pack(0)
            + _U16.pack(0) + _U16.pack(0x1B90) + bytes(6))
    return bytes((0x2A, len(body))) + body


def _mmc_pages(lu: LogicalUnit, page: int, subpage: int, pc: int) -> bytes:
    if pc == mp.PC_SAVED:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.SAVING_PARAMETERS_NOT_SUPPORTED,
                             field=2, bit=7)
    if subpage not in (0x00, 0xFF):
        raise invalid_field(3)
    changeable = pc == mp.PC_CHANGEABLE
    pages = {
        mp.RW_ERROR_RECOVERY: bytes((0x01, 0x0A)) + bytes(10),
        mp.CONTROL: lu.mode.page(mp.CONTROL, pc),
        0x2A: bytes((0x2A, 0x14)) + bytes(20) if changeable else _capabilities(lu),
    }
    if page == mp.ALL_PAGES:
        return b"".join(pages.values())
    if page not in pages:
        raise invalid_field(2, 5)
    return pages[page]


mode_sense_6, mode_sense_10 = spc.mode_sense_without_descriptors(_mmc_pages)


async def write(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    """A read-only medium (MMC-6 4.1): reached only if readonly was turned off."""
    raise CheckCondition(SenseKey.DATA_PROTECT, Asc.WRITE_PROTECTED)


def _rows() -> list[Command]:
    O, R, A = OperationCode, PR_READ, PR_ALLOWED  # noqa: N806, E741
    keep = {O.TEST_UNIT_READY, O.INQUIRY, O.REPORT_LUNS, O.MODE_SELECT_6,
            O.MODE_SELECT_10, O.RESERVE_6, O.RESERVE_10, O.RELEASE_6, O.RELEASE_10,
            O.PERSISTENT_RESERVE_IN, O.PERSISTENT_RESERVE_OUT, O.MAINTENANCE_IN}
    return [
        *(row for row in spc.SPC_COMMANDS if row.opcode in keep),
        Command(O.REQUEST_SENSE, "REQUEST SENSE", request_sense, skip_ua=True, medium=False,
                conflicts=False, pr_access=A),
        Command(O.MODE_SENSE_6, "MODE SENSE(6)", mode_sense_6, medium=False, pr_access=R),
        Command(O.MODE_SENSE_10, "MODE SENSE(10)", mode_sense_10, medium=False, pr_access=R),
        Command(O.READ_10, "READ(10)", sbc.read_10, pr_access=R),
        Command(O.READ_12, "READ(12)", sbc.read_12, pr_access=R),
        Command(O.WRITE_10, "WRITE(10)", write, c.blocks_10, writes=True),
        Command(O.WRITE_12, "WRITE(12)", write, c.blocks_12, writes=True),
        Command(O.READ_CAPACITY_10, "READ CAPACITY", sbc.read_capacity_10, conflicts=False,
                pr_access=A),
        Command(READ_TOC_PMA_ATIP, "READ TOC/PMA/ATIP", read_toc, pr_access=R),
        Command(GET_CONFIGURATION, "GET CONFIGURATION", get_configuration, medium=False,
                skip_ua=True, conflicts=False, pr_access=A),
        Command(GET_EVENT_STATUS_NOTIFICATION, "GET EVENT STATUS NOTIFICATION",
                get_event_status, medium=False, skip_ua=True, conflicts=False, pr_access=A),
        Command(READ_DISC_INFORMATION, "READ DISC INFORMATION", read_disc_information,
                pr_access=R),
        Command(READ_TRACK_INFORMATION, "READ TRACK INFORMATION", read_track_information,
                pr_access=R),
        Command(READ_CD, "READ CD", read_cd, pr_access=R),
        Command(GET_PERFORMANCE, "GET PERFORMANCE", get_performance, pr_access=R),
        Command(READ_DISC_STRUCTURE, "READ DISC STRUCTURE", read_disc_structure,
                pr_access=R),
        Command(SET_CD_SPEED, "SET CD SPEED", set_cd_speed, medium=False, pr_access=R),
        Command(SET_STREAMING, "SET STREAMING", set_streaming, _streaming_length,
                medium=False, pr_access=R),
        *(row for row in sbc.DISK_COMMANDS if row.opcode in (O.VERIFY_10,
                                                              O.SYNCHRONIZE_CACHE_10)),
        Command(MECHANISM_STATUS, "MECHANISM STATUS", mechanism_status, medium=False,
                conflicts=False, pr_access=A),
        Command(O.START_STOP_UNIT, "START STOP UNIT", start_stop_unit, medium=False),
        Command(O.PREVENT_ALLOW_MEDIUM_REMOVAL, "PREVENT ALLOW MEDIUM REMOVAL", prevent_allow,
                medium=False, pr_access=R),
    ]


CD_COMMANDS: list[Command] = _rows()
