"""A minimal ISO9660 image for tests: system area, a primary volume descriptor, a
terminator, then data blocks (ECMA-119 8.4); enough for "CD001" at 16*2048."""

from __future__ import annotations

BLOCK = 2048


def iso_image(volume_id: str, blocks: int = 64, fill: bytes = b"") -> bytes:
    """``blocks`` 2048-byte sectors; ``fill`` written from sector 18 on."""
    pvd = bytearray(BLOCK)
    pvd[0:7] = b"\x01CD001\x01"
    pvd[40:72] = volume_id.encode("ascii").ljust(32)[:32]
    pvd[80:88] = blocks.to_bytes(4, "little") + blocks.to_bytes(4, "big")
    pvd[128:132] = BLOCK.to_bytes(2, "little") + BLOCK.to_bytes(2, "big")
    term = bytearray(BLOCK)
    term[0:7] = b"\xffCD001\x01"
    image = bytearray(blocks * BLOCK)
    image[16 * BLOCK:17 * BLOCK] = pvd
    image[17 * BLOCK:18 * BLOCK] = term
    image[18 * BLOCK:18 * BLOCK + len(fill)] = fill
    return bytes(image)
