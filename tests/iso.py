"""ISO 9660 images for tests: :func:`iso_image`, a minimal one built here (system area,
a primary volume descriptor, a terminator, then data blocks; ECMA-119 8.4), enough for
"CD001" at 16*2048 but not for a file system driver; and :func:`mastered_iso`, a real,
mountable one with files, written by genisoimage."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

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


def mastered_iso(out: Path, volume_id: str, files: dict[str, bytes]) -> Path:
    """An ISO 9660 image at ``out`` holding ``files`` (relative path -> content), with
    Rock Ridge and Joliet names, mastered by genisoimage (Debian's package of that name)."""
    tool = shutil.which("genisoimage")
    if tool is None:
        raise RuntimeError("genisoimage is not installed (apt-get install genisoimage)")
    tree = out.with_name(out.name + ".d")
    for rel, data in files.items():
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    subprocess.run([tool, "-quiet", "-R", "-J", "-V", volume_id, "-o", str(out), str(tree)],
                   check=True, capture_output=True, timeout=60)
    return out
