"""The tape medium on a byte-level backing store (format in docs/tape.md).

A 512-byte header (``PYTGTAPE``, version 1), then records, each a 16-byte record
header (kind, payload length, offset of the previous record header) and its payload;
an END OF DATA record header ends the written part. A zero-filled file is a blank
tape. The medium keeps an index of the records (built on first use by reading the
record headers through the store, off the event loop) and the current position as a
logical object identifier (SSC-3 4.2.4: blocks and marks are numbered from 0 at BOP;
the identifier of EOD is the number of records).
"""

from __future__ import annotations

import asyncio
import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from pytgt.stores.base import BackingStore

MAGIC = b"PYTGTAPE"
VERSION = 1
HEADER = struct.Struct(">8sII")  # magic, version, header length; zero-padded to 512
HEADER_SIZE = 512
# version 1's reserved bytes from offset 16, written by pytgtimg (zero in older images)
LABEL = struct.Struct(">32sBxxxxxxxQ")  # barcode (NUL-padded), media type, created (Unix s)
LABEL_OFFSET = 16
# tgt's tgtimg images start with a block header whose type (big-endian, bytes 12..15)
# is 10h, beginning of tape: recognized only to name them in the error
TGT_BOT_TYPE = slice(12, 16)
TGT_BOT = b"\0\0\0\x10"
RECORD = struct.Struct(">B3xIQ")  # kind, payload length, previous record header offset
Payload = bytes | bytearray | memoryview
EARLY_WARNING = 1 << 20  # bytes before the end of the medium that start early warning


class Kind(enum.IntEnum):
    """Record kinds (docs/tape.md)."""

    EOD = 0
    DATA = 1
    FILEMARK = 2
    SETMARK = 3


class MediaType(enum.IntEnum):
    """The media type of a pytgtimg-made tape (``--type``), as tgtimg names them."""

    DATA = 0
    CLEAN = 1
    WORM = 2


@dataclass(frozen=True, slots=True)
class Label:
    """The header's barcode, media type and creation time (docs/tape.md)."""

    barcode: str = ""
    media_type: MediaType = MediaType.DATA
    created: int = 0


def format_header(label: Label) -> bytes:
    """A full 512-byte header followed by an END OF DATA record: an empty tape."""
    head = HEADER.pack(MAGIC, VERSION, HEADER_SIZE) + LABEL.pack(
        label.barcode.encode("ascii"), label.media_type, label.created)
    return head.ljust(HEADER_SIZE, b"\0") + RECORD.pack(Kind.EOD, 0, 0)


def parse_label(header: bytes) -> Label:
    """The label of a header (at least ``LABEL_OFFSET + LABEL.size`` bytes)."""
    barcode, mtype, created = LABEL.unpack_from(header, LABEL_OFFSET)
    try:
        media_type = MediaType(mtype)
    except ValueError:
        raise MediumFormatError(f"unknown media type {mtype}") from None
    return Label(barcode.rstrip(b"\0").decode("ascii", "replace"), media_type, created)


def check_header(header: bytes) -> bool:
    """True for a pytgt tape header, False for a blank tape; else MediumFormatError."""
    if header[:HEADER.size] == bytes(HEADER.size):
        return False
    magic, version, hlen = HEADER.unpack_from(header)
    if magic != MAGIC or version != VERSION or hlen != HEADER_SIZE:
        if header[TGT_BOT_TYPE] == TGT_BOT:
            raise MediumFormatError("a tgt (tgtimg) tape image, which pytgt does not "
                                    "read (docs/tape.md)")
        raise MediumFormatError("not a pytgt tape image")
    return True


class MediumFormatError(Exception):
    """The file is neither a pytgt tape nor blank."""


class CleaningCartridge(Exception):
    """The medium is a cleaning cartridge (``pytgtimg --type clean``): no data."""


class MediumFull(Exception):
    """The records do not fit before the end of the medium (nothing was written)."""


