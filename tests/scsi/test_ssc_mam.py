"""The tape's medium auxiliary memory (READ/WRITE ATTRIBUTE, SPC-4 6.17/6.36), log pages
(LOG SENSE/SELECT) and REPORT DENSITY SUPPORT (scsi/ssc_mam.py, ssc_log.py), byte by byte."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator

import pytest

from pytgt.scsi.sense import decode_sense
from pytgt.scsi.tape_media import (
    MAM_OFFSET,
    TGT_DATA,
    Label,
    MediaType,
    TgtType,
    format_header,
    parse_mam,
    tgt_header,
    tgt_image_head,
)
from pytgt.scsi.task import Status
from pytgt.stores.memory import MemoryStore
from tests.scsi.conftest import Harness
from tests.scsi.test_ssc import DATA_PROTECT, ILLEGAL, NOT_READY, make_tape, pointer, write

SIZE = 4 << 20
CREATED = 1796603189  # Mon Dec  7 00:26:29 2026


def tape(media_type: MediaType = MediaType.DATA, barcode: str = "L0001") -> Iterator[Harness]:
    loop = asyncio.new_event_loop()
    store = MemoryStore(SIZE)
    store._buf[:528] = format_header(Label(barcode, media_type, CREATED))
    yield make_tape(loop, store)
    loop.close()


@pytest.fixture
def t() -> Iterator[Harness]:
    yield from tape()


def read_attr(sa: int = 0, first: int = 0, alloc: int = 0x10000, volume: int = 0,
              partition: int = 0) -> list[int]:
    return [0x8C, sa, 0, 0, 0, volume, 0, partition, *first.to_bytes(2, "big"),
            *alloc.to_bytes(4, "big"), 0, 0]


def write_attr(length: int, wtc: int = 0) -> list[int]:
    return [0x8D, wtc, 0, 0, 0, 0, 0, 0, 0, 0, *length.to_bytes(4, "big"), 0, 0]


def attrs(data: bytes) -> dict[int, tuple[int, bytes]]:
    """ATTRIBUTE VALUES data -> {identifier: (READ ONLY|FORMAT byte, value)}."""
    avail = struct.unpack_from(">I", data)[0]
    assert avail == len(data) - 4
    out, off = {}, 4
    while off < len(data):
        ident, flags, n = struct.unpack_from(">HBH", data, off)
        out[ident] = (flags, data[off + 5:off + 5 + n])
        off += 5 + n
    assert list(out) == sorted(out)
    return out


def attr(ident: int, fmt: int, value: bytes) -> bytes:
    return struct.pack(">HBH", ident, fmt, len(value)) + value


def plist(*items: bytes) -> bytes:
    body = b"".join(items)
    return struct.pack(">I", len(body)) + body


def test_attribute_values_of_a_labelled_tape(t: Harness) -> None:
    r = t.run(read_attr())
    assert r.status == Status.GOOD
    got = attrs(bytes(r.data))
    assert got[0x0001] == (0x80, (SIZE >> 20).to_bytes(8, "big"))  # MAXIMUM CAPACITY, MiB
    assert got[0x0000] == (0x80, ((SIZE - 528) >> 20).to_bytes(8, "big"))
    assert got[0x0003] == (0x80, (1).to_bytes(8, "big"))  # LOAD COUNT: this load
    assert got[0x0400] == (0x81, b"PYTGT   ")  # read only, ASCII
    assert got[0x0401] == (0x81, f"L0001_{CREATED}".ljust(32).encode())
    assert got[0x0405] == (0x80, b"\x58") and got[0x0006] == (0x80, b"\x58")
    assert got[0x0406] == (0x81, b"20261207")
    assert got[0x0408] == (0x80, b"\x00")  # data medium
    assert got[0x0806] == (0x01, b"L0001".ljust(32))  # BARCODE, host-writable
    assert 0x0800 not in got  # nonexistent until written
    # the first attribute identifier, and an allocation length that cuts
    assert list(attrs(bytes(t.run(read_attr(first=0x0401)).data))) == \
        [0x0401, 0x0405, 0x0406, 0x0408, 0x0806]
    r = t.run(read_attr(alloc=10))
    assert len(r.data) == 10 and struct.unpack_from(">I", r.data)[0] > 10


def test_attribute_list_supported_volumes_partitions(t: Harness) -> None:
    listed = bytes(t.run(read_attr(1)).data)
    idents = [i for (i,) in struct.iter_unpack(">H", listed[4:])]
    assert struct.unpack_from(">I", listed)[0] == 2 * len(idents)
    assert idents == list(attrs(bytes(t.run(read_attr()).data)))
    supported = bytes(t.run(read_attr(5)).data)
    ids = [i for (i,) in struct.iter_unpack(">H", supported[4:])]
    assert ids[:3] == [0, 1, 3] and ids[-1] == 0x080B and 0x0803 in ids
    assert bytes(t.run(read_attr(2, volume=3)).data) == bytes((0, 2, 0, 1))  # volume 0, one
    assert bytes(t.run(read_attr(3, partition=3)).data) == bytes((0, 2, 0, 1))  # partition 0
    # the list services ignore FIRST ATTRIBUTE IDENTIFIER (SPC-4 6.17.3, 6.17.6)
    assert bytes(t.run(read_attr(1, first=0x0800)).data) == listed
    assert bytes(t.run(read_attr(5, first=0x0800)).data) == supported


def test_read_attribute_bad_fields(t: Harness) -> None:
    for cdb, where in ((read_attr(4), (True, 1)), (read_attr(0x20), (True, 1)),
                       (read_attr(volume=1), (True, 5)), (read_attr(partition=1), (True, 7)),
                       (read_attr(3, volume=1), (True, 5)), (read_attr(1, partition=1), (True, 7)),
                       (read_attr(first=0x0800), (True, 8)),  # nonexistent (SPC-4 6.17.1)
                       (read_attr(first=0x0002), (True, 8))):  # unsupported
        r = t.run(cdb)
        assert decode_sense(r.sense) == (ILLEGAL, 0x24, 0) and pointer(r) == where


def test_write_attribute_round_trip_and_persist(t: Harness) -> None:
    data = plist(attr(0x0800, 1, b"BACULA  "), attr(0x0801, 1, b"Bacula".ljust(32)),
                 attr(0x0803, 2, b"weekly full".ljust(160, b"\0")),
                 attr(0x0804, 1, b"202612070230"))
    assert t.run(write_attr(len(data)), data).status == Status.GOOD
    got = attrs(bytes(t.run(read_attr(first=0x0800)).data))
    assert got[0x0800] == (0x01, b"BACULA  ")
    assert got[0x0801] == (0x01, b"Bacula".ljust(32))
    assert got[0x0803] == (0x02, b"weekly full".ljust(160, b"\0"))
    assert got[0x0804] == (0x01, b"202612070230")
    kept = parse_mam(bytes(t.store._buf[MAM_OFFSET:512]))  # in the header, trimmed
    assert kept[0x0800] == b"BACULA" and kept[0x0803] == b"weekly full"
    assert kept[0x0003] == (1).to_bytes(8, "big")
    # a new load of the same cartridge: the attributes, and LOAD COUNT 2
    again = make_tape(t.loop, t.store)
    got = attrs(bytes(again.run(read_attr()).data))
    assert got[0x0801][1] == b"Bacula".ljust(32) and got[0x0003][1] == (2).to_bytes(8, "big")
    # NUL padding of an ASCII value is taken as spaces (LTFS pads with NULs)
    data = plist(attr(0x0802, 1, b"2.4\0\0\0\0\0"))
    assert again.run(write_attr(len(data)), data).status == Status.GOOD
    assert attrs(bytes(again.run(read_attr(first=0x0802)).data))[0x0802][1] == b"2.4     "
    # length 0 deletes; the barcode written by the host replaces the label's
    data = plist(attr(0x0800, 1, b""), attr(0x0806, 1, b"NEW001".ljust(32)))
    assert again.run(write_attr(len(data)), data).status == Status.GOOD
    got = attrs(bytes(again.run(read_attr()).data))
    assert 0x0800 not in got and got[0x0806][1] == b"NEW001".ljust(32)


def test_write_attribute_refusals(t: Harness) -> None:
    def refused(data: bytes, field: int) -> None:
        r = t.run(write_attr(len(data)), data)
        assert decode_sense(r.sense) == (ILLEGAL, 0x26, 0), data
        assert pointer(r) == (False, field)

    refused(plist(attr(0x0401, 1, b"x" * 32)), 4)  # read-only
    refused(plist(attr(0x0C00, 1, b"x")), 4)  # unsupported
    refused(plist(attr(0x0801, 1, b"x" * 32), attr(0x0800, 1, b"x" * 8)), 41)  # order
    refused(plist(attr(0x0800, 0, b"x" * 8)), 6)  # FORMAT: ASCII, not binary
    refused(plist(attr(0x0800, 1, b"x" * 7)), 7)  # length
    refused(plist(attr(0x0800, 1, b"x\x01" * 4)), 10)  # ASCII: printable only
    refused(struct.pack(">I", 99) + attr(0x0800, 1, b"x" * 8), 0)  # PARAMETER DATA LENGTH
    refused(plist(attr(0x0800, 1, b"x" * 8) + b"\x08\x01\x01"), 17)  # truncated header
    assert 0x0800 not in attrs(bytes(t.run(read_attr()).data))  # nothing written
    r = t.run(write_attr(3), b"\0\0\0")
    assert decode_sense(r.sense) == (ILLEGAL, 0x1A, 0)  # shorter than its header
    r = t.run(write_attr(0, wtc=2))
    assert decode_sense(r.sense) == (ILLEGAL, 0x24, 0) and pointer(r) == (True, 1)
    assert t.run(write_attr(0)).status == Status.GOOD  # nothing to write
    # MAM space: 448 bytes, values kept without their padding; these do not fit
    big = plist(attr(0x0801, 1, b"e" * 32), attr(0x0803, 2, b"a" * 160), attr(0x0807, 2, b"b" * 80),
                attr(0x0808, 2, b"c" * 160), attr(0x0809, 1, b"d" * 16))
    r = t.run(write_attr(len(big)), big)
    assert decode_sense(r.sense) == (ILLEGAL, 0x55, 0x06)  # AUXILIARY MEMORY OUT OF SPACE
    t.lu.readonly = True
    small = plist(attr(0x0800, 1, b"x" * 8))
    assert decode_sense(t.run(write_attr(len(small)), small).sense) == (DATA_PROTECT, 0x27, 0)


def test_attributes_of_cleaning_worm_blank_and_tgt_media() -> None:
    for t in tape(MediaType.CLEAN, ""):
        got = attrs(bytes(t.run(read_attr()).data))
        assert got[0x0408][1] == b"\x01" and got[0x0000][1] == bytes(8) and 0x0806 not in got
        assert t.run([0x1A, 0, 0, 0, 255, 0]).data[1] == 0  # mode header MEDIUM TYPE
    for t in tape(MediaType.WORM):
        assert attrs(bytes(t.run(read_attr()).data))[0x0408][1] == b"\x80"
        assert t.run([0x5A, 0, 0, 0, 0, 0, 0, 0, 255, 0]).data[2] == 0x5C  # LTO-5 WORM
        data = plist(attr(0x0800, 1, b"x" * 8))  # the MAM of a WORM tape is writable
        assert t.run(write_attr(len(data)), data).status == Status.GOOD
    loop = asyncio.new_event_loop()
    blank = make_tape(loop, MemoryStore(SIZE))
    got = attrs(bytes(blank.run(read_attr()).data))
    assert 0x0401 not in got and 0x0003 not in got and got[0x0408][1] == b"\x00"
    data = plist(attr(0x0801, 1, b"amanda".ljust(32)))
    assert blank.run(write_attr(len(data)), data).status == Status.GOOD  # formats it
    assert bytes(blank.store._buf[:8]) == b"PYTGTAPE"
    assert write(blank, b"data").status == Status.GOOD
    assert attrs(bytes(blank.run(read_attr()).data))[0x0801][1] == b"amanda".ljust(32)
    # tgt's image: read from its MAM; host attributes are not kept there
    head = tgt_image_head(8, Label("T0001", MediaType.DATA, CREATED))
    head += tgt_header(TgtType.EOD, 0, 1, 0, TGT_DATA, TGT_DATA)
    store = MemoryStore(len(head))
    store._buf[:] = head
    tgt = make_tape(loop, store)
    got = attrs(bytes(tgt.run(read_attr()).data))
    assert got[0x0001][1] == (8).to_bytes(8, "big") and got[0x0806][1] == b"T0001".ljust(32)
    assert got[0x0401][1] == f"T0001_{CREATED}".ljust(32).encode() and 0x0003 not in got
    r = tgt.run(write_attr(len(data)), data)
    assert decode_sense(r.sense) == (ILLEGAL, 0x55, 0x06)
    assert bytes(store._buf) == head  # tgt's MAM untouched
    loop.close()


def log_sense(page: int, pc: int = 1, subpage: int = 0, pointer_: int = 0,
              alloc: int = 0xFFFF, b1: int = 0) -> list[int]:
    return [0x4D, b1, (pc << 6) | page, subpage, 0, *pointer_.to_bytes(2, "big"),
            *alloc.to_bytes(2, "big"), 0]


def params(data: bytes) -> dict[int, bytes]:
    assert struct.unpack_from(">H", data, 2)[0] == len(data) - 4
    out, off = {}, 4
    while off < len(data):
        code, _, n = struct.unpack_from(">HBB", data, off)
        out[code] = data[off + 4:off + 4 + n]
        off += 4 + n
    return out


def test_log_pages(t: Harness) -> None:
    assert bytes(t.run(log_sense(0)).data) == bytes((0, 0, 0, 6, 0, 2, 3, 0x0C, 0x2E, 0x31))
    sub = bytes(t.run(log_sense(0, subpage=0xFF)).data)
    assert sub[:4] == bytes((0x40, 0xFF, 0, 14)) and sub[4:8] == bytes((0, 0, 0, 0xFF))
    write(t, b"x" * 1000)
    t.run([0x01, 0, 0, 0, 0, 0])
    t.run([0x08, 0, 0, 0x03, 0xE8, 0])
    seq = params(bytes(t.run(log_sense(0x0C)).data))
    assert [int.from_bytes(seq[i], "big") for i in (0, 1, 2, 3, 0x100)] == [1000] * 4 + [0]
    w = params(bytes(t.run(log_sense(0x02)).data))
    assert list(w) == list(range(7)) and int.from_bytes(w[5], "big") == 1000
    assert not any(int.from_bytes(w[i], "big") for i in (0, 1, 2, 3, 4, 6))
    assert int.from_bytes(params(bytes(t.run(log_sense(0x03)).data))[5], "big") == 1000
    ta = params(bytes(t.run(log_sense(0x2E)).data))
    assert list(ta) == list(range(1, 0x41)) and not any(v[0] for v in ta.values())
    cap = params(bytes(t.run(log_sense(0x31)).data))
    assert len(bytes(t.run(log_sense(0x31)).data)) == 36  # what tapeinfo checks
    assert int.from_bytes(cap[3], "big") == 4 and int.from_bytes(cap[1], "big") == 3
    # parameter pointer, default values, LOG SELECT PCR resets
    assert list(params(bytes(t.run(log_sense(0x02, pointer_=5)).data))) == [5, 6]
    assert not any(int.from_bytes(v, "big") for v in
                   params(bytes(t.run(log_sense(0x0C, pc=3)).data)).values())
    assert t.run([0x4C, 0x02, 0x40, 0, 0, 0, 0, 0, 0, 0]).status == Status.GOOD
    seq = params(bytes(t.run(log_sense(0x0C)).data))
    assert int.from_bytes(seq[0], "big") == 0
    for cdb, where in ((log_sense(0x0C, b1=1), (True, 1)), (log_sense(0x0C, b1=2), (True, 1)),
                       (log_sense(0x0D), (True, 2)), (log_sense(0x0C, subpage=1), (True, 3)),
                       (log_sense(0x0C, pointer_=0x101), (True, 5)),
                       ([0x4C, 0x01, 0x40, 0, 0, 0, 0, 0, 0, 0], (True, 1)),
                       ([0x4C, 0x02, 0x40, 0, 0, 0, 0, 0, 4, 0], (True, 7))):
        r = t.run(cdb, bytes(4))
        assert decode_sense(r.sense) == (ILLEGAL, 0x24, 0) and pointer(r) == where, cdb
    r = t.run([0x4C, 0, 0x4C, 0, 0, 0, 0, 0, 8, 0], bytes((0x0C, 0, 0, 4, 0, 0, 0, 0)))
    assert decode_sense(r.sense) == (ILLEGAL, 0x26, 0)  # nothing is changeable


def test_tape_alert_of_a_cleaning_cartridge() -> None:
    for t in tape(MediaType.CLEAN, ""):
        ta = params(bytes(t.run(log_sense(0x2E)).data))
        assert [n for n, v in ta.items() if v[0]] == [0x0B]  # CLEANING MEDIA


def test_report_density_support(t: Harness) -> None:
    r = t.run([0x44, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0])
    d = bytes(r.data)
    assert d[:4] == bytes((0, 54, 0, 0)) and len(d) == 56
    assert d[4:7] == bytes((0x58, 0x58, 0xA0))  # WRTOK, DEFLT
    assert d[9:12] == (15142).to_bytes(3, "big") and d[12:14] == (127).to_bytes(2, "big")
    assert struct.unpack_from(">I", d, 16)[0] == 1_500_000
    assert d[20:28] == b"LTO-CVE " and d[28:36] == b"U-516   "
    d = bytes(t.run([0x44, 1, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0]).data)  # MEDIA: this tape
    assert struct.unpack_from(">I", d, 16)[0] == SIZE // 1_000_000
    d = bytes(t.run([0x44, 2, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0]).data)  # MEDIUM TYPE
    assert d[:4] == bytes((0, 58, 0, 0)) and d[4:9] == bytes((0, 0, 0, 52, 1)) and d[9] == 0x58
    r = t.run([0x44, 4, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0])
    assert decode_sense(r.sense) == (ILLEGAL, 0x24, 0) and pointer(r) == (True, 1)
    assert len(t.run([0x44, 0, 0, 0, 0, 0, 0, 0, 8, 0]).data) == 8


def test_no_medium(t: Harness) -> None:
    t.lu.change_medium(None, "")  # type: ignore[attr-defined]
    for cdb in (read_attr(), [0x44, 1, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0]):
        r = t.run(cdb)
        while decode_sense(r.sense)[0] == 0x6:
            r = t.run(cdb)
        assert decode_sense(r.sense) == (NOT_READY, 0x3A, 0)
    assert t.run(log_sense(0x2E)).status == Status.GOOD


def test_read_only_lu_leaves_the_cartridge_untouched() -> None:
    """readonly=1: no LOAD COUNT written (the file is never written), attributes read."""
    for t in tape():
        t.lu.readonly = True
        before = bytes(t.store._buf[:1024])
        got = attrs(bytes(t.run(read_attr()).data))
        assert 0x0003 not in got and got[0x0806][1] == b"L0001".ljust(32)
        assert bytes(t.store._buf[:1024]) == before


def test_report_density_of_a_tgt_image_and_a_cleaning_cartridge() -> None:
    """MEDIA=1 reads the medium first: a tgt image's capacity is in its header."""
    loop = asyncio.new_event_loop()
    head = tgt_image_head(8, Label("T0001", MediaType.DATA, CREATED))
    head += tgt_header(TgtType.EOD, 0, 1, 0, TGT_DATA, TGT_DATA)
    store = MemoryStore(len(head))
    store._buf[:] = head
    t = make_tape(loop, store)
    d = bytes(t.run([0x44, 1, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0]).data)
    assert struct.unpack_from(">I", d, 16)[0] == (8 << 20) // 1_000_000 and d[6] & 0x80
    loop.close()
    for c in tape(MediaType.CLEAN, ""):
        d = bytes(c.run([0x44, 1, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0]).data)
        assert d[6] == 0x20  # DEFLT, not WRTOK: no data on a cleaning cartridge
