"""The "changer" device type (SMC-3) at the SCSI layer: byte-level CDBs through a ScsiTarget.

LUN 1 is a tape drive, LUN 2 the changer: transport 1, slots 1000-1004, import/export
10-11, drives 500 (bound to LUN 1) and 501 (unbound). Cartridges are MemoryStores a
fake MediaHandler hands out by path, as the daemon opens files.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytgt.scsi import ItNexus, ScsiTarget, create_lu
from pytgt.scsi.lu import LogicalUnit
from pytgt.scsi.smc import MediumChanger, MediumLoadError
from pytgt.scsi.ssc import TapeUnit
from pytgt.scsi.tape_media import Label, format_header
from pytgt.stores.memory import MemoryStore

from .conftest import Harness

NOT_READY, MEDIUM_ERROR, ILLEGAL, UNIT_ATTENTION = 0x02, 0x03, 0x05, 0x06
TAPE, CHANGER = 1 << 48, 2 << 48
TUR = [0] * 6
HOME = "/vtl"


def _tape(barcode: str, size: int = 2 << 20) -> MemoryStore:
    store = MemoryStore(size)
    head = format_header(Label(barcode))
    store._buf[:len(head)] = head
    return store


class FakeHandler:
    """The daemon's part: cartridge files are MemoryStores kept by path."""

    def __init__(self, target: ScsiTarget) -> None:
        self.target = target
        self.files = {f"{HOME}/{b}": _tape(b) for b in ("A0000001", "A0000002", "A0000003")}
        self.closed: list[str] = []

    def drive(self, tid: int, lun: int) -> LogicalUnit | None:
        return self.target.luns.get(lun) if tid == 1 else None

    async def load(self, drive: LogicalUnit, path: str) -> None:
        store = self.files.get(path)
        if store is None:
            raise MediumLoadError(f"{path}: no such file")
        assert isinstance(drive, TapeUnit)
        old = drive.change_medium(store, path)
        if old is not None:
            self.closed.append(str(drive.path))

    async def unload(self, drive: LogicalUnit) -> None:
        assert isinstance(drive, TapeUnit)
        drive.change_medium(None, "")


@pytest.fixture
def h() -> Iterator[Harness]:
    loop = asyncio.new_event_loop()
    target = ScsiTarget("iqn.2024-01.test:vtl", tid=1)
    tape = create_lu("tape", 1, _tape(""), tid=1, path=f"{HOME}/notape", bstype="memory")
    target.add_lu(tape)
    changer = create_lu("changer", 2, MemoryStore(1024), tid=1, path=f"{HOME}/smc",
                        bstype="memory")
    assert isinstance(changer, MediumChanger)
    changer.handler = FakeHandler(target)
    target.add_lu(changer)
    for params in ({"element_type": "1", "start_address": "1", "quantity": "1",
                    "media_home": HOME},
                   {"element_type": "2", "start_address": "1000", "quantity": "5"},
                   {"element_type": "3", "start_address": "10", "quantity": "2"},
                   {"element_type": "4", "start_address": "500", "quantity": "2"},
                   {"element_type": "4", "address": "500", "tid": "1", "lun": "1"},
                   {"element_type": "2", "address": "1000", "barcode": "A0000001",
                    "sides": "1"},
                   {"element_type": "2", "address": "1001", "barcode": "A0000002",
                    "volume_tag": "second tape"},
                   {"element_type": "3", "address": "10", "barcode": "A0000004"}):
        loop.run_until_complete(changer.configure(params))
    harness = Harness(target, changer, MemoryStore(1), ItNexus("n1", "iqn.2024-01.test:n1"),
                      loop)
    harness.nexus = harness.new_nexus("n1")
    yield harness
    loop.close()


def _changer(h: Harness) -> MediumChanger:
    assert isinstance(h.lu, MediumChanger)
    return h.lu


