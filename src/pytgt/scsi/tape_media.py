"""The tape medium on a byte-level backing store (formats in docs/tape.md).

pytgt's format: a 512-byte header (``PYTGTAPE``, version 1), then records, each a
16-byte record header (kind, payload length, offset of the previous record header) and
its payload; an END OF DATA record header ends the written part. A zero-filled file is a
blank tape; the file's size is the capacity.

tgt's format (``tgtimg``), read and written in place: a 48-byte beginning-of-tape block
header, tgt's 1,104-byte medium auxiliary memory (barcode, serial, media type), then
48-byte block headers (CRC-32C, sizes, type, block number, previous/current/next
offsets) each followed by its data, the last one END OF DATA; the file holds only what
was written (it grows and shrinks through the store's ``resize``), the capacity is a
header field.

The medium keeps an index of the records (built on first use by reading the record
headers through the store, off the event loop) and the current position as a logical
object identifier (SSC-3 4.2.4: blocks and marks are numbered from 0 at BOP; the
identifier of EOD is the number of records).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from crc32c import crc32c

from pytgt.stores.base import BackingStore, StoreIOError, SupportsResize

MAGIC = b"PYTGTAPE"
VERSION = 1
HEADER = struct.Struct(">8sII")  # magic, version, header length; zero-padded to 512
HEADER_SIZE = 512
# version 1's reserved bytes from offset 16, written by pytgtimg (zero in older images)
LABEL = struct.Struct(">32sBxxxxxxxQ")  # barcode (NUL-padded), media type, created (Unix s)
LABEL_OFFSET = 16
# version 1's reserved bytes after the label: the medium auxiliary memory pytgt keeps
# (SPC-4 7.4): entries of attribute identifier, length and value, up to a zero entry
MAM_OFFSET = LABEL_OFFSET + LABEL.size  # 64
MAM_AREA = HEADER_SIZE - MAM_OFFSET  # 448 bytes
MAM_ENTRY = struct.Struct(">HH")
LOAD_COUNT = 0x0003  # the one device attribute kept there (SPC-4 7.4.2.2)
RECORD = struct.Struct(">B3xIQ")  # kind, payload length, previous record header offset
Payload = bytes | bytearray | memoryview
#: The density code of every medium (SSC-3 8.3.1, REPORT DENSITY SUPPORT): LTO-5's
DENSITY_CODE = 0x58
EARLY_WARNING = 1 << 20  # bytes before the end of the medium that start early warning
SCAN_CHUNK = 1 << 16  # bytes read at a time while indexing a tgt image's block headers


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


def parse_mam(area: bytes) -> dict[int, bytes]:
    """The attributes kept in a header's MAM area (``MAM_AREA`` bytes from ``MAM_OFFSET``)."""
    out: dict[int, bytes] = {}
    off = 0
    while off + MAM_ENTRY.size <= len(area):
        ident, length = MAM_ENTRY.unpack_from(area, off)
        if not ident and not length:
            break
        if off + MAM_ENTRY.size + length > len(area) or ident in out:
            raise MediumFormatError(f"bad medium auxiliary memory entry at offset "
                                    f"{MAM_OFFSET + off}")
        out[ident] = bytes(area[off + MAM_ENTRY.size:off + MAM_ENTRY.size + length])
        off += MAM_ENTRY.size + length
    return out


def format_mam(attrs: dict[int, bytes]) -> bytes:
    """The MAM area for ``attrs`` (zero-padded); MamFull when they do not fit."""
    area = b"".join(MAM_ENTRY.pack(i, len(v)) + v for i, v in sorted(attrs.items()))
    if len(area) > MAM_AREA:
        raise MamFull
    return area.ljust(MAM_AREA, b"\0")


def check_header(header: bytes) -> bool:
    """True for a pytgt tape header, False for a blank tape; else MediumFormatError."""
    if header[:HEADER.size] == bytes(HEADER.size):
        return False
    magic, version, hlen = HEADER.unpack_from(header)
    if magic != MAGIC or version != VERSION or hlen != HEADER_SIZE:
        raise MediumFormatError("neither a pytgt nor a tgt (tgtimg) tape image")
    return True


