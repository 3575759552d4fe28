"""The key=value text codec (RFC 7143 6.1)."""

from __future__ import annotations

import pytest

from pytgt.iscsi.constants import RejectReason
from pytgt.iscsi.errors import ProtocolError
from pytgt.iscsi.text import MAX_KEY_LENGTH, decode_text, encode_text

PAIRS = [("InitiatorName", "iqn.2026-01.org.example:host"), ("SessionType", "Normal"),
         ("TargetAlias", "disk one"), ("X-com.example.Empty", ""), ("K", "a=b")]
WIRE = (b"InitiatorName=iqn.2026-01.org.example:host\0SessionType=Normal\0"
        b"TargetAlias=disk one\0X-com.example.Empty=\0K=a=b\0")


def test_encode_is_byte_exact() -> None:
    assert encode_text(PAIRS) == WIRE
    assert encode_text([]) == b""


@pytest.mark.parametrize("data", [WIRE, bytearray(WIRE), memoryview(WIRE),
                                  WIRE + b"\0\0\0", WIRE[:-1]])
def test_decode(data: bytes) -> None:
    assert decode_text(data) == PAIRS


@pytest.mark.parametrize("data", [b"", b"\0", b"\0\0\0\0"])
def test_decode_empty(data: bytes) -> None:
    assert decode_text(data) == []


def test_round_trip_utf8() -> None:
    pairs = [("TargetAlias", "disque é ✓")]
    assert decode_text(encode_text(pairs)) == pairs


def test_pieces_joined_at_any_byte() -> None:
    # 6.1: a pair may span PDUs; the caller joins the pieces, then decodes once.
    for cut in range(len(WIRE) + 1):
        assert decode_text(WIRE[:cut] + WIRE[cut:]) == PAIRS


@pytest.mark.parametrize("data", [
    b"NoEquals\0", b"=value\0", b"A=1\0\0B=2\0", b"A=\xff\0",
    b"K" * (MAX_KEY_LENGTH + 1) + b"=1\0",
])
def test_decode_rejects(data: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_text(data)
    assert info.value.reason is RejectReason.PROTOCOL_ERROR


def test_longest_key_accepted() -> None:
    key = "K" * MAX_KEY_LENGTH
    assert decode_text(f"{key}=1\0".encode()) == [(key, "1")]
