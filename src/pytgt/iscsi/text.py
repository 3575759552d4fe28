"""Text key=value codec (RFC 7143 section 6.1): ``key=value\\0`` pairs, UTF-8.

Continuation across PDUs (the C bit) is the caller's: concatenate the data
segments, then decode once the final PDU has arrived.
"""

from __future__ import annotations

from pytgt.iscsi.constants import RejectReason
from pytgt.iscsi.errors import ProtocolError

Data = bytes | bytearray | memoryview

MAX_KEY_LENGTH = 63  # 6.1: key names are at most 63 bytes
MAX_VALUE_LENGTH = 8192  # 6.1: values are at most 8192 bytes unless stated otherwise


def decode_text(data: Data) -> list[tuple[str, str]]:
    """``b"k=v\\0k2=v2\\0"`` -> ``[("k", "v"), ("k2", "v2")]``.

    Trailing NUL padding is ignored. Raises ProtocolError for a pair with no ``=``,
    an empty or over-long key, or bytes that are not UTF-8.
    """
    raw = bytes(data).rstrip(b"\0")
    if not raw:
        return []
    out: list[tuple[str, str]] = []
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if not sep or not key or len(key) > MAX_KEY_LENGTH:
            raise ProtocolError(RejectReason.PROTOCOL_ERROR, f"malformed text pair {item[:80]!r}")
        try:
            out.append((key.decode("utf-8"), value.decode("utf-8")))
        except UnicodeDecodeError:
            raise ProtocolError(RejectReason.PROTOCOL_ERROR, "text is not UTF-8") from None
    return out


def encode_text(pairs: list[tuple[str, str]]) -> bytes:
    """``[("k", "v")]`` -> ``b"k=v\\0"`` (each pair NUL-terminated)."""
    return b"".join(f"{k}={v}".encode() + b"\0" for k, v in pairs)
