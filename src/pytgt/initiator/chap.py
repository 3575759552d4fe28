"""CHAP for the initiator side of iSCSI login (RFC 7143 12.1.3, RFC 1994).

Algorithms are a table (CHAP_A code -> hash); large binary values are 0x-hex or
0b-base64 (RFC 7143 6.1).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable

ALGORITHMS: dict[int, Callable[[bytes], bytes]] = {
    5: lambda b: hashlib.md5(b).digest(),  # RFC 1994 (the only one RFC 7143 requires)
    6: lambda b: hashlib.sha1(b).digest(),
    7: lambda b: hashlib.sha256(b).digest(),
    8: lambda b: hashlib.sha3_256(b).digest(),
}


def decode_binary(value: str) -> bytes:
    """A binary-value (RFC 7143 6.1.2): ``0x`` hex or ``0b`` base64."""
    prefix, body = value[:2].lower(), value[2:]
    if prefix == "0x":
        return bytes.fromhex(body if len(body) % 2 == 0 else "0" + body)
    if prefix == "0b":
        return base64.b64decode(body)
    raise ValueError(f"not a binary value: {value[:20]!r}")


def encode_binary(value: bytes) -> str:
    return "0x" + value.hex()


def chap_response(algorithm: int, identifier: int, secret: bytes, challenge: bytes) -> bytes:
    """H(identifier || secret || challenge) (RFC 1994 4.1)."""
    return ALGORITHMS[algorithm](bytes([identifier & 0xFF]) + secret + challenge)


def new_challenge(algorithm: int) -> tuple[int, bytes]:
    """A fresh (identifier, challenge) for mutual CHAP."""
    size = max(16, len(ALGORITHMS[algorithm](b"")))
    return secrets.randbelow(256), secrets.token_bytes(size)
