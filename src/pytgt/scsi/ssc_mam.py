"""Medium auxiliary memory of the tape LU: READ ATTRIBUTE (SPC-4 6.17) and WRITE
ATTRIBUTE (SPC-4 6.36), with the attributes of SPC-4 7.4 as an LTO drive presents them.

Device attributes (remaining and maximum capacity, load count, MAM space remaining,
formatted density) and medium attributes (manufacturer, serial number, density code,
manufacture date, medium type) are read-only and derived from the cartridge (its label,
capacity and records); host attributes 0800h-080Bh (application vendor, name and version,
user medium text label, date and time last written, barcode, owning host, media pool,
...) are written by WRITE ATTRIBUTE and kept in the cartridge: in pytgt's format, the
header's MAM area (tape_media.py, docs/tape.md); tgt's format keeps none (WRITE
ATTRIBUTE is refused with AUXILIARY MEMORY OUT OF SPACE). One logical volume, one
partition.
"""

from __future__ import annotations

import contextlib
import enum
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytgt.scsi import spc
from pytgt.scsi.lu import LogicalUnit
from pytgt.scsi.sense import Asc, CheckCondition, SenseKey, invalid_field, invalid_param
from pytgt.scsi.tape_media import (
    DENSITY_CODE,
    LOAD_COUNT,
    MAM_AREA,
    MAM_ENTRY,
    CleaningCartridge,
    MamFull,
    MediaType,
)
from pytgt.scsi.task import ScsiResult, ScsiTask

if TYPE_CHECKING:
    from pytgt.scsi.ssc import TapeUnit

MiB = 1 << 20
AUXILIARY_MEMORY_OUT_OF_SPACE = (0x55, 0x06)
_U16, _U32 = struct.Struct(">H"), struct.Struct(">I")
_HEAD = struct.Struct(">HBH")  # attribute identifier, READ ONLY | FORMAT, length


class Format(enum.IntEnum):
    """The FORMAT field of an attribute (SPC-4 7.4.1)."""

    BINARY = 0
    ASCII = 1
    TEXT = 2


@dataclass(frozen=True, slots=True)
class MamAttribute:
    ident: int
    name: str
    length: int
    format: Format
    read_only: bool


_A, _B, _T = Format.ASCII, Format.BINARY, Format.TEXT
#: The supported attributes (SPC-4 tables 337, 338 and 339), in identifier order.
ATTRIBUTES = {a.ident: a for a in (
    MamAttribute(0x0000, "REMAINING CAPACITY IN PARTITION", 8, _B, True),
    MamAttribute(0x0001, "MAXIMUM CAPACITY IN PARTITION", 8, _B, True),
    MamAttribute(0x0003, "LOAD COUNT", 8, _B, True),
    MamAttribute(0x0004, "MAM SPACE REMAINING", 8, _B, True),
    MamAttribute(0x0006, "FORMATTED DENSITY CODE", 1, _B, True),
    MamAttribute(0x0400, "MEDIUM MANUFACTURER", 8, _A, True),
    MamAttribute(0x0401, "MEDIUM SERIAL NUMBER", 32, _A, True),
    MamAttribute(0x0405, "MEDIUM DENSITY CODE", 1, _B, True),
    MamAttribute(0x0406, "MEDIUM MANUFACTURE DATE", 8, _A, True),
    MamAttribute(0x0408, "MEDIUM TYPE", 1, _B, True),
    MamAttribute(0x0800, "APPLICATION VENDOR", 8, _A, False),
    MamAttribute(0x0801, "APPLICATION NAME", 32, _A, False),
    MamAttribute(0x0802, "APPLICATION VERSION", 8, _A, False),
    MamAttribute(0x0803, "USER MEDIUM TEXT LABEL", 160, _T, False),
    MamAttribute(0x0804, "DATE AND TIME LAST WRITTEN", 12, _A, False),
    MamAttribute(0x0805, "TEXT LOCALIZATION IDENTIFIER", 1, _B, False),
    MamAttribute(0x0806, "BARCODE", 32, _A, False),
    MamAttribute(0x0807, "OWNING HOST TEXTUAL NAME", 80, _T, False),
    MamAttribute(0x0808, "MEDIA POOL", 160, _T, False),
    MamAttribute(0x0809, "PARTITION USER TEXT LABEL", 16, _A, False),
    MamAttribute(0x080A, "LOAD/UNLOAD AT PARTITION", 1, _B, False),
    MamAttribute(0x080B, "APPLICATION FORMAT VERSION", 16, _A, False),
)}
MANUFACTURER = b"PYTGT"
# MEDIUM TYPE attribute (SPC-4 7.4.2.3): data, cleaning, write-once
_MEDIUM_TYPE = {MediaType.DATA: 0x00, MediaType.CLEAN: 0x01, MediaType.WORM: 0x80}