def res(b1: int = 0, start: int = 0, count: int = 0xFFFF, b6: int = 0,
        alloc: int = 0xFFFF) -> list[int]:
    return [0xB8, b1, *start.to_bytes(2, "big"), *count.to_bytes(2, "big"), b6,
            *alloc.to_bytes(3, "big"), 0, 0]


def move(src: int, dst: int, transport: int = 0, invert: int = 0) -> list[int]:
    return [0xA5, 0, *transport.to_bytes(2, "big"), *src.to_bytes(2, "big"),
            *dst.to_bytes(2, "big"), 0, 0, invert, 0]


def parse(data: bytes) -> list[tuple[int, int, list[bytes]]]:
    """READ ELEMENT STATUS data -> [(type, flags, [descriptors])], checking the counts."""
    total = int.from_bytes(data[5:8], "big")
    assert total == len(data) - 8
    pages, pos = [], 8
    while pos < len(data):
        etype, flags, dlen = data[pos], data[pos + 1], struct.unpack_from(">H", data, pos + 2)[0]
        blen = int.from_bytes(data[pos + 5:pos + 8], "big")
        body = data[pos + 8:pos + 8 + blen]
        assert blen % dlen == 0
        pages.append((etype, flags, [body[i:i + dlen] for i in range(0, blen, dlen)]))
        pos += 8 + blen
    assert sum(len(p[2]) for p in pages) == struct.unpack_from(">H", data, 2)[0]
    return pages


def test_inquiry_is_a_removable_medium_changer(h: Harness) -> None:
    r = h.run([0x12, 0, 0, 0, 96, 0], lun=CHANGER)
    assert r.data[0] == 0x08 and r.data[1] & 0x80
    assert r.data[16:32].rstrip() == b"VIRTUAL-CHANGER"
    assert struct.unpack_from(">H", r.data, 64)[0] == 0x0480  # SMC-3


def test_read_element_status_all_elements(h: Harness) -> None:
    r = h.run(res(), lun=CHANGER)
    assert r.status == 0
    assert struct.unpack_from(">HH", r.data) == (1, 1 + 5 + 2 + 2)
    pages = parse(r.data)
    assert [(p[0], len(p[2])) for p in pages] == [(1, 1), (2, 5), (3, 2), (4, 2)]
    for _, flags, descs in pages:
        assert flags == 0 and all(len(d) == 16 for d in descs)
    slots = pages[1][2]
    assert [struct.unpack_from(">H", d)[0] for d in slots] == [1000, 1001, 1002, 1003, 1004]
    assert [d[2] for d in slots] == [0x09, 0x09, 0x08, 0x08, 0x08]  # ACCESS, FULL
    ie = pages[2][2]
    assert ie[0][2] == 0x3B and ie[1][2] == 0x38  # INENAB EXENAB ACCESS IMPEXP FULL
    assert pages[3][2][0][2] == 0x08 and pages[0][2][0][2] == 0  # empty drive, transport


def test_read_element_status_volume_tags(h: Harness) -> None:
    r = h.run(res(b1=0x12), lun=CHANGER)  # VOLTAG, storage elements
    (etype, flags, descs), = parse(r.data)
    assert etype == 2 and flags == 0x80 and len(descs[0]) == 52
    assert descs[0][12:48] == b"A0000001".ljust(32) + bytes(4)
    assert descs[1][12:44] == b"second tape".ljust(32)  # volume_tag over the barcode
    assert descs[2][12:44] == b" " * 32


def test_read_element_status_start_count_and_truncation(h: Harness) -> None:
    r = h.run(res(b1=2, start=1002, count=2), lun=CHANGER)
    (_, _, descs), = parse(r.data)
    assert [struct.unpack_from(">H", d)[0] for d in descs] == [1002, 1003]
    assert struct.unpack_from(">H", r.data)[0] == 1002
    full = h.run(res(), lun=CHANGER).data
    short = h.run(res(alloc=20), lun=CHANGER)
    assert short.status == 0 and short.data == full[:20]
    empty = h.run(res(b1=1, start=2), lun=CHANGER)  # nothing at or past 2 of type 1
    assert empty.data == bytes(8)