# tgt's format (docs/tape.md "tgt's tgtimg images"): a block header is the CRC-32C of its
# bytes 4..47 (in the byte order of the host that wrote it: little-endian from x86, read
# either way), then big-endian the on-disk and block sizes, the type, the block number and
# the offsets of the previous, this and the next block header.
TGT_HEADER = struct.Struct(">4sIIIQQQQ")
TGT_MAM_SIZE = 1104  # tgt's medium auxiliary memory, after the beginning-of-tape header
TGT_DATA = TGT_HEADER.size + TGT_MAM_SIZE  # 1152: the first block header
TGT_SERIAL = slice(0x138, 0x158)  # "BARCODE_CREATED", NUL-padded (file offsets)
TGT_MEDIUM_TYPE = 0x180
TGT_BARCODE = slice(0x268, 0x288)  # space-padded
MB = 1 << 20  # the beginning-of-tape header's block size is the capacity in MiB
TGT_MAX_BLOCK = 0xFFFFFF  # a block's data (READ BLOCK LIMITS); larger: a damaged header


class TgtType(enum.IntEnum):
    """tgt's block types (as ``tgtimg --op show`` names them)."""

    DATA = 0x02  # uncompressed data
    BOT = 0x10
    EOD = 0x20
    FILEMARK = 0x40


TGT_KIND = {TgtType.DATA: Kind.DATA, TgtType.FILEMARK: Kind.FILEMARK, TgtType.EOD: Kind.EOD}
# tgt has no setmark: its WRITE FILEMARKS with WSMK writes a filemark, and so does pytgt
TGT_TYPE = {Kind.DATA: TgtType.DATA, Kind.FILEMARK: TgtType.FILEMARK,
            Kind.SETMARK: TgtType.FILEMARK, Kind.EOD: TgtType.EOD}
TGT_MEDIA = {1: MediaType.DATA, 2: MediaType.CLEAN, 4: MediaType.WORM}


@dataclass(frozen=True, slots=True)
class TgtBlock:
    """One of tgt's block headers, checked against where it was read."""

    type: TgtType
    size: int
    number: int
    prev: int
    curr: int
    next: int


def tgt_header(btype: TgtType, size: int, number: int, prev: int, curr: int,
               nxt: int) -> bytes:
    """A 48-byte tgt block header with its checksum (BOT: ``size`` is the capacity, MiB)."""
    ondisk = 0 if btype == TgtType.BOT else size
    body = TGT_HEADER.pack(b"", ondisk, size, btype, number, prev, curr, nxt)[4:]
    return crc32c(body).to_bytes(4, "little") + body


def is_tgt_image(head: bytes) -> bool:
    """True when ``head`` starts with tgt's beginning-of-tape block header (its type)."""
    return len(head) >= 16 and TGT_HEADER.unpack_from(head.ljust(TGT_HEADER.size, b"\0"))[3] \
        == TgtType.BOT


def parse_tgt_block(raw: bytes, at: int) -> TgtBlock:
    """The block header read at offset ``at``; MediumFormatError unless it is sound."""
    if len(raw) < TGT_HEADER.size:
        raise MediumFormatError(f"truncated tgt tape image: no block header at offset {at}")
    crc, ondisk, size, btype, number, prev, curr, nxt = TGT_HEADER.unpack_from(raw)
    want = crc32c(raw[4:TGT_HEADER.size])
    if crc not in (want.to_bytes(4, "little"), want.to_bytes(4, "big")):
        raise MediumFormatError(f"bad block header checksum at offset {at}")
    if btype not in set(TgtType) or curr != at \
            or ondisk != (0 if btype == TgtType.BOT else size):  # BOT: size = capacity, MiB
        raise MediumFormatError(f"bad block header at offset {at}")
    block = TgtBlock(TgtType(btype), size, number, prev, curr, nxt)
    want = {TgtType.DATA: at + TGT_HEADER.size + size, TgtType.FILEMARK: at + TGT_HEADER.size,
            TgtType.EOD: at, TgtType.BOT: TGT_DATA}[block.type]
    if nxt != want or (size and block.type not in (TgtType.DATA, TgtType.BOT)) \
            or size > TGT_MAX_BLOCK:
        raise MediumFormatError(f"bad block header at offset {at}")
    return block


