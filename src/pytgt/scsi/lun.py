"""The 8-byte LUN field, for the target and the initiator (SAM-5 4.6).

pytgt addresses single-level LUNs 0..16383: peripheral device addressing (4.6.6,
method 00b, bus 0) below 256, flat space addressing (4.6.7, method 01b) from 256.
:func:`encode_lun` gives the field as bytes (REPORT LUNS entries), :func:`lun_field`
the same field as the 64-bit integer that iSCSI PDUs carry, :func:`decode_lun`
turns either form back into a LUN number.
"""

from __future__ import annotations

MAX_LUN = 16383  # 14 bits of flat space addressing
_PERIPHERAL, _FLAT = 0b00, 0b01


def lun_field(lun: int) -> int:
    """The LUN field of ``lun`` as a 64-bit integer; raises ValueError outside 0..16383."""
    if not 0 <= lun <= MAX_LUN:
        raise ValueError(f"LUN {lun} out of range 0..{MAX_LUN}")
    return (lun if lun < 256 else 0x4000 | lun) << 48


def encode_lun(lun: int) -> bytes:
    """The 8-byte LUN field of ``lun`` (REPORT LUNS, SPC-4 6.33); raises ValueError."""
    return lun_field(lun).to_bytes(8, "big")


def decode_lun(field: int | bytes) -> int:
    """The LUN number a LUN field addresses, or -1 when pytgt cannot decode it.

    ``field`` is the 8 bytes or the 64-bit integer of a PDU. An integer below 2**48
    is taken as a LUN number already (the target's lookups accept both spellings);
    -1 answers peripheral addressing of a bus other than 0, and the extended and
    logical unit addressing methods. Raises ValueError when bytes are not 8 long.
    """
    if isinstance(field, int):
        if field < 1 << 48:
            return field
        top = field >> 48
    else:
        if len(field) != 8:
            raise ValueError(f"a LUN field is 8 bytes, not {len(field)}")
        top = int.from_bytes(field[:2], "big")
    method = top >> 14
    if method == _PERIPHERAL:  # bus in bits 13..8 of the first level
        return top & 0xFF if not (top >> 8) & 0x3F else -1
    if method == _FLAT:
        return top & 0x3FFF
    return -1