def test_read_element_status_dvcid_names_the_drive(h: Harness) -> None:
    r = h.run(res(b1=4, b6=1), lun=CHANGER)
    (_, _, descs), = parse(r.data)
    ident = b"IET     " + b"IET     00010001"
    assert descs[0][12:16] == bytes((2, 1, 0, len(ident))) and descs[0][16:] == ident
    assert descs[1][16:] == b" " * len(ident)  # unbound: no identifier, padded


def test_read_element_status_bad_type(h: Harness) -> None:
    assert h.sense(res(b1=5), lun=CHANGER) == (ILLEGAL, 0x24, 0)


def test_move_medium_errors(h: Harness) -> None:
    assert h.sense(move(1002, 1003), lun=CHANGER) == (ILLEGAL, 0x3B, 0x0E)  # source empty
    assert h.sense(move(1000, 1001), lun=CHANGER) == (ILLEGAL, 0x3B, 0x0D)  # destination full
    assert h.sense(move(2000, 1003), lun=CHANGER) == (ILLEGAL, 0x21, 0x01)
    assert h.sense(move(1000, 2000), lun=CHANGER) == (ILLEGAL, 0x21, 0x01)
    assert h.sense(move(1000, 1003, transport=1000), lun=CHANGER) == (ILLEGAL, 0x21, 0x01)
    assert h.sense(move(1000, 1003, invert=1), lun=CHANGER) == (ILLEGAL, 0x24, 0)


def test_move_medium_between_slots_sets_the_source(h: Harness) -> None:
    assert h.run(move(1000, 1004, transport=1), lun=CHANGER).status == 0
    (_, _, descs), = parse(h.run(res(b1=0x12), lun=CHANGER).data)
    assert descs[0][2] == 0x08 and descs[4][2] == 0x09
    assert descs[4][9] & 0x80 and struct.unpack_from(">H", descs[4], 10)[0] == 1000
    assert descs[4][12:20] == b"A0000001"


def test_move_into_a_drive_loads_the_tape_lu(h: Harness) -> None:
    tape = h.target.luns[1]
    assert isinstance(tape, TapeUnit)
    assert h.run(move(1000, 500), lun=CHANGER).status == 0
    assert tape.path == f"{HOME}/A0000001"
    assert h.sense(TUR, lun=TAPE) == (UNIT_ATTENTION, 0x28, 0)  # NOT READY TO READY CHANGE
    assert h.run(TUR, lun=TAPE).status == 0
    write = [0x0A, 0, 0, 0, 4, 0]
    assert h.run(write, b"data", lun=TAPE).status == 0
    assert h.run([0x01, 0, 0, 0, 0, 0], lun=TAPE).status == 0  # REWIND
    assert h.run([0x08, 0, 0, 0, 4, 0], lun=TAPE).data == b"data"
    (_, _, descs), = parse(h.run(res(b1=0x14), lun=CHANGER).data)
    assert descs[0][2] == 0x09 and struct.unpack_from(">H", descs[0], 10)[0] == 1000
    assert descs[0][12:20] == b"A0000001"
    # prevented by the drive's user: the cartridge stays
    assert h.run([0x1E, 0, 0, 0, 1, 0], lun=TAPE).status == 0
    assert h.sense(move(500, 1000), lun=CHANGER) == (ILLEGAL, 0x53, 0x02)
    (_, _, descs), = parse(h.run(res(b1=4), lun=CHANGER).data)
    assert descs[0][2] == 0x01  # FULL, no ACCESS
    assert h.run([0x1E, 0, 0, 0, 0, 0], lun=TAPE).status == 0
    assert h.run(move(500, 1000), lun=CHANGER).status == 0
    assert h.sense(TUR, lun=TAPE) == (NOT_READY, 0x3A, 0)
    assert h.sense([0x1B, 0, 0, 0, 1, 0], lun=TAPE) == (NOT_READY, 0x3A, 0)  # LOAD
    stored = _changer(h).handler.files[f"{HOME}/A0000001"]  # type: ignore[union-attr]
    assert b"data" in bytes(stored._buf[:2048])