# the bytes tgtimg writes in every MAM beside the fields above (file offsets)
_TGT_MAM_CONSTANT = {0x33: b"\x02", 0x5E: b"\x01", 0x130: b"Foo     ",
                     0x15A: b"\x01\x80\0\0\0\x7f", 0x188: b"Bar     "}
_TGT_CAPACITY = struct.Struct(">QQ")  # remaining and maximum capacity, bytes, at 38h
TGT_CLEANING_COUNT = 0x183  # a cleaning cartridge's, 20 as tgtimg makes it


def tgt_image_head(capacity_mb: int, label: Label) -> bytes:
    """The first ``TGT_DATA`` bytes of a tgt image as tgtimg makes them: the
    beginning-of-tape header and the MAM (barcode up to 31 characters)."""
    head = bytearray(tgt_header(TgtType.BOT, capacity_mb, 0, 0, 0, TGT_DATA))
    head += bytes(TGT_MAM_SIZE)
    for off, value in _TGT_MAM_CONSTANT.items():
        head[off:off + len(value)] = value
    _TGT_CAPACITY.pack_into(head, 0x38, capacity_mb * MB, capacity_mb * MB)
    serial = f"{label.barcode}_{label.created}".encode("ascii", "replace")[
        :TGT_SERIAL.stop - TGT_SERIAL.start - 1]
    head[TGT_SERIAL.start:TGT_SERIAL.start + len(serial)] = serial
    head[TGT_MEDIUM_TYPE] = {v: k for k, v in TGT_MEDIA.items()}[label.media_type]
    if label.media_type == MediaType.CLEAN:
        head[TGT_CLEANING_COUNT] = 20
    head[TGT_BARCODE.start:TGT_BARCODE.stop - 1] = \
        label.barcode.encode("ascii", "replace")[:31].ljust(31)
    return bytes(head)


def parse_tgt_mam(head: bytes) -> tuple[int, Label]:
    """Capacity (bytes) and label of a tgt image from its first ``TGT_DATA`` bytes."""
    if len(head) < TGT_DATA:
        raise MediumFormatError(f"truncated tgt tape image ({len(head)} bytes)")
    bot = parse_tgt_block(head[:TGT_HEADER.size], 0)
    if bot.type != TgtType.BOT or bot.number or bot.prev:
        raise MediumFormatError("bad block header at offset 0")
    mtype = TGT_MEDIA.get(head[TGT_MEDIUM_TYPE])
    if mtype is None:
        raise MediumFormatError(f"unknown tgt media type {head[TGT_MEDIUM_TYPE]}")
    barcode = head[TGT_BARCODE].split(b"\0")[0].rstrip(b" ").decode("ascii", "replace")
    stamp = head[TGT_SERIAL].split(b"\0")[0].rpartition(b"_")[2]
    created = int(stamp) if stamp.isdigit() and len(stamp) <= 18 else 0  # fits a u64
    return bot.size * MB, Label(barcode, mtype, created)


class MediumFormatError(Exception):
    """The file is neither a sound tape image (pytgt's or tgt's) nor blank."""


class CleaningCartridge(Exception):
    """The medium is a cleaning cartridge (``pytgtimg --type clean``): no data."""


class MamFull(Exception):
    """The attributes do not fit in the medium auxiliary memory (nothing was written)."""


class MediumFull(Exception):
    """The records do not fit before the end of the medium (nothing was written)."""


