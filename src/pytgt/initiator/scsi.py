"""SCSI helpers for the initiator: results, sense decoding, CDB builders.

CDB layouts follow SPC-4 / SBC-3; only what tests and scripts commonly need. The LUN
field codec is the target's, :mod:`pytgt.scsi.lun`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pytgt.scsi.lun import decode_lun

GOOD = 0x00
CHECK_CONDITION = 0x02


@dataclass(frozen=True, slots=True)
class ScsiResult:
    """The outcome of one SCSI command.

    ``data`` is the Data-In received (truncated to what the target sent), ``sense``
    the sense data without its 2-byte length; ``residual`` with ``overflow`` /
    ``underflow`` is the iSCSI residual count (RFC 7143 11.4.5).
    """

    status: int
    data: bytes = b""
    sense: bytes = b""
    residual: int = 0
    overflow: bool = False
    underflow: bool = False

    @property
    def ok(self) -> bool:
        return self.status == GOOD

    @property
    def sense_key(self) -> int | None:
        return parse_sense(self.sense)[0]

    @property
    def asc(self) -> int | None:
        return parse_sense(self.sense)[1]

    @property
    def ascq(self) -> int | None:
        return parse_sense(self.sense)[2]

    def check(self) -> ScsiResult:
        """Return self when GOOD; raises ScsiError otherwise."""
        if self.status != GOOD:
            from pytgt.initiator.errors import ScsiError

            raise ScsiError(self)
        return self


def parse_sense(sense: bytes) -> tuple[int | None, int | None, int | None]:
    """(sense key, ASC, ASCQ) of fixed (0x70/0x71) or descriptor (0x72/0x73) sense."""
    if len(sense) < 2:
        return None, None, None
    code = sense[0] & 0x7F
    if code in (0x72, 0x73) and len(sense) >= 4:
        return sense[1] & 0xF, sense[2], sense[3]
    if code in (0x70, 0x71) and len(sense) >= 3:
        asc = sense[12] if len(sense) > 12 else 0
        ascq = sense[13] if len(sense) > 13 else 0
        return sense[2] & 0xF, asc, ascq
    return None, None, None


# -- CDB builders ---------------------------------------------------------------------
def cdb_test_unit_ready() -> bytes:
    return bytes(6)


def cdb_inquiry(evpd: bool = False, page: int = 0, allocation_length: int = 255) -> bytes:
    return struct.pack(">BBBHB", 0x12, 1 if evpd else 0, page, allocation_length, 0)


def cdb_read_capacity16(allocation_length: int = 32) -> bytes:
    return struct.pack(">BBQIBB", 0x9E, 0x10, 0, allocation_length, 0, 0)


def cdb_report_luns(allocation_length: int = 4096, select_report: int = 0) -> bytes:
    return struct.pack(">BBBBBBIBB", 0xA0, 0, select_report, 0, 0, 0, allocation_length, 0, 0)


def cdb_read16(lba: int, blocks: int, fua: bool = False) -> bytes:
    return struct.pack(">BBQIBB", 0x88, 0x08 if fua else 0, lba, blocks, 0, 0)


def cdb_write16(lba: int, blocks: int, fua: bool = False) -> bytes:
    return struct.pack(">BBQIBB", 0x8A, 0x08 if fua else 0, lba, blocks, 0, 0)


def cdb_synchronize_cache16(lba: int = 0, blocks: int = 0) -> bytes:
    return struct.pack(">BBQIBB", 0x91, 0, lba, blocks, 0, 0)


# -- parameter data parsers -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Inquiry:
    """Standard INQUIRY data (SPC-4 6.6.2), the fields people look at."""

    peripheral_qualifier: int
    peripheral_device_type: int
    removable: bool
    version: int
    vendor: str
    product: str
    revision: str
    raw: bytes

    @classmethod
    def parse(cls, data: bytes) -> Inquiry:
        d = bytes(data).ljust(36, b"\0")
        return cls(d[0] >> 5, d[0] & 0x1F, bool(d[1] & 0x80), d[2], _ascii(d[8:16]),
                   _ascii(d[16:32]), _ascii(d[32:36]), bytes(data))


def _ascii(b: bytes) -> str:
    return b.decode("ascii", "replace").rstrip(" \0")


@dataclass(frozen=True, slots=True)
class Capacity:
    """READ CAPACITY (16) parameter data (SBC-3 5.16.2)."""

    last_lba: int
    block_size: int
    raw: bytes

    @property
    def blocks(self) -> int:
        return self.last_lba + 1

    @property
    def size(self) -> int:
        return self.blocks * self.block_size

    @classmethod
    def parse(cls, data: bytes) -> Capacity:
        last, bs = struct.unpack_from(">QI", bytes(data).ljust(12, b"\0"))
        return cls(last, bs, bytes(data))


def parse_report_luns(data: bytes) -> list[int]:
    """REPORT LUNS parameter data (SPC-4 6.33) -> LUN numbers."""
    d = bytes(data)
    if len(d) < 8:
        return []
    n = int.from_bytes(d[:4], "big") // 8
    return [_report_luns_entry(d[8 + 8 * i : 16 + 8 * i]) for i in range(n)
            if 16 + 8 * i <= len(d)]


def _report_luns_entry(entry: bytes) -> int:
    """A LUN number, or the raw 64-bit field when its addressing is not decoded (pass
    it back as the ``lun`` of a request: numbers from 16384 go out unchanged)."""
    lun = decode_lun(entry)
    return lun if lun >= 0 else int.from_bytes(entry, "big")