# READ ATTRIBUTE service actions (SPC-4 6.17.1)
ATTRIBUTE_VALUES, ATTRIBUTE_LIST, VOLUME_LIST, PARTITION_LIST, SUPPORTED_ATTRIBUTES = \
    0x00, 0x01, 0x02, 0x03, 0x05


def _ascii(text: str | bytes, length: int) -> bytes:
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    return raw[:length].ljust(length, b" ")


def _stored(attr: MamAttribute, value: bytes) -> bytes:
    """A host attribute as kept: trailing padding dropped (spaces, NULs for TEXT)."""
    if attr.format == Format.BINARY:
        return value
    return value.rstrip(b"\0 " if attr.format == Format.ASCII else b"\0")


def _padded(attr: MamAttribute, value: bytes) -> bytes:
    pad = b" " if attr.format == Format.ASCII else b"\0"
    return value[:attr.length].ljust(attr.length, pad)


async def _values(unit: TapeUnit) -> dict[int, bytes]:
    """Every attribute in the MAM now (not the nonexistent ones), by identifier."""
    tape = unit.medium
    async with tape.lock:
        try:
            used = await tape.end_offset(len(await tape.records()))
        except CleaningCartridge:  # a cleaning cartridge has a MAM too
            used = tape.capacity
    label = tape.label
    capacity = tape.capacity
    out = {
        0x0000: (max(capacity - used, 0) // MiB).to_bytes(8, "big"),
        0x0001: (capacity // MiB).to_bytes(8, "big"),
        0x0006: bytes((DENSITY_CODE,)),
        0x0400: _ascii(MANUFACTURER, 8),
        0x0405: bytes((DENSITY_CODE,)),
        0x0408: bytes((_MEDIUM_TYPE[label.media_type],)),
    }
    if label.barcode or label.created:
        out[0x0401] = _ascii(f"{label.barcode}_{label.created}", 32)
    if label.created:
        out[0x0406] = _ascii(time.strftime("%Y%m%d", time.gmtime(label.created)), 8)
    if label.barcode:
        out[0x0806] = _ascii(label.barcode, 32)
    if not tape.tgt:
        used_mam = sum(MAM_ENTRY.size + len(v) for v in tape.attributes.values())
        out[0x0004] = max(MAM_AREA - used_mam, 0).to_bytes(8, "big")
        for ident, value in tape.attributes.items():
            attr = ATTRIBUTES.get(ident)
            if attr is not None and (ident == LOAD_COUNT or not attr.read_only):
                out[ident] = _padded(attr, value)
    return dict(sorted(out.items()))


def _encode(ident: int, value: bytes) -> bytes:
    attr = ATTRIBUTES[ident]
    return _HEAD.pack(ident, (0x80 if attr.read_only else 0) | attr.format, len(value)) + value


def _check_volume(cdb: bytes) -> None:
    if cdb[5]:
        raise invalid_field(5)  # LOGICAL VOLUME NUMBER: one volume, 0
    if cdb[7]:
        raise invalid_field(7)  # PARTITION NUMBER: one partition, 0


def _unit(lu: LogicalUnit) -> TapeUnit:
    from pytgt.scsi.ssc import TapeUnit

    assert isinstance(lu, TapeUnit)
    return lu


def _present(unit: TapeUnit) -> None:
    if unit.store is None or not unit.loaded:
        raise CheckCondition(SenseKey.NOT_READY, Asc.MEDIUM_NOT_PRESENT)


async def read_attribute(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    """READ ATTRIBUTE (SPC-4 6.17): service actions 00h, 01h, 02h, 03h and 05h; ATTRIBUTE
    VALUES from the FIRST ATTRIBUTE IDENTIFIER on, which must exist."""
    cdb = task.cdb
    sa = cdb[1] & 0x1F
    if cdb[1] & 0xE0 or sa not in (ATTRIBUTE_VALUES, ATTRIBUTE_LIST, VOLUME_LIST,
                                   PARTITION_LIST, SUPPORTED_ATTRIBUTES):
        raise invalid_field(1, 4)
    if any(cdb[2:5]):
        raise invalid_field(2)  # ELEMENT ADDRESS: a medium changer's field (SMC-3)
    if cdb[14] & 0xFE:
        raise invalid_field(14)
    alloc = _U32.unpack_from(cdb, 10)[0]
    first = _U16.unpack_from(cdb, 8)[0]
    unit = _unit(lu)
    _present(unit)
    if sa == VOLUME_LIST:  # volume 0, one volume; the other fields are ignored (6.17.4)
        return spc.data_in(bytes((0, 2, 0, 1)), alloc)
    if cdb[5]:
        raise invalid_field(5)  # LOGICAL VOLUME NUMBER: one volume, 0
    if sa == PARTITION_LIST:  # partition 0, one partition (6.17.5)
        return spc.data_in(bytes((0, 2, 0, 1)), alloc)
    if cdb[7]:
        raise invalid_field(7)  # PARTITION NUMBER: one partition, 0
    if sa == SUPPORTED_ATTRIBUTES:  # FIRST ATTRIBUTE IDENTIFIER ignored (6.17.6)
        body = b"".join(_U16.pack(i) for i in ATTRIBUTES)
        return spc.data_in(_U32.pack(len(body)) + body, alloc)
    values = await _values(unit)
    if sa == ATTRIBUTE_LIST:  # FIRST ATTRIBUTE IDENTIFIER ignored (6.17.3)
        body = b"".join(_U16.pack(i) for i in values)
        return spc.data_in(_U32.pack(len(body)) + body, alloc)
    if first not in values:  # unsupported or nonexistent (6.17.1)
        raise invalid_field(8)
    body = b"".join(_encode(i, v) for i, v in values.items() if i >= first)
    return spc.data_in(_U32.pack(len(body)) + body, alloc)


def write_attribute_data_out(cdb: bytes, bs: int) -> int:
    return int(_U32.unpack_from(cdb, 10)[0])


async def write_attribute(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    """WRITE ATTRIBUTE (SPC-4 6.36): host attributes, all or none; length 0 deletes."""
    cdb = task.cdb
    if cdb[1] & 0xFE:
        raise invalid_field(1)  # WTC (bit 0) is taken: every write goes to the medium
    if any(cdb[2:5]):
        raise invalid_field(2)  # ELEMENT ADDRESS (SMC-3)
    if cdb[6] or cdb[8] or cdb[9] or cdb[14]:
        raise invalid_field(next(i for i in (6, 8, 9, 14) if cdb[i]))
    _check_volume(cdb)
    length = _U32.unpack_from(cdb, 10)[0]
    unit = _unit(lu)
    _present(unit)
    if not length:
        return spc.good()
    data = bytes(spc.param_list(task, length))
    if len(data) < 4 or len(data) < length:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.PARAMETER_LIST_LENGTH_ERROR)
    if _U32.unpack_from(data)[0] != length - 4:
        raise invalid_param(0)  # PARAMETER DATA LENGTH: the bytes that follow it
    changes: dict[int, bytes | None] = {}
    off, last = 4, -1
    while off < length:
        if off + _HEAD.size > length:
            raise invalid_param(off)  # a truncated attribute header
        ident, fmt, alen = _HEAD.unpack_from(data, off)
        attr = ATTRIBUTES.get(ident)
        if attr is None or attr.read_only or ident <= last:
            raise invalid_param(off)  # unsupported, read-only, or out of order
        if fmt & 0x7F != attr.format:
            raise invalid_param(off + 2, 0)
        if alen not in (0, attr.length) or off + _HEAD.size + alen > length:
            raise invalid_param(off + 3)
        value = data[off + _HEAD.size:off + _HEAD.size + alen]
        if attr.format == Format.ASCII:  # printable, then space or NUL padding
            bad = next((i for i, b in enumerate(value.rstrip(b"\0 ")) if not 0x20 <= b <= 0x7E),
                       None)
            if bad is not None:
                raise invalid_param(off + _HEAD.size + bad)
        changes[ident] = _stored(attr, value) if alen else None
        off, last = off + _HEAD.size + alen, ident
    tape = unit.medium
    async with tape.lock:
        with contextlib.suppress(CleaningCartridge):
            await tape.records()
        if tape.tgt:  # tgt's MAM is kept as tgtimg wrote it
            raise CheckCondition(SenseKey.ILLEGAL_REQUEST, AUXILIARY_MEMORY_OUT_OF_SPACE)
        try:
            await tape.write_attributes(changes)
        except MamFull:
            raise CheckCondition(SenseKey.ILLEGAL_REQUEST,
                                 AUXILIARY_MEMORY_OUT_OF_SPACE) from None
    return spc.good()