def test_move_of_a_missing_cartridge_file_fails_and_leaves_it(h: Harness) -> None:
    handler = _changer(h).handler
    assert isinstance(handler, FakeHandler)
    del handler.files[f"{HOME}/A0000002"]
    assert h.sense(move(1001, 500), lun=CHANGER) == (MEDIUM_ERROR, 0x30, 0)
    (_, _, descs), = parse(h.run(res(b1=2), lun=CHANGER).data)
    assert descs[1][2] == 0x09


def test_move_into_an_unbound_drive_keeps_the_cartridge(h: Harness) -> None:
    assert h.run(move(1000, 501), lun=CHANGER).status == 0
    assert h.run(move(501, 1000), lun=CHANGER).status == 0


def test_prevent_stops_import_export(h: Harness) -> None:
    assert h.run([0x1E, 0, 0, 0, 1, 0], lun=CHANGER).status == 0
    assert h.sense(move(10, 1002), lun=CHANGER) == (ILLEGAL, 0x53, 0x02)
    assert h.sense(move(1000, 11), lun=CHANGER) == (ILLEGAL, 0x53, 0x02)
    assert h.run(move(1000, 1002), lun=CHANGER).status == 0
    assert h.sense([0x1E, 0, 0, 0, 2, 0], lun=CHANGER) == (ILLEGAL, 0x24, 0)
    assert h.run([0x1E, 0, 0, 0, 0, 0], lun=CHANGER).status == 0
    assert h.run(move(10, 1003), lun=CHANGER).status == 0


def test_position_to_element_and_initialize(h: Harness) -> None:
    assert h.run([0x2B, 0, 0, 1, 0x03, 0xE8, 0, 0, 0, 0], lun=CHANGER).status == 0
    assert h.sense([0x2B, 0, 0, 1, 0x07, 0xD0, 0, 0, 0, 0], lun=CHANGER) == (ILLEGAL, 0x21, 1)
    assert h.sense([0x2B, 0, 0, 1, 0x03, 0xE8, 0, 0, 1, 0], lun=CHANGER) == (ILLEGAL, 0x24, 0)
    assert h.run([0x07, 0, 0, 0, 0, 0], lun=CHANGER).status == 0
    assert h.run([0x37, 1, 0x03, 0xE8, 0, 0, 0, 2, 0, 0], lun=CHANGER).status == 0
    assert h.sense([0x37, 1, 0x07, 0xD0, 0, 0, 0, 2, 0, 0], lun=CHANGER) == (ILLEGAL, 0x21, 1)
    assert h.run([0x37, 0, 0x07, 0xD0, 0, 0, 0, 2, 0, 0], lun=CHANGER).status == 0


def test_mode_sense_pages(h: Harness) -> None:
    r = h.run([0x1A, 0x08, 0x1D, 0, 255, 0], lun=CHANGER)
    page = r.data[4:]
    assert r.data[3] == 0 and page[:2] == bytes((0x1D, 0x12))
    assert struct.unpack(">8H", page[2:18]) == (1, 1, 1000, 5, 10, 2, 500, 2)
    r = h.run([0x1A, 0, 0x1E, 0, 255, 0], lun=CHANGER)
    assert r.data[4:] == bytes((0x1E, 2, 0, 0))
    r = h.run([0x5A, 0, 0x1F, 0, 0, 0, 0, 0, 255, 0], lun=CHANGER)
    assert r.data[8:14] == bytes((0x1F, 0x12, 0x0F, 0, 0x0F, 0x0F))
    assert r.data[20:24] == bytes((0x0F,) * 4)  # exchanges
    r = h.run([0x1A, 0, 0x3F, 0, 255, 0], lun=CHANGER)
    assert [p for p in (0x0A, 0x1D, 0x1E, 0x1F) if bytes((p,)) in r.data[4:]]
    assert r.data[0] == len(r.data) - 1 == 3 + 12 + 20 + 4 + 20
    assert h.sense([0x1A, 0, 0x08, 0, 255, 0], lun=CHANGER) == (ILLEGAL, 0x24, 0)


