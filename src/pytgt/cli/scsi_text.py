"""SCSI answers as text, in the layout of libiscsi's iscsi-inq, iscsi-readcapacity16
and iscsi-ls (so that scripts written for those read ``pytgt-iscsi``'s output too)."""

from __future__ import annotations

import struct

# SPC-4 table 140: peripheral device types, with libiscsi's names
DEVICE_TYPES = {
    0x00: "DIRECT_ACCESS", 0x01: "SEQUENTIAL_ACCESS", 0x02: "PRINTER", 0x03: "PROCESSOR",
    0x04: "WRITE_ONCE", 0x05: "MMC", 0x06: "SCANNER", 0x07: "OPTICAL_MEMORY",
    0x08: "MEDIA_CHANGER", 0x09: "COMMUNICATIONS", 0x0C: "STORAGE_ARRAY_CONTROLLER",
    0x0D: "ENCLOSURE_SERVICES", 0x0E: "SIMPLIFIED_DIRECT_ACCESS", 0x0F: "OPTICAL_CARD_READER",
    0x10: "BRIDGE_CONTROLLER", 0x11: "OSD", 0x12: "AUTOMATION", 0x13: "SECURITY_MANAGER",
    0x1E: "WELL_KNOWN_LUN", 0x1F: "UNKNOWN",
}
QUALIFIERS = {0: "CONNECTED", 1: "DISCONNECTED", 3: "NOT_SUPPORTED"}
VERSIONS = {0: "NONE", 3: "SPC", 4: "SPC-2", 5: "SPC-3", 6: "SPC-4", 7: "SPC-5"}
# SPC-4 table 141 (the ones pytgt and tgt report), else "unknown"
VERSION_DESCRIPTORS = {0x00A0: "SAM-5", 0x0960: "iSCSI", 0x0460: "SPC-4", 0x04C0: "SBC-3",
                       0x0300: "SPC-3", 0x0320: "SBC-2", 0x0060: "SAM-3", 0x0080: "SAM-4"}
VPD_PAGES = {0x00: "SUPPORTED_VPD_PAGES", 0x80: "UNIT_SERIAL_NUMBER",
             0x83: "DEVICE_IDENTIFICATION", 0x86: "EXTENDED_INQUIRY_DATA",
             0x8F: "THIRD_PARTY_COPY", 0xB0: "BLOCK_LIMITS",
             0xB1: "BLOCK_DEVICE_CHARACTERISTICS", 0xB2: "LOGICAL_BLOCK_PROVISIONING"}
DESIGNATOR_TYPES = {0: "VENDOR_SPECIFIC", 1: "T10_VENDOR_ID", 2: "EUI-64", 3: "NAA",
                    4: "RELATIVE_TARGET_PORT", 5: "TARGET_PORT_GROUP", 6: "LOGICAL_UNIT_GROUP",
                    7: "MD5_LOGICAL_UNIT_IDENTIFIER", 8: "SCSI_NAME_STRING"}
ASSOCIATIONS = {0: "LOGICAL_UNIT", 1: "TARGET_PORT", 2: "TARGET_DEVICE"}


def device_type(code: int) -> str:
    return DEVICE_TYPES.get(code, "UNKNOWN")


def standard_inquiry(data: bytes) -> list[str]:
    """Standard INQUIRY data (SPC-4 6.6.2), iscsi-inq's lines."""
    d = bytes(data).ljust(74, b"\0")

    def bit(byte: int, n: int) -> int:
        return (d[byte] >> n) & 1

    lines = [f"Peripheral Qualifier:{QUALIFIERS.get(d[0] >> 5, 'UNKNOWN')}",
             f"Peripheral Device Type:{device_type(d[0] & 0x1F)}",
             f"Removable:{bit(1, 7)}",
             f"Version:{d[2]} {VERSIONS.get(d[2], 'unknown')}",
             f"NormACA:{bit(3, 5)}", f"HiSup:{bit(3, 4)}", f"ReponseDataFormat:{d[3] & 0x0F}",
             f"SCCS:{bit(5, 7)}", f"ACC:{bit(5, 6)}", f"TPGS:{(d[5] >> 4) & 3}",
             f"3PC:{bit(5, 3)}", f"Protect:{bit(5, 0)}", f"EncServ:{bit(6, 6)}",
             f"MultiP:{bit(6, 4)}", f"SYNC:{bit(7, 4)}", f"CmdQue:{bit(7, 1)}",
             f"Vendor:{_ascii(d[8:16])}", f"Product:{_ascii(d[16:32])}",
             f"Revision:{_ascii(d[32:36])}"]
    for i in range(58, min(len(data), 74), 2):
        code = struct.unpack_from(">H", d, i)[0]
        if code:
            lines.append(f"Version Descriptor:{code:04x} "
                         f"{VERSION_DESCRIPTORS.get(code, 'unknown')}")
    return lines


def _ascii(b: bytes) -> str:
    return b.decode("ascii", "replace").rstrip("\0")


def vpd_page(page: int, data: bytes) -> list[str]:
    """A VPD page (SPC-4 7.8): the pages list, the serial number, the designators, or hex."""
    d = bytes(data)
    body = d[4:4 + int.from_bytes(d[2:4], "big")]
    if page == 0x00:
        return [f"Page:0x{p:02x} {VPD_PAGES.get(p, 'unknown')}" for p in body]
    if page == 0x80:
        return [f"Unit Serial Number:[{_ascii(body)}]"]
    if page == 0x83:
        return list(_designators(body))
    return [f"Page:0x{page:02x}"] + [body[i:i + 16].hex(" ") for i in range(0, len(body), 16)]


def _designators(body: bytes) -> list[str]:
    """Identification descriptors (SPC-4 7.8.6): association, type, value."""
    out, pos = [], 0
    while pos + 4 <= len(body):
        code_set, assoc, kind, length = body[pos] & 0x0F, (body[pos + 1] >> 4) & 3, \
            body[pos + 1] & 0x0F, body[pos + 3]
        raw = body[pos + 4:pos + 4 + length]
        value = _ascii(raw) if code_set in (2, 3) else raw.hex()
        out.append(f"Designator:{ASSOCIATIONS.get(assoc, 'UNKNOWN')} "
                   f"{DESIGNATOR_TYPES.get(kind, 'UNKNOWN')} {value}")
        pos += 4 + length
    return out


def read_capacity16(data: bytes) -> list[str]:
    """READ CAPACITY (16) parameter data (SBC-3 5.16.2), iscsi-readcapacity16's lines."""
    d = bytes(data).ljust(32, b"\0")
    last, block = struct.unpack_from(">QI", d)
    return [f"RETURNED LOGICAL BLOCK ADDRESS:{last}",
            f"LOGICAL BLOCK LENGTH IN BYTES:{block}",
            f"P_TYPE:{(d[12] >> 1) & 7} PROT_EN:{d[12] & 1}",
            f"P_I_EXPONENT:{d[13] >> 4} LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT:"
            f"{d[13] & 0x0F}",
            f"LBPME:{d[14] >> 7} LBPRZ:{(d[14] >> 6) & 1}",
            f"LOWEST ALIGNED LOGICAL BLOCK ADDRESS:{(d[14] & 0x3F) << 8 | d[15]}",
            f"Total size:{(last + 1) * block}"]


def human_size(size: int) -> str:
    """iscsi-ls's size: whole units of 1024 (``64M``)."""
    for unit, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if size >= 1 << shift:
            return f"{size >> shift}{unit}"
    return str(size)
