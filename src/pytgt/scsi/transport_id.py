"""iSCSI TransportIDs (SPC-4 7.6.4.6) as PERSISTENT RESERVE OUT carries them.

SPEC_I_PT and REGISTER AND MOVE name initiators with them and READ FULL STATUS reports
them: format 00b names an initiator device (any ISID), format 01b an initiator port
(name + ISID).
"""

from __future__ import annotations

import struct

from pytgt.scsi.vpd import PROTOCOL_ISCSI

FORMAT_DEVICE, FORMAT_PORT = 0b00, 0b01
_ISID_SEP = ",i,0x"
_HEAD = struct.Struct(">BxH")


class TransportIdError(ValueError):
    """A TransportID this target cannot use; ``offset`` points at the bad byte."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def parse_transport_id(data: bytes | memoryview, offset: int = 0) -> tuple[str, int]:
    """One iSCSI TransportID at ``offset``: (initiator port or device name, its length).

    Format 01b gives ``"name,i,0x<isid>"`` (ISID lower-cased, 12 hex digits); format
    00b gives the bare iSCSI name, which matches every ISID of that initiator.
    Raises TransportIdError.
    """
    if len(data) - offset < 4:
        raise TransportIdError("TransportID header truncated", offset)
    first, length = _HEAD.unpack_from(data, offset)
    if first & 0x0F != PROTOCOL_ISCSI:
        raise TransportIdError("not an iSCSI TransportID", offset)
    fmt = first >> 6
    if fmt not in (FORMAT_DEVICE, FORMAT_PORT) or first & 0x30:
        raise TransportIdError("unknown TransportID format", offset)
    total = 4 + length
    if length < 20 or length % 4 or offset + total > len(data):
        raise TransportIdError("bad TransportID length", offset + 2)
    raw = bytes(data[offset + 4: offset + total])
    end = raw.find(b"\0")
    if end <= 0:
        raise TransportIdError("iSCSI name not null-terminated", offset + 4)
    try:
        text = raw[:end].decode("utf-8")
    except UnicodeDecodeError:
        raise TransportIdError("iSCSI name not UTF-8", offset + 4) from None
    return _canonical(text, fmt, offset), total


def _canonical(text: str, fmt: int, offset: int) -> str:
    name, sep, isid = text.partition(",")
    if fmt == FORMAT_DEVICE:
        if sep or not name:
            raise TransportIdError("format 00b carries a name only", offset + 4)
        return name
    lower = text.lower()
    at = lower.find(_ISID_SEP)
    digits = lower[at + len(_ISID_SEP):] if at > 0 else ""
    if at <= 0 or not 1 <= len(digits) <= 12 or any(c not in "0123456789abcdef"
                                                     for c in digits):
        raise TransportIdError("format 01b needs name,i,0x<ISID>", offset + 4)
    return f"{text[:at]}{_ISID_SEP}{int(digits, 16):012x}"


def encode_transport_id(initiator: str) -> bytes:
    """The iSCSI TransportID of an initiator port (01b) or device (00b), padded to 4."""
    fmt = FORMAT_PORT if _ISID_SEP in initiator else FORMAT_DEVICE
    name = initiator.encode() + b"\0"
    name += b"\0" * (-len(name) % 4)
    if len(name) < 20:
        name += b"\0" * (20 - len(name))
    return _HEAD.pack(fmt << 6 | PROTOCOL_ISCSI, len(name)) + name
