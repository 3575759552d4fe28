"""The LUN field codec both the target and the initiator use (SAM-5 4.6)."""

from __future__ import annotations

import struct

import pytest

from pytgt.initiator.scsi import parse_report_luns
from pytgt.scsi.lun import decode_lun, encode_lun, lun_field

# (LUN, its 8-byte field): peripheral device addressing below 256, flat space from 256
VECTORS = [
    (0, bytes(8)),
    (1, b"\x00\x01" + bytes(6)),
    (255, b"\x00\xff" + bytes(6)),
    (256, b"\x41\x00" + bytes(6)),
    (0x101, b"\x41\x01" + bytes(6)),
    (16383, b"\x7f\xff" + bytes(6)),
]


@pytest.mark.parametrize(("lun", "field"), VECTORS)
def test_encode_and_lun_field_are_the_same_field(lun: int, field: bytes) -> None:
    assert encode_lun(lun) == field
    assert lun_field(lun) == int.from_bytes(field, "big")


@pytest.mark.parametrize(("lun", "field"), VECTORS)
def test_decode_either_form(lun: int, field: bytes) -> None:
    assert decode_lun(field) == lun
    assert decode_lun(int.from_bytes(field, "big")) == lun


@pytest.mark.parametrize("lun", [-1, 16384, 1 << 20])
def test_encode_out_of_range(lun: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        encode_lun(lun)
    with pytest.raises(ValueError, match="out of range"):
        lun_field(lun)


@pytest.mark.parametrize("field", [
    b"\x01\x05" + bytes(6),  # peripheral addressing, bus 1
    b"\x80\x01" + bytes(6),  # logical unit addressing
    b"\xc0\x01" + bytes(6),  # extended addressing
])
def test_undecoded_addressing_is_minus_one(field: bytes) -> None:
    assert decode_lun(field) == -1
    assert decode_lun(int.from_bytes(field, "big")) == -1


def test_small_integers_are_lun_numbers_already() -> None:
    assert decode_lun(5) == 5  # what the target's lookups are given for a plain LUN


@pytest.mark.parametrize("field", [b"", bytes(7), bytes(9)])
def test_bytes_must_be_eight(field: bytes) -> None:
    with pytest.raises(ValueError, match="8 bytes"):
        decode_lun(field)


def test_report_luns_lists_numbers_and_keeps_undecoded_fields_raw() -> None:
    extended = b"\xc0\x01\x02\x03" + bytes(4)
    body = encode_lun(0) + encode_lun(300) + extended
    data = struct.pack(">I4x", len(body)) + body
    assert parse_report_luns(data) == [0, 300, int.from_bytes(extended, "big")]