@dataclass(frozen=True, slots=True)
class Record:
    kind: Kind
    offset: int  # of the record header
    length: int  # payload bytes
    header: int = RECORD.size  # the record header's size (TGT_HEADER.size in tgt's format)

    @property
    def end(self) -> int:
        return self.offset + self.header + self.length


class TapeMedium:
    """Records and position of one tape; callers hold ``lock`` around each command."""

    def __init__(self, store: BackingStore, *,
                 count_load: Callable[[], bool] | None = None) -> None:
        self.store = store
        # a drive's load: LOAD COUNT + 1, kept in the MAM when count_load() says so (not
        # on a read-only LU or store)
        self.count_load = count_load
        self.lock = asyncio.Lock()
        self.position = 0
        self._records: list[Record] | None = None
        self._damage: MediumFormatError | None = None  # why the medium was refused
        self._formatted = False
        self.tgt = False  # tgt's format (read on first use)
        self._capacity = 0  # tgt's format: from the beginning-of-tape header
        self.label = Label()  # read with the records (a blank tape: a data tape)
        self.attributes: dict[int, bytes] = {}  # pytgt's MAM area (host attributes, loads)

    @property
    def capacity(self) -> int:
        return self._capacity if self.tgt else self.store.size

    @property
    def _start(self) -> int:
        """Where the first record header is."""
        return TGT_DATA if self.tgt else HEADER_SIZE

    async def records(self) -> list[Record]:
        """The record index, read from the medium the first time."""
        if self._damage is not None:
            raise self._damage  # refused once, refused until another medium is loaded
        if self._records is None:
            try:
                self._records = await self._scan()
            except MediumFormatError as exc:
                self._damage = exc
                raise
        if self.label.media_type == MediaType.CLEAN:
            raise CleaningCartridge
        return self._records

    async def _scan(self) -> list[Record]:
        size = self.store.size
        if size >= TGT_HEADER.size:
            head = bytes(await self.store.read(0, min(size, TGT_DATA)))
            if is_tgt_image(head):
                return await self._scan_tgt(head)
        if size < HEADER_SIZE + RECORD.size:
            raise MediumFormatError(f"medium too small ({size} bytes)")
        head = bytes(await self.store.read(0, HEADER_SIZE))
        if not check_header(head):
            return []  # blank: formatted on the first write
        self.label = parse_label(head)
        self.attributes = parse_mam(head[MAM_OFFSET:])
        self._formatted = True
        if self.count_load is not None and self.count_load() \
                and not getattr(self.store, "readonly", False):
            loads = int.from_bytes(self.attributes.get(LOAD_COUNT, b""), "big") + 1
            with contextlib.suppress(MamFull, StoreIOError):  # the data is still served
                await self.write_attributes({LOAD_COUNT: loads.to_bytes(8, "big")})
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

    async def _scan_tgt(self, head: bytes) -> list[Record]:
        """tgt's block headers, each checked (checksum, number, offsets) up to its EOD."""
        capacity, label = parse_tgt_mam(head)
        if not isinstance(self.store, SupportsResize):
            raise MediumFormatError("a tgt (tgtimg) tape image needs a file backing store "
                                    "(bstype rdwr)")
        self.tgt, self._capacity, self.label, self._formatted = True, capacity, label, True
        size = self.store.size
        out: list[Record] = []
        off, prev = TGT_DATA, 0
        buf, at, chunk = b"", 0, SCAN_CHUNK  # small blocks' headers: a chunk a read
        while True:
            if not at <= off <= at + len(buf) - TGT_HEADER.size:
                at = off
                buf = bytes(await self.store.read(off, min(chunk, size - off))) \
                    if off < size else b""
            block = parse_tgt_block(buf[off - at:off - at + TGT_HEADER.size], off)
            if block.number != len(out) + 1 or block.prev != prev or block.type == TgtType.BOT:
                raise MediumFormatError(f"bad block header at offset {off}")
            if block.type == TgtType.EOD:
                return out
            if block.next > size:
                raise MediumFormatError(f"truncated tgt tape image: block {block.number} "
                                        f"at offset {off} ends past the end of the file")
            out.append(Record(TGT_KIND[block.type], off, block.size, TGT_HEADER.size))
            off, prev = block.next, off
            chunk = SCAN_CHUNK if block.size < SCAN_CHUNK // 4 else TGT_HEADER.size

    async def write_attributes(self, changes: dict[int, bytes | None]) -> None:
        """Set (None: delete) attributes in pytgt's MAM area, formatting a blank tape's
        header; MamFull (nothing written) when they do not fit."""
        attrs = dict(self.attributes)
        for ident, value in changes.items():
            if value is None:
                attrs.pop(ident, None)
            else:
                attrs[ident] = value
        area = format_mam(attrs)
        if not self._formatted:
            await self.store.write(0, HEADER.pack(MAGIC, VERSION, HEADER_SIZE))
            self._formatted = True
        await self.store.write(MAM_OFFSET, area)
        self.attributes = attrs

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
        return recs[index - 1].end if index else self._start

    async def past_early_warning(self) -> bool:
        """True when the position is in the early-warning zone (SSC-3 4.2.5)."""
        return await self.end_offset(self.position) > self.capacity - EARLY_WARNING

    def _header(self, kind: Kind, length: int, number: int, prev: int, at: int) -> bytes:
        """The record header of record ``number`` (from 1) at offset ``at``."""
        if not self.tgt:
            return RECORD.pack(kind, length, prev)
        nxt = at if kind == Kind.EOD else at + TGT_HEADER.size + length
        return tgt_header(TGT_TYPE[kind], length, number, prev, at, nxt)

    async def write(self, items: Sequence[tuple[Kind, Payload]]) -> bool:
        """Write records at the position, ending the data there (SSC-3 4.2.6).

        Returns True if the data now ends in the early-warning zone; raises MediumFull
        (writing nothing) when the records and the EOD header do not fit. A tgt image
        grows before the write and shrinks after it to end at its EOD header.
        """
        recs = await self.records()
        off = await self.end_offset(self.position)
        prev = recs[self.position - 1].offset if self.position else 0
        hsize = TGT_HEADER.size if self.tgt else RECORD.size
        parts: list[Payload] = []
        new: list[Record] = []
        at = off
        for n, (kind, payload) in enumerate(items, self.position + 1):
            if self.tgt and kind == Kind.SETMARK:
                kind = Kind.FILEMARK  # tgt's format has no setmark (tgtd writes a filemark)
            parts += [self._header(kind, len(payload), n, prev, at), payload]
            new.append(Record(kind, at, len(payload), hsize))
            prev, at = at, at + hsize + len(payload)
        parts.append(self._header(Kind.EOD, 0, self.position + len(items) + 1, prev, at))
        end = at + hsize
        if end > self.capacity:
            raise MediumFull
        if not self._formatted:
            await self.store.write(0, HEADER.pack(MAGIC, VERSION, HEADER_SIZE))
            self._formatted = True
        old_size = self.store.size
        if self.tgt and end > old_size:
            await self._resize(end)
        try:  # the first record header replaces the old EOD header last: a failed
            if len(parts) > 1:  # write leaves the tape as it was
                await self.store.write(off + hsize, b"".join(parts[1:]))
            await self.store.write(off, parts[0])
        except BaseException:
            if self.tgt and self.store.size > old_size:
                with contextlib.suppress(Exception):
                    await self._resize(old_size)
            raise
        if self.tgt and end < self.store.size:
            await self._resize(end)
        del recs[self.position:]
        recs.extend(new)
        self.position = len(recs)
        return at > self.capacity - EARLY_WARNING

    async def _resize(self, size: int) -> None:
        assert isinstance(self.store, SupportsResize)  # checked when the image was read
        await self.store.resize(size)

    async def erase(self) -> None:
        """ERASE: the data ends at the position (SSC-3 6.2)."""
        await self.write([])

    async def payload(self, rec: Record) -> Payload:
        return await self.store.read(rec.offset + rec.header, rec.length)