def test_configuration_errors() -> None:
    lu = create_lu("changer", 2, None, tid=1)
    assert isinstance(lu, MediumChanger)
    run = asyncio.new_event_loop().run_until_complete
    run(lu.configure({"element_type": "2", "start_address": "1", "quantity": "3"}))
    for bad in ({"element_type": "5", "start_address": "1", "quantity": "1"},
                {"element_type": "3", "start_address": "3", "quantity": "2"},  # overlaps
                {"element_type": "2", "start_address": "65535", "quantity": "2"},
                {"element_type": "2", "address": "9", "barcode": "X"},
                {"element_type": "1", "address": "1", "barcode": "X"},
                {"element_type": "2", "address": "1", "barcode": "../etc"},
                {"element_type": "2", "address": "1", "barcode": "X" * 33},
                {"element_type": "2", "address": "1", "tid": "1", "lun": "1"},
                {"element_type": "2", "address": "1"},
                {"barcode": "X"},
                {"media_home": "relative"}):
        with pytest.raises(ValueError):
            run(lu.configure(bad))
    run(lu.configure({"element_type": "2", "address": "1", "barcode": "X"}))
    with pytest.raises(ValueError, match="already"):
        run(lu.configure({"element_type": "2", "address": "2", "barcode": "X"}))
    run(lu.configure({"element_type": "2", "address": "1", "clear_slot": "1"}))
    assert lu.elements[1].medium is None
    assert lu.state() == [{"element_type": "2", "start_address": "1", "quantity": "3"}]


def exchange(src: int, first: int, second: int, inv: int = 0) -> list[int]:
    return [0xA6, 0, 0, 0, *src.to_bytes(2, "big"), *first.to_bytes(2, "big"),
            *second.to_bytes(2, "big"), inv, 0]


def _tags(h: Harness) -> dict[int, bytes]:
    out = {}
    for _, _, descs in parse(h.run(res(b1=0x10), lun=CHANGER).data):
        for d in descs:
            out[struct.unpack_from(">H", d)[0]] = d[12:44].rstrip()
    return out


def test_exchange_medium_swaps_and_rotates(h: Harness) -> None:
    assert h.run(exchange(1000, 1001, 1000), lun=CHANGER).status == 0  # swap
    tags = _tags(h)
    assert (tags[1000], tags[1001]) == (b"second tape", b"A0000001")
    assert h.run(exchange(1001, 1000, 1002), lun=CHANGER).status == 0  # a rotation
    tags = _tags(h)
    assert (tags[1000], tags[1001], tags[1002]) == (b"A0000001", b"", b"second tape")
    # into a drive: the tape LU gets the cartridge; out of it: it is unloaded
    tape = h.target.luns[1]
    assert h.run(move(1000, 500), lun=CHANGER).status == 0
    assert h.run(exchange(1002, 500, 1000), lun=CHANGER).status == 0
    assert tape.path == f"{HOME}/A0000002" and _tags(h)[1000] == b"A0000001"