@dataclass(frozen=True, slots=True)
class Record:
    kind: Kind
    offset: int  # of the record header
    length: int  # payload bytes

    @property
    def end(self) -> int:
        return self.offset + RECORD.size + self.length


class TapeMedium:
    """Records and position of one tape; callers hold ``lock`` around each command."""

    def __init__(self, store: BackingStore) -> None:
        self.store = store
        self.lock = asyncio.Lock()
        self.position = 0
        self._records: list[Record] | None = None
        self._formatted = False
        self.label = Label()  # read with the records (a blank tape: a data tape)

    @property
    def capacity(self) -> int:
        return self.store.size

    async def records(self) -> list[Record]:
        """The record index, read from the medium the first time."""
        if self._records is None:
            self._records = await self._scan()
        if self.label.media_type == MediaType.CLEAN:
            raise CleaningCartridge
        return self._records

    async def _scan(self) -> list[Record]:
        size = self.store.size
        if size < HEADER_SIZE + RECORD.size:
            raise MediumFormatError(f"medium too small ({size} bytes)")
        head = bytes(await self.store.read(0, LABEL_OFFSET + LABEL.size))
        if not check_header(head):
            return []  # blank: formatted on the first write
        self.label = parse_label(head)
        self._formatted = True
        out: list[Record] = []
        off = HEADER_SIZE
        while off + RECORD.size <= size:
            kind, length, _ = RECORD.unpack(bytes(await self.store.read(off, RECORD.size)))
            if kind == Kind.EOD:
                break
            if kind not in (Kind.DATA, Kind.FILEMARK, Kind.SETMARK) \
                    or off + RECORD.size + length > size:
                raise MediumFormatError(f"bad record header at offset {off}")
            out.append(Record(Kind(kind), off, length))
            off += RECORD.size + length
        return out

    @property
    def worm(self) -> bool:
        """A write-once medium (``pytgtimg --type worm``): data is only appended."""
        return self.label.media_type == MediaType.WORM

    async def marks_before(self, index: int) -> tuple[int, int]:
        """(filemarks, setmarks) among the records before ``index``."""
        recs = (await self.records())[:index]
        return (sum(r.kind == Kind.FILEMARK for r in recs),
                sum(r.kind == Kind.SETMARK for r in recs))

    async def end_offset(self, index: int) -> int:
        """Where the record at ``index`` starts (after the one before it)."""
        recs = await self.records()
        return recs[index - 1].end if index else HEADER_SIZE

    async def past_early_warning(self) -> bool:
        """True when the position is in the early-warning zone (SSC-3 4.2.5)."""
        return await self.end_offset(self.position) > self.capacity - EARLY_WARNING

    async def write(self, items: Sequence[tuple[Kind, Payload]]) -> bool:
        """Write records at the position, ending the data there (SSC-3 4.2.6).

        Returns True if the data now ends in the early-warning zone; raises MediumFull
        (writing nothing) when the records and the EOD header do not fit.
        """
        recs = await self.records()
        off = await self.end_offset(self.position)
        prev = recs[self.position - 1].offset if self.position else 0
        parts: list[Payload] = []
        new: list[Record] = []
        at = off
        for kind, payload in items:
            parts += [RECORD.pack(kind, len(payload), prev), payload]
            new.append(Record(kind, at, len(payload)))
            prev, at = at, at + RECORD.size + len(payload)
        parts.append(RECORD.pack(Kind.EOD, 0, prev))
        if at + RECORD.size > self.capacity:
            raise MediumFull
        if not self._formatted:
            await self.store.write(0, HEADER.pack(MAGIC, VERSION, HEADER_SIZE))
            self._formatted = True
        await self.store.write(off, b"".join(parts))
        del recs[self.position:]
        recs.extend(new)
        self.position = len(recs)
        return at > self.capacity - EARLY_WARNING

    async def erase(self) -> None:
        """ERASE: the data ends at the position (SSC-3 6.2)."""
        await self.write([])

    async def payload(self, rec: Record) -> Payload:
        return await self.store.read(rec.offset + RECORD.size, rec.length)
