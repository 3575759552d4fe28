"""Serial number arithmetic for 32-bit sequence numbers (RFC 1982, RFC 7143 4.2.2.1)."""

from __future__ import annotations

_HALF = 1 << 31
_MASK = 0xFFFFFFFF


def sn_add(a: int, n: int) -> int:
    """``a + n`` modulo 2**32."""
    return (a + n) & _MASK


def sn_lt(a: int, b: int) -> bool:
    """``a < b`` in serial number arithmetic."""
    return a != b and ((b - a) & _MASK) < _HALF


def sn_le(a: int, b: int) -> bool:
    """``a <= b`` in serial number arithmetic."""
    return a == b or sn_lt(a, b)


def sn_in_window(sn: int, low: int, high: int) -> bool:
    """``low <= sn <= high`` (the CmdSN window check)."""
    return sn_le(low, sn) and sn_le(sn, high)
