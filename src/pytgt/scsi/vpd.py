"""Vital product data pages (SPC-4 7.8, SBC-3 6.6) for INQUIRY with EVPD=1."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytgt.scsi.lu import LogicalUnit
    from pytgt.scsi.task import ItNexus

SUPPORTED_VPD_PAGES = 0x00
UNIT_SERIAL_NUMBER = 0x80
DEVICE_IDENTIFICATION = 0x83
THIRD_PARTY_COPY = 0x8F
BLOCK_LIMITS = 0xB0
BLOCK_DEVICE_CHARACTERISTICS = 0xB1
LOGICAL_BLOCK_PROVISIONING = 0xB2

PROTOCOL_ISCSI = 0x5
CODE_SET_BINARY, CODE_SET_ASCII, CODE_SET_UTF8 = 1, 2, 3
ASSOC_LU, ASSOC_TARGET_PORT = 0, 1
DESIG_T10_VENDOR, DESIG_NAA, DESIG_RELATIVE_PORT, DESIG_PORT_GROUP = 1, 3, 4, 5

# Block limits we advertise (SBC-3 6.6.4).
MAX_TRANSFER_BLOCKS = 0xFFFFFFFF  # no limit below the largest TRANSFER LENGTH field
MAX_COMPARE_AND_WRITE = 1
MAX_UNMAP_LBA_COUNT = 0xFFFFFFFF
MAX_UNMAP_DESCRIPTORS = 256
MAX_WRITE_SAME_BLOCKS = 0x10000
# WRITE ATOMIC(16) limits (SBC-4 6.6.4, atomic.py): one store write of up to 1 MiB
# at 4096-byte blocks, any alignment and granularity, no atomic boundaries.
MAX_ATOMIC_TRANSFER_BLOCKS = 256
ATOMIC_ALIGNMENT = 1
ATOMIC_GRANULARITY = 1


def _header(lu: LogicalUnit, code: int, body: bytes) -> bytes:
    return struct.pack(">BBH", lu.peripheral_type, code, len(body)) + body


def _designator(code_set: int, assoc: int, kind: int, value: bytes, piv: bool = False) -> bytes:
    b0 = (PROTOCOL_ISCSI << 4 if piv else 0) | code_set
    b1 = (0x80 if piv else 0) | (assoc << 4) | kind
    return bytes((b0, b1, 0, len(value))) + value


def naa_id(scsi_id: str) -> bytes:
    """A stable 16-byte NAA 6 (IEEE registered extended) identifier from the SCSI ID."""
    digest = bytearray(hashlib.sha256(scsi_id.encode()).digest()[:16])
    digest[0] = 0x60 | (digest[0] & 0x0F)
    return bytes(digest)


def supported_pages(lu: LogicalUnit, nexus: ItNexus) -> bytes:
    return _header(lu, SUPPORTED_VPD_PAGES, bytes(sorted(pages_for(lu))))


def unit_serial_number(lu: LogicalUnit, nexus: ItNexus) -> bytes:
    return _header(lu, UNIT_SERIAL_NUMBER, lu.scsi_sn.encode("ascii", "replace"))


def device_identification(lu: LogicalUnit, nexus: ItNexus) -> bytes:
    vendor = lu.vendor_id.encode("ascii", "replace").ljust(8)[:8]
    body = b"".join((
        _designator(CODE_SET_BINARY, ASSOC_LU, DESIG_NAA, naa_id(lu.scsi_id)),
        _designator(CODE_SET_ASCII, ASSOC_LU, DESIG_T10_VENDOR,
                    vendor + lu.scsi_id.encode("ascii", "replace")),
        _designator(CODE_SET_BINARY, ASSOC_TARGET_PORT, DESIG_RELATIVE_PORT,
                    struct.pack(">HH", 0, nexus.relative_port & 0xFFFF), piv=True),
        _designator(CODE_SET_BINARY, ASSOC_TARGET_PORT, DESIG_PORT_GROUP,
                    struct.pack(">HH", 0, nexus.port_group & 0xFFFF), piv=True),
    ))
    return _header(lu, DEVICE_IDENTIFICATION, body)


def block_limits(lu: LogicalUnit, nexus: ItNexus) -> bytes:
    thin = lu.thin_provisioning
    body = struct.pack(
        ">BBHIIIIIIIQIIIII",
        0x01,  # WSNZ: a WRITE SAME NUMBER OF LOGICAL BLOCKS of zero is refused
        MAX_COMPARE_AND_WRITE,
        0,  # OPTIMAL TRANSFER LENGTH GRANULARITY
        MAX_TRANSFER_BLOCKS,
        0,  # OPTIMAL TRANSFER LENGTH
        0,  # MAXIMUM PREFETCH LENGTH
        MAX_UNMAP_LBA_COUNT if thin else 0,
        MAX_UNMAP_DESCRIPTORS if thin else 0,
        1 if thin else 0,  # OPTIMAL UNMAP GRANULARITY
        0,  # UGAVALID=0, UNMAP GRANULARITY ALIGNMENT
        MAX_WRITE_SAME_BLOCKS,
        MAX_ATOMIC_TRANSFER_BLOCKS,
        ATOMIC_ALIGNMENT,
        ATOMIC_GRANULARITY,
        0,  # MAXIMUM ATOMIC TRANSFER LENGTH WITH ATOMIC BOUNDARY
        0,  # MAXIMUM ATOMIC BOUNDARY SIZE
    )
    return _header(lu, BLOCK_LIMITS, body)


def block_device_characteristics(lu: LogicalUnit, nexus: ItNexus) -> bytes:
    # MEDIUM ROTATION RATE 1: non-rotating; WABEREQ/WACEREQ 01b (reads of erased blocks
    # succeed) where SANITIZE BLOCK/CRYPTO ERASE are offered (thin LUs, sanitize.py).
    erase = 0x50 if lu.thin_provisioning else 0
    body = struct.pack(">HBB56x", 1, 0, erase)
    return _header(lu, BLOCK_DEVICE_CHARACTERISTICS, body)


def logical_block_provisioning(lu: LogicalUnit, nexus: ItNexus) -> bytes:
    # LBPU, LBPWS, LBPWS10, LBPRZ; PROVISIONING TYPE 010b (thin) or 000b (full).
    thin = lu.thin_provisioning
    body = bytes((0, 0x80 | 0x40 | 0x20 | 0x04, 0x02, 0)) if thin else bytes(4)
    return _header(lu, LOGICAL_BLOCK_PROVISIONING, body)


def third_party_copy(lu: LogicalUnit, nexus: ItNexus) -> bytes:
    """Third-party Copy VPD page (SPC-4 7.8.17), described by the copy manager (xcopy.py)."""
    from pytgt.scsi import xcopy  # xcopy reads page 83h from here: import when called

    return _header(lu, THIRD_PARTY_COPY, xcopy.third_party_copy_descriptors(lu))


VpdBuilder = Callable[["LogicalUnit", "ItNexus"], bytes]

_COMMON: dict[int, VpdBuilder] = {
    SUPPORTED_VPD_PAGES: supported_pages,
    UNIT_SERIAL_NUMBER: unit_serial_number,
    DEVICE_IDENTIFICATION: device_identification,
}
_DISK: dict[int, VpdBuilder] = {
    **_COMMON,
    BLOCK_LIMITS: block_limits,
    BLOCK_DEVICE_CHARACTERISTICS: block_device_characteristics,
    LOGICAL_BLOCK_PROVISIONING: logical_block_provisioning,
    THIRD_PARTY_COPY: third_party_copy,
}


def pages_for(lu: LogicalUnit) -> dict[int, VpdBuilder]:
    """The VPD pages this LU's device type supports."""
    return _DISK if lu.device_type == "disk" else _COMMON