def test_exchange_medium_errors(h: Harness) -> None:
    assert h.sense(exchange(1002, 1000, 1002), lun=CHANGER) == (ILLEGAL, 0x3B, 0x0E)
    assert h.sense(exchange(1000, 1002, 1000), lun=CHANGER) == (ILLEGAL, 0x3B, 0x0E)
    assert h.sense(exchange(1000, 1001, 10), lun=CHANGER) == (ILLEGAL, 0x3B, 0x0D)
    assert h.sense(exchange(1000, 1000, 1001), lun=CHANGER) == (ILLEGAL, 0x24, 0)
    assert h.sense(exchange(1000, 1001, 1001), lun=CHANGER) == (ILLEGAL, 0x24, 0)
    assert h.sense(exchange(1000, 1001, 1000, inv=2), lun=CHANGER) == (ILLEGAL, 0x24, 0)
    assert h.sense(exchange(1000, 9999, 1000), lun=CHANGER) == (ILLEGAL, 0x21, 1)
    handler = _changer(h).handler
    assert isinstance(handler, FakeHandler)
    del handler.files[f"{HOME}/A0000002"]
    assert h.run(move(1000, 500), lun=CHANGER).status == 0
    assert h.sense(exchange(1001, 500, 1001), lun=CHANGER) == (MEDIUM_ERROR, 0x30, 0)
    tape = h.target.luns[1]
    assert tape.path == f"{HOME}/A0000001" and tape.loaded  # put back
    assert _tags(h)[1001] == b"second tape"


def test_operator_changes_are_unit_attentions(h: Harness) -> None:
    changer = _changer(h)
    h.loop.run_until_complete(changer.configure(
        {"element_type": "2", "address": "1003", "barcode": "A0000009"}))
    assert h.sense(TUR, lun=CHANGER) == (UNIT_ATTENTION, 0x28, 0)
    h.loop.run_until_complete(changer.configure(
        {"element_type": "3", "address": "10", "clear_slot": "1"}))
    assert h.sense(TUR, lun=CHANGER) == (UNIT_ATTENTION, 0x28, 1)  # IMPORT OR EXPORT ...
    assert h.run(TUR, lun=CHANGER).status == 0


def test_a_missing_cartridge_put_in_a_drive_is_refused(h: Harness) -> None:
    changer = _changer(h)
    with pytest.raises(ValueError, match="NOPE"):
        h.loop.run_until_complete(changer.configure(
            {"element_type": "4", "address": "500", "barcode": "NOPE"}))
    assert changer.elements[500].medium is None
    h.loop.run_until_complete(changer.configure(
        {"element_type": "4", "address": "500", "barcode": "A0000003"}))
    assert h.target.luns[1].path == f"{HOME}/A0000003"


_CHANGER_OPCODES = [0x00, 0x03, 0x07, 0x12, 0x1A, 0x1E, 0x2B, 0x37, 0x5A, 0xA5, 0xA6, 0xB8]


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(op=st.sampled_from(_CHANGER_OPCODES), rest=st.binary(min_size=11, max_size=11),
       addresses=st.lists(st.sampled_from([0, 1, 10, 11, 500, 501, 1000, 1001, 1004, 7]),
                          min_size=4, max_size=4))
def test_any_changer_cdb_gets_an_answer(h: Harness, op: int, rest: bytes,
                                        addresses: list[int]) -> None:
    """Random CDBs (with addresses that exist more often than not) never break the
    changer: an answer with sense on CHECK CONDITION, and a consistent inventory."""
    cdb = bytearray(bytes((op,)) + rest)
    for i, addr in enumerate(addresses):  # the element address fields of A5h/A6h/2Bh/B8h
        struct.pack_into(">H", cdb, 2 + 2 * i, addr)
    r = h.run(bytes(cdb), lun=CHANGER)
    assert r.status in (0, 2)
    assert bool(r.sense) == (r.status == 2)
    barcodes = [e.medium.barcode for e in _changer(h).elements.values() if e.medium]
    assert sorted(barcodes) == ["A0000001", "A0000002", "A0000004"]
    tape = h.target.luns[1]
    drive = _changer(h).elements[500].medium
    assert tape.path == (f"{HOME}/{drive.barcode}" if drive else
                         tape.path if tape.path.endswith("notape") else "")
