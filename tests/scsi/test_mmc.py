"""The "cd" device type (MMC-6) at the SCSI layer: byte-level CDBs through a ScsiTarget."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator

import pytest

from pytgt.scsi import ItNexus, ScsiTarget, Status, create_lu, mmc
from pytgt.scsi.mmc import CdLogicalUnit
from pytgt.stores.memory import MemoryStore
from tests.iso import BLOCK, iso_image

from .conftest import Harness

NOT_READY, ILLEGAL, UNIT_ATTENTION, DATA_PROTECT = 0x02, 0x05, 0x06, 0x07
TUR = [0] * 6
EJECT = [0x1B, 0, 0, 0, 0x02, 0]
LOAD = [0x1B, 0, 0, 0, 0x03, 0]
PREVENT = [0x1E, 0, 0, 0, 1, 0]
ALLOW = [0x1E, 0, 0, 0, 0, 0]


def _store(volume_id: str, blocks: int = 64) -> MemoryStore:
    store = MemoryStore(blocks * BLOCK)
    store._buf[:] = iso_image(volume_id, blocks)
    return store


@pytest.fixture
def h() -> Iterator[Harness]:
    loop = asyncio.new_event_loop()
    target = ScsiTarget("iqn.2024-01.test:cd", tid=1)
    store = _store("FIRST")
    lu = create_lu("cd", 1, store, tid=1, path="first.iso", bstype="memory")
    target.add_lu(lu)
    harness = Harness(target, lu, store, ItNexus("n1", "iqn.2024-01.test:n1"), loop)
    harness.nexus = harness.new_nexus("n1")
    yield harness
    loop.close()


def read10(lba: int, n: int) -> list[int]:
    return [0x28, 0, *lba.to_bytes(4, "big"), 0, *n.to_bytes(2, "big"), 0]


def alloc10(opcode: int, b1: int = 0, b2: int = 0, b6: int = 0, b4: int = 0,
            alloc: int = 0xFFFF) -> list[int]:
    return [opcode, b1, b2, 0, b4, 0, b6, alloc >> 8, alloc & 0xFF, 0]


def test_inquiry_is_a_removable_cd(h: Harness) -> None:
    r = h.run([0x12, 0, 0, 0, 96, 0])
    assert r.data[0] == 0x05 and r.data[1] & 0x80
    assert r.data[16:32].rstrip() == b"VIRTUAL-CDROM"


def test_capacity_and_read_primary_volume_descriptor(h: Harness) -> None:
    assert h.run([0x25] + [0] * 9).data == struct.pack(">II", 63, 2048)
    r = h.run(read10(16, 1))
    assert r.status == Status.GOOD and r.data[1:6] == b"CD001"
    assert bytes(r.data[40:45]) == b"FIRST"
    r12 = h.run([0xA8, 0, 0, 0, 0, 16, 0, 0, 0, 2, 0, 0])
    assert len(r12.data) == 2 * BLOCK and r12.data[1:6] == b"CD001"
    assert h.sense(read10(63, 2)) == (ILLEGAL, 0x21, 0x00)


def test_writes_are_refused(h: Harness) -> None:
    assert h.sense([0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0], bytes(BLOCK)) == (DATA_PROTECT, 0x27, 0)
    assert h.sense([0xAA, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0], bytes(BLOCK)) \
        == (DATA_PROTECT, 0x27, 0)
    assert h.sense([0x0A, 0, 0, 0, 1, 0]) == (ILLEGAL, 0x20, 0x00)  # no WRITE(6) in MMC


def test_read_toc_formats(h: Harness) -> None:
    d = h.run(alloc10(0x43)).data
    assert d[:4] == bytes((0, 18, 1, 1))
    assert d[4:12] == bytes((0, 0x14, 1, 0, 0, 0, 0, 0))
    assert d[12:20] == bytes((0, 0x14, 0xAA, 0)) + struct.pack(">I", 64)
    msf = h.run(alloc10(0x43, b1=0x02)).data
    assert msf[8:12] == bytes((0, 0, 2, 0))  # LBA 0 is 00:02:00
    assert h.run(alloc10(0x43, b6=0xAA)).data[:4] == bytes((0, 10, 1, 1))
    session = h.run(alloc10(0x43, b2=1)).data
    assert session[:4] == bytes((0, 10, 1, 1)) and session[6] == 1
    assert h.sense(alloc10(0x43, b6=2)) == (ILLEGAL, 0x24, 0)
    assert h.sense(alloc10(0x43, b2=3)) == (ILLEGAL, 0x24, 0)  # no PMA on a pressed disc
    assert len(h.run(alloc10(0x43, alloc=4)).data) == 4


def test_read_toc_legacy_format_in_control_byte(h: Harness) -> None:
    legacy = [0x43, 0, 0, 0, 0, 0, 0, 0, 12, 0x40]  # as Linux's sr asks for sessions
    assert h.run(legacy).data == h.run(alloc10(0x43, b2=1, alloc=12)).data
    assert h.run(legacy[:9] + [0x00]).data[:4] == bytes((0, 18, 1, 1))  # format 0


def test_read_toc_full_toc(h: Harness) -> None:
    d = h.run(alloc10(0x43, b2=2)).data
    assert d[:4] == bytes((0, 46, 1, 1))
    points = {d[i + 3]: bytes(d[i + 8:i + 11]) for i in range(4, len(d), 11)}
    assert all(d[i:i + 2] == b"\x01\x14" for i in range(4, len(d), 11))  # session 1, data
    assert points == {0xA0: bytes((1, 0, 0)), 0xA1: bytes((1, 0, 0)),
                      0xA2: bytes((0, 2, 64)), 0x01: bytes((0, 2, 0))}  # 64 + 150 frames
    assert h.run(alloc10(0x43, b2=2, b6=1)).data == d
    assert h.sense(alloc10(0x43, b2=2, b6=2)) == (ILLEGAL, 0x24, 0)  # no session 2


def test_msf_of_a_dvd_end_stays_in_range() -> None:
    assert mmc._lba_field(2_400_000, True) == bytes((0, 255, 59, 74))
    assert mmc._lba_field(449_850, True) == bytes((0, 100, 0, 0))


def read_cd(lba: int, n: int, b1: int = 0, flags: int = 0x10, sub: int = 0) -> list[int]:
    return [0xBE, b1, *lba.to_bytes(4, "big"), *n.to_bytes(3, "big"), flags, sub, 0]


def test_read_cd_user_data(h: Harness) -> None:
    r = h.run(read_cd(16, 2))
    assert len(r.data) == 2 * BLOCK and r.data[1:6] == b"CD001"
    assert r.data == h.run(read10(16, 2)).data
    assert h.run(read_cd(16, 1, b1=2 << 2)).data[1:6] == b"CD001"  # Mode 1 expected
    empty = h.run(read_cd(16, 1, flags=0))  # no field selected: nothing moves
    assert empty.status == Status.GOOD and not empty.data
    assert h.sense(read_cd(16, 1, b1=1 << 2)) == (ILLEGAL, 0x64, 0)  # CD-DA expected
    assert h.sense(read_cd(16, 1, b1=6 << 2)) == (ILLEGAL, 0x24, 0)  # reserved type
    assert h.sense(read_cd(16, 1, flags=0xF8)) == (ILLEGAL, 0x24, 0)  # sync, headers, EDC
    assert h.sense(read_cd(16, 1, sub=1)) == (ILLEGAL, 0x24, 0)  # raw sub-channel
    assert h.sense(read_cd(63, 2)) == (ILLEGAL, 0x21, 0)
    h.run(EJECT)
    assert h.sense(read_cd(16, 1)) == (NOT_READY, 0x3A, 0x02)


def test_read_cd_of_a_dvd() -> None:
    loop = asyncio.new_event_loop()
    try:
        h = _dvd_harness(loop)
        assert h.sense(read_cd(0, 1)) == (ILLEGAL, 0x30, 0x02)  # CD Read is not current
    finally:
        loop.close()


def test_get_configuration(h: Harness) -> None:
    d = h.run(alloc10(0x46)).data
    assert struct.unpack_from(">IH", d, 0)[0] == len(d) - 4
    assert struct.unpack_from(">H", d, 6)[0] == 0x0008  # a small image is a CD-ROM
    assert d[8:10] == b"\0\0" and d[11] == 8  # profile list with two profiles
    assert d[12:16] == bytes((0, 0x10, 0, 0)) and d[16:20] == bytes((0, 0x08, 1, 0))
    codes = []
    pos = 8
    while pos < len(d):
        codes.append(struct.unpack_from(">H", d, pos)[0])
        pos += 4 + d[pos + 3]
    assert codes == [0, 1, 2, 3, 0x10, 0x1E, 0x1F]
    cd_read = h.run([0x46, 0x02, 0, 0x1E, 0, 0, 0, 0, 0xFF, 0]).data
    assert cd_read[8:12] == bytes((0, 0x1E, 2 << 2 | 0x03, 4))  # current, persistent
    one = h.run([0x46, 0x02, 0, 3, 0, 0, 0, 0, 0xFF, 0]).data  # RT=10b: feature 3 only
    assert len(one) == 16 and one[8:10] == b"\0\x03" and one[12] & 0x08  # Eject
    assert h.sense([0x46, 0x03, 0, 0, 0, 0, 0, 0, 0xFF, 0]) == (ILLEGAL, 0x24, 0)


def test_dvd_profile_by_size() -> None:
    lu = create_lu("cd", 1, MemoryStore(400_000 * BLOCK), tid=1, bstype="memory")
    assert isinstance(lu, CdLogicalUnit) and lu.profile == 0x0010


def test_eject_and_load(h: Harness) -> None:
    assert h.run(EJECT).status == Status.GOOD
    assert h.sense(TUR) == (NOT_READY, 0x3A, 0x02)  # tray open
    sense = h.run([0x03, 0, 0, 0, 18, 0]).data
    assert (sense[2] & 0x0F, sense[12], sense[13]) == (NOT_READY, 0x3A, 0x02)
    assert h.sense(read10(16, 1)) == (NOT_READY, 0x3A, 0x02)
    gc = h.run(alloc10(0x46)).data
    assert struct.unpack_from(">H", gc, 6)[0] == 0  # no current profile
    mech = h.run([0xBD, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0]).data
    assert mech[1] & 0x10  # door open
    assert h.run(LOAD).status == Status.GOOD
    assert h.sense(TUR) is None


def test_prevent_refuses_eject(h: Harness) -> None:
    h.run(PREVENT)
    assert h.sense(EJECT) == (ILLEGAL, 0x53, 0x02)
    assert h.sense(TUR) is None
    h.run(ALLOW)
    assert h.sense(EJECT) is None


def test_event_status_media_class(h: Harness) -> None:
    gesn = [0x4A, 0x01, 0, 0, 0x10, 0, 0, 0, 8, 0]
    d = h.run(gesn).data
    assert d == bytes((0, 6, 0x04, 0x10, 0, 0x02, 0, 0))  # no change, media present
    other = h.new_nexus("n2")
    h.run(EJECT)
    assert h.run(gesn, nexus=other).data[4:6] == bytes((0x03, 0x01))  # MediaRemoval, tray open
    h.run(LOAD)  # GESN reports no unit attention (MMC-6 4.1.6.1): the event comes first
    assert h.run(gesn, nexus=other).data[4:6] == bytes((0x02, 0x02))  # NewMedia, present
    assert h.sense([0x4A, 0, 0, 0, 0x10, 0, 0, 0, 8, 0]) == (ILLEGAL, 0x24, 0)  # not polled
    assert h.run([0x4A, 0x01, 0, 0, 0x02, 0, 0, 0, 8, 0]).data == bytes((0, 2, 0x80, 0x10))


def test_disc_and_track_information(h: Harness) -> None:
    d = h.run(alloc10(0x51)).data
    assert len(d) == 34 and d[2] == 0x0E and d[3] == 1
    assert h.sense(alloc10(0x51, b1=1)) == (ILLEGAL, 0x24, 0)
    t = h.run([0x52, 0x01, 0, 0, 0, 1, 0, 0, 48, 0]).data  # track 1
    assert len(t) == 48 and t[2] == 1 and struct.unpack_from(">I", t, 24)[0] == 64
    assert h.run([0x52, 0x00, 0, 0, 0, 10, 0, 0, 48, 0]).data[2] == 1  # by LBA
    assert h.sense([0x52, 0x01, 0, 0, 0, 2, 0, 0, 48, 0]) == (ILLEGAL, 0x24, 0)
    assert h.sense([0x52, 0x00, 0, 0, 0, 64, 0, 0, 48, 0]) == (ILLEGAL, 0x24, 0)
    assert h.sense([0x52, 0x03, 0, 0, 0, 0, 0, 0, 48, 0]) == (ILLEGAL, 0x24, 0)


def test_mode_sense_capabilities_page(h: Harness) -> None:
    d = h.run([0x5A, 0x08, 0x2A, 0, 0, 0, 0, 0, 0xFF, 0]).data
    assert struct.unpack_from(">H", d, 0)[0] == len(d) - 2
    assert d[8] == 0x2A and d[9] == 0x14 and d[14] & 0x08  # Eject
    every = h.run([0x5A, 0x08, 0x3F, 0, 0, 0, 0, 0, 0xFF, 0]).data
    assert every[8] == 0x01
    assert h.sense([0x5A, 0x08, 0x08, 0, 0, 0, 0, 0, 0xFF, 0]) == (ILLEGAL, 0x24, 0)
    assert h.sense([0x5A, 0x08, 0xEA, 0, 0, 0, 0, 0, 0xFF, 0]) == (ILLEGAL, 0x39, 0)


def test_media_change_raises_unit_attention(h: Harness) -> None:
    lu = h.lu
    assert isinstance(lu, CdLogicalUnit)
    old = lu.change_medium(_store("SECOND", 32), "second.iso")
    assert old is h.store
    assert h.sense(read10(16, 1)) == (UNIT_ATTENTION, 0x28, 0x00)
    assert bytes(h.run(read10(16, 1)).data[40:46]) == b"SECOND"
    assert h.run([0x25] + [0] * 9).data == struct.pack(">II", 31, 2048)
    lu.change_medium(None, "")
    assert h.sense(TUR) == (NOT_READY, 0x3A, 0x01)  # tray closed, no disc
    assert h.sense([0x25] + [0] * 9) == (NOT_READY, 0x3A, 0x01)


def test_empty_drive_created_without_medium() -> None:
    lu = create_lu("cd", 1, None, tid=1)
    assert isinstance(lu, CdLogicalUnit) and not lu.loaded and lu.path == ""
    assert lu.bstype == "rdwr"  # a disc put in later opens as a file


def test_no_thin_provisioning_on_pressed_media(h: Harness) -> None:
    assert not h.lu.thin_provisioning


def _dvd_harness(loop: asyncio.AbstractEventLoop) -> Harness:
    target = ScsiTarget("iqn.2024-01.test:dvd", tid=1)
    target.add_lu(create_lu("cd", 1, MemoryStore(400_000 * BLOCK), tid=1, bstype="memory"))
    h = Harness(target, target.luns[1], MemoryStore(0), ItNexus("n", "iqn.2024-01.t:n"), loop)
    h.nexus = h.new_nexus("n")
    return h


def read_disc_structure(fmt: int, layer: int = 0, media: int = 0) -> list[int]:
    return [0xAD, media, 0, 0, 0, 0, layer, fmt, 0x10, 0x00, 0, 0]


def test_read_disc_structure_of_a_dvd() -> None:
    loop = asyncio.new_event_loop()
    try:
        h = _dvd_harness(loop)
        phys = h.run(read_disc_structure(0x00)).data
        assert struct.unpack_from(">H", phys, 0)[0] == 2050 and len(phys) == 2052
        assert phys[4] == 0x01 and phys[6] == 0x01  # DVD-ROM book, one embossed layer
        assert struct.unpack_from(">II", phys, 8) == (0x030000, 0x030000 + 400_000 - 1)
        assert h.run(read_disc_structure(0x01)).data == bytes((0, 6, 0, 0, 0, 0, 0, 0))
        listed = h.run(read_disc_structure(0xFF)).data
        assert [listed[i] for i in range(4, len(listed), 4)] == [0x00, 0x01, 0xFF]
        assert h.sense(read_disc_structure(0x00, layer=1)) == (ILLEGAL, 0x24, 0)
        assert h.sense(read_disc_structure(0x04)) == (ILLEGAL, 0x24, 0)  # no manufacturer's
        assert h.sense(read_disc_structure(0x00, media=1)) == (ILLEGAL, 0x24, 0)  # no BD
    finally:
        loop.close()


def test_read_disc_structure_of_a_cd(h: Harness) -> None:
    assert h.sense(read_disc_structure(0x00)) == (ILLEGAL, 0x30, 0x02)
    assert h.run(read_disc_structure(0xFF)).status == Status.GOOD


def test_get_performance_nominal(h: Harness) -> None:
    d = h.run([0xAC, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x00, 0]).data
    assert struct.unpack(">IBxxxIIII", d) == (20, 0, 0, 7056, 63, 7056)
    assert h.run([0xAC, 0x04, 0, 0, 0, 0, 0, 0, 0, 1, 0x00, 0]).data == bytes(
        (0, 0, 0, 4, 0x02, 0, 0, 0))  # write performance: none
    assert h.sense([0xAC, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x03, 0]) == (ILLEGAL, 0x24, 0)
    assert h.sense([0xAC, 0x01, 0, 0, 0, 0, 0, 0, 0, 1, 0x00, 0]) == (ILLEGAL, 0x24, 0)


def test_speed_requests_and_cache_commands_are_accepted(h: Harness) -> None:
    assert h.sense([0xBB, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0]) is None
    assert h.sense([0xB6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 28, 0], bytes(28)) is None
    assert h.sense([0xB6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0], bytes(8)) == (ILLEGAL, 0x1A, 0)
    assert h.sense([0xB6, 0, 0, 0, 0, 0, 0, 0, 0x05, 0, 0, 0]) == (ILLEGAL, 0x24, 0)
    assert h.sense([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]) is None  # SYNCHRONIZE CACHE(10)
    assert h.sense([0x2F, 0, 0, 0, 0, 16, 0, 0, 4, 0]) is None  # VERIFY(10)
    assert h.sense([0x2F, 0, 0, 0, 0, 62, 0, 0, 4, 0]) == (ILLEGAL, 0x21, 0)
