"""The guest builder's pure parts: the cpio writer, ELF reading, merged-/usr paths."""

from __future__ import annotations

import gzip
from pathlib import Path

from tests.guest.conftest import linux_guest


def _entries(archive: bytes) -> list[tuple[str, int, bytes]]:
    """(name, mode, data) of each member of a newc archive, checking its alignment."""
    raw, pos = gzip.decompress(archive), 0
    out: list[tuple[str, int, bytes]] = []
    while True:
        assert raw[pos:pos + 6] == b"070701" and pos % 4 == 0
        fields = [int(raw[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name = raw[pos + 110:pos + 110 + namesize - 1].decode()
        start = pos + 110 + namesize + (-(110 + namesize) % 4)
        if name == "TRAILER!!!":
            return out
        out.append((name, mode, raw[start:start + size]))
        pos = start + size + (-size % 4)


def test_cpio_members_are_aligned_and_typed() -> None:
    cpio = linux_guest.Cpio()
    cpio.dir("etc")
    cpio.file("etc/a", b"12345", 0o600)
    cpio.symlink("bin", "usr/bin")
    assert [(n, m >> 12, d) for n, m, d in _entries(cpio.gzipped())] == [
        ("etc", 0o04, b""), ("etc/a", 0o10, b"12345"), ("bin", 0o12, b"usr/bin")]


def test_script_cpio_puts_files_under_guest() -> None:
    names = [n for n, _, _ in _entries(linux_guest.script_cpio({"test.sh": b"true\n"}))]
    assert names == ["guest", "guest/test.sh"]


def test_needed_reads_a_programs_libraries() -> None:
    assert "libc.so.6" in linux_guest.needed(Path("/bin/ls").resolve())
    assert linux_guest.needed(Path(__file__)) == []


def test_package_paths_map_to_merged_usr() -> None:
    assert linux_guest._merged("sbin/iscsid") == "usr/sbin/iscsid"
    assert linux_guest._merged("lib/x86_64-linux-gnu/libc.so.6") == \
        "usr/lib/x86_64-linux-gnu/libc.so.6"
    assert linux_guest._merged("etc/iscsi/iscsid.conf") == "etc/iscsi/iscsid.conf"


def test_script_cpio_makes_the_directories_of_nested_names() -> None:
    names = [n for n, _, _ in _entries(linux_guest.script_cpio(
        {"test.sh": b"", "pytgt/scsi/lu.py": b"x", "pytgt/__init__.py": b""}))]
    assert names == ["guest", "guest/pytgt", "guest/pytgt/scsi", "guest/pytgt/__init__.py",
                     "guest/pytgt/scsi/lu.py", "guest/test.sh"]


def test_the_python_variant_has_its_own_cache_key() -> None:
    packages = {"busybox-static": "1"}
    plain, python = linux_guest.cache_key(packages), linux_guest.cache_key(packages, True)
    assert python.startswith("py-") and not plain.startswith("py-")
    assert python.removeprefix("py-") != plain
