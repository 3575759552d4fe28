"""EXTENDED COPY (LID1) and RECEIVE COPY RESULTS against a target with MemoryStore LUs."""

from __future__ import annotations

import asyncio
import struct

import pytest

from pytgt.scsi import ScsiResult, ScsiTask, Status, create_lu
from pytgt.scsi import xcopy as x
from pytgt.scsi.sense import decode_sense
from pytgt.scsi.task import ItNexus
from pytgt.scsi.vpd import naa_id
from pytgt.stores.memory import MemoryStore
from tests.scsi.conftest import BLOCKS, BS, Harness, cdb10

RAW_LUN2 = 2 << 48
ILLEGAL, COPY_ABORTED, DATA_PROTECT = 0x5, 0xA, 0x7


def cscd(lu_naa: bytes, *, code: int = 0xE4, lu_id_type: int = 0, nul: bool = False,
         block_length: int = BS) -> bytes:
    """An identification CSCD descriptor naming an LU by its NAA designator."""
    b1 = (lu_id_type << 6) | (0x20 if nul else 0)
    desig = bytes((0x01, 0x03, 0, len(lu_naa))) + lu_naa
    return (bytes((code, b1, 0, 0)) + desig.ljust(24, b"\0")
            + bytes((0,)) + block_length.to_bytes(3, "big"))


def b2b(src: int, dst: int, blocks: int, src_lba: int, dst_lba: int, code: int = 0x02) -> bytes:
    return struct.pack(">BBHHH2xHQQ", code, 0, 0x18, src, dst, blocks, src_lba, dst_lba)


def plist(cscds: list[bytes], segs: list[bytes], list_id: int = 1, usage: int = 0) -> bytes:
    c, s = b"".join(cscds), b"".join(segs)
    return struct.pack(">BBH4xII", list_id, usage << 3, len(c), len(s), 0) + c + s


def xcopy_cdb(length: int) -> bytes:
    return bytes((0x83, 0)) + bytes(8) + length.to_bytes(4, "big") + bytes(2)


def rcr_cdb(action: int, list_id: int = 0, alloc: int = 1024) -> bytes:
    return bytes((0x84, action, list_id)) + bytes(7) + alloc.to_bytes(4, "big") + bytes(2)


def naa(h: Harness, lun: int = 1) -> bytes:
    return naa_id(h.target.luns[lun].scsi_id)


def run_xcopy(h: Harness, data: bytes, length: int | None = None, lun: int = 1 << 48):
    n = len(data) if length is None else length
    return h.run(xcopy_cdb(n), data, lun=lun)


def sense_of(h: Harness, data: bytes, length: int | None = None) -> tuple[int, int, int] | None:
    r = run_xcopy(h, data, length)
    return decode_sense(r.sense) if r.sense else None


@pytest.fixture
def two(h: Harness) -> Harness:
    """The harness with a second disk LU (LUN 2), its unit attentions consumed."""
    lu2 = create_lu("disk", 2, MemoryStore(BLOCKS * BS), tid=1, path="mem2", bstype="memory")
    h.target.add_lu(lu2)
    for lun in (1 << 48, RAW_LUN2):
        while h.run([0, 0, 0, 0, 0, 0], lun=lun).sense:
            pass
    return h


def test_copy_within_lu(h: Harness) -> None:
    h.store._buf[:16 * BS] = b"A" * (16 * BS)
    r = run_xcopy(h, plist([cscd(naa(h))], [b2b(0, 0, 16, 0, BLOCKS - 16)], usage=2))
    assert r.status == Status.GOOD
    assert bytes(h.store._buf[(BLOCKS - 16) * BS:]) == b"A" * (16 * BS)


def test_copy_between_lus(two: Harness) -> None:
    h = two
    h.store._buf[:BS] = b"x" * BS
    data = plist([cscd(naa(h, 1)), cscd(naa(h, 2))], [b2b(0, 1, 1, 0, 7)])
    assert run_xcopy(h, data).status == Status.GOOD
    store2 = h.target.luns[2].store
    assert isinstance(store2, MemoryStore)
    assert bytes(store2._buf[7 * BS:8 * BS]) == b"x" * BS


def test_copy_sent_to_another_lu_of_the_target(two: Harness) -> None:
    h = two
    h.store._buf[:BS] = b"y" * BS
    data = plist([cscd(naa(h, 1))], [b2b(0, 0, 1, 0, 3)])
    assert run_xcopy(h, data, lun=RAW_LUN2).status == Status.GOOD
    assert bytes(h.store._buf[3 * BS:4 * BS]) == b"y" * BS


def test_large_and_overlapping_copy(h: Harness) -> None:
    pattern = bytes(range(256)) * (1200 * BS // 256)
    h.store._buf[:1200 * BS] = pattern
    r = run_xcopy(h, plist([cscd(naa(h))], [b2b(0, 0, 1200, 0, 100)]))  # 600 KiB, overlaps
    assert r.status == Status.GOOD
    assert bytes(h.store._buf[100 * BS:1300 * BS]) == pattern


def test_parameter_list_lengths(h: Harness) -> None:
    data = plist([cscd(naa(h))], [b2b(0, 0, 1, 0, 1)])
    assert run_xcopy(h, b"").status == Status.GOOD
    assert sense_of(h, data[:16 + 31]) == (ILLEGAL, 0x1A, 0x00)
    assert sense_of(h, data[:-1]) == (ILLEGAL, 0x1A, 0x00)
    assert sense_of(h, data[:10]) == (ILLEGAL, 0x1A, 0x00)


def test_descriptor_limits(h: Harness) -> None:
    t, s = cscd(naa(h)), b2b(0, 0, 1, 0, 1)
    many_t, many_s = x.MAX_CSCD_DESCRIPTORS + 1, x.MAX_SEGMENT_DESCRIPTORS + 1
    assert sense_of(h, plist([t] * many_t, [s])) == (ILLEGAL, 0x26, 0x06)
    assert sense_of(h, plist([t], [s] * many_s)) == (ILLEGAL, 0x26, 0x08)
    assert sense_of(h, plist([t] * many_t, [s] * many_s)) == (ILLEGAL, 0x1A, 0x00)


def test_unsupported_descriptor_types(h: Harness) -> None:
    assert sense_of(h, plist([cscd(naa(h), code=0xE0)], [b2b(0, 0, 1, 0, 1)])) \
        == (ILLEGAL, 0x26, 0x07)
    assert sense_of(h, plist([cscd(naa(h))], [b2b(0, 0, 1, 0, 1, code=0x03)])) \
        == (ILLEGAL, 0x26, 0x09)


def test_invalid_fields_point_into_the_list(h: Harness) -> None:
    bad_len = bytearray(plist([cscd(naa(h))], [b2b(0, 0, 1, 0, 1)]))
    bad_len[16 + 32 + 3] = 0x10
    r = run_xcopy(h, bytes(bad_len))
    assert decode_sense(r.sense) == (ILLEGAL, 0x26, 0x00)
    assert r.sense[15] == 0x80 and r.sense[16:18] == b"\0\x32"  # DESCRIPTOR LENGTH, byte 50
    assert sense_of(h, plist([cscd(naa(h))], [b2b(0, 0, 1, 0, 1)], usage=1)) \
        == (ILLEGAL, 0x26, 0x00)


def test_lu_id_type_and_nul_are_ignored(h: Harness) -> None:
    # SPC-4 6.4.5.1: LU ID TYPE does not apply to an identification descriptor; NUL is
    # obsolete.
    for desc in (cscd(naa(h), lu_id_type=2), cscd(naa(h), nul=True)):
        assert run_xcopy(h, plist([desc], [b2b(0, 0, 1, 0, 1)])).status == Status.GOOD


def test_copy_aborted_cases(h: Harness) -> None:
    seg = b2b(0, 0, 1, 0, 1)
    assert sense_of(h, plist([cscd(bytes(16))], [seg])) == (COPY_ABORTED, 0x0D, 0x02)
    assert sense_of(h, plist([cscd(naa(h))], [b2b(0, 1, 1, 0, 1)])) \
        == (COPY_ABORTED, 0x08, 0x04)
    assert sense_of(h, plist([cscd(naa(h), block_length=4096)], [seg]))[0] == COPY_ABORTED


def test_beyond_end_forwards_the_copy_targets_sense(h: Harness) -> None:
    good = b2b(0, 0, 1, 0, 1)
    r = run_xcopy(h, plist([cscd(naa(h))], [good, b2b(0, 0, 2048, 0, BLOCKS - 1)]))
    assert decode_sense(r.sense) == (COPY_ABORTED, 0x00, 0x00)
    sense = r.sense
    assert sense[10:12] == b"\0\x01"  # segment 1
    start = sense[9]  # destination's status and sense
    assert sense[start] == Status.CHECK_CONDITION
    assert decode_sense(sense[start + 1:]) == (ILLEGAL, 0x21, 0x00)
    assert bytes(h.store._buf[BS:2 * BS]) == bytes(BS)  # nothing copied: checked up front


def test_descriptor_format_sense(h: Harness) -> None:
    h.lu.mode.d_sense = True
    r = run_xcopy(h, plist([cscd(naa(h))], [b2b(0, 0, 2048, 0, BLOCKS - 1)]))
    sense = r.sense
    assert sense[0] == 0x72 and decode_sense(sense) == (COPY_ABORTED, 0, 0)
    assert 0x0C in sense[8:]  # forwarded sense data descriptor


def test_write_protected_destination(two: Harness) -> None:
    h = two
    h.target.luns[2].readonly = True
    data = plist([cscd(naa(h, 1)), cscd(naa(h, 2))], [b2b(0, 1, 1, 0, 0)])
    assert sense_of(h, data) == (DATA_PROTECT, 0x27, 0x00)
    reverse = plist([cscd(naa(h, 2)), cscd(naa(h, 1))], [b2b(0, 1, 1, 0, 0)])
    assert run_xcopy(h, reverse).status == Status.GOOD  # reading it is fine


def test_reserved_destination(two: Harness) -> None:
    h = two
    other = h.new_nexus("n2")
    assert h.run([0x16, 0, 0, 0, 0, 0], lun=RAW_LUN2, nexus=other).status == Status.GOOD
    data = plist([cscd(naa(h, 1)), cscd(naa(h, 2))], [b2b(0, 1, 1, 0, 0)])
    assert run_xcopy(h, data).status == Status.RESERVATION_CONFLICT


def test_copy_status(h: Harness) -> None:
    assert h.sense(rcr_cdb(0, 5)) == (ILLEGAL, 0x24, 0x00)
    h.store._buf[:BS] = b"z" * BS
    assert run_xcopy(h, plist([cscd(naa(h))], [b2b(0, 0, 4, 0, 8)], list_id=5)).status == 0
    r = h.run(rcr_cdb(0, 5))
    assert r.status == Status.GOOD
    assert bytes(r.data) == struct.pack(">IBHBI", 8, 1, 1, 0, 4 * BS)
    assert h.sense(rcr_cdb(0, 5)) == (ILLEGAL, 0x24, 0x00)  # reported once


def test_copy_status_is_per_nexus_and_not_held_without_hold(h: Harness) -> None:
    data = plist([cscd(naa(h))], [b2b(0, 0, 1, 0, 8)], list_id=6, usage=2)
    assert run_xcopy(h, data).status == Status.GOOD
    assert h.sense(rcr_cdb(0, 6)) == (ILLEGAL, 0x24, 0x00)
    assert run_xcopy(h, plist([cscd(naa(h))], [b2b(0, 0, 1, 0, 8)], list_id=7)).status == 0
    other = h.new_nexus("n3")
    assert h.sense(rcr_cdb(0, 7), nexus=other) == (ILLEGAL, 0x24, 0x00)
    h.target.remove_nexus(h.nexus)
    h.target.add_nexus(ItNexus("n1b", "iqn.2024-01.test:n1"))
    assert (h.nexus.key, 7) in h.lu.copy_manager.operations
    h.lu.copy_manager.prune(h.lu.nexuses)
    assert not h.lu.copy_manager.operations


def test_failed_segment_details(h: Harness) -> None:
    data = plist([cscd(naa(h))], [b2b(0, 0, 2048, 0, BLOCKS - 1)], list_id=9)
    failed = run_xcopy(h, data)
    assert failed.status == Status.CHECK_CONDITION
    r = h.run(rcr_cdb(4, 9))
    body = bytes(r.data)
    assert body[56] == Status.CHECK_CONDITION
    assert body[60:] == failed.sense
    status = h.sense(rcr_cdb(0, 9))
    assert status == (ILLEGAL, 0x24, 0x00)  # details fully read: nothing left


def test_operating_parameters(h: Harness) -> None:
    r = h.run(rcr_cdb(3))
    d = bytes(r.data)
    assert struct.unpack_from(">I", d)[0] == len(d) - 4 >= 42
    assert struct.unpack_from(">HHI", d, 8) == (x.MAX_CSCD_DESCRIPTORS,
                                                 x.MAX_SEGMENT_DESCRIPTORS,
                                                 x.MAX_DESCRIPTOR_LIST_LENGTH)
    assert d[43] == 2 and d[44:46] == bytes((0x02, 0xE4))
    assert h.sense(rcr_cdb(0x1F)) == (ILLEGAL, 0x24, 0x00)


def test_inquiry_3pc_and_opcodes(h: Harness) -> None:
    std = bytes(h.run([0x12, 0, 0, 0, 96, 0]).data)
    assert std[5] & 0x08
    one = h.run([0xA3, 0x0C, 0x03, 0x83, 0, 0, 0, 0, 1, 0, 0, 0])
    assert bytes(one.data)[1] & 0x07 == 0x03
    assert h.target.expected_data_out(1 << 48, xcopy_cdb(60)) == 60


def test_write_still_works_after_copy(h: Harness) -> None:
    assert run_xcopy(h, plist([cscd(naa(h))], [b2b(0, 0, 1, 0, 1)])).status == 0
    assert h.run(cdb10(0x2A, 0, 1), b"q" * BS).status == Status.GOOD


def test_third_party_copy_vpd(h: Harness) -> None:
    pages = bytes(h.run([0x12, 1, 0x00, 0, 255, 0]).data)
    assert 0x8F in pages[4:]
    page = bytes(h.run([0x12, 1, 0x8F, 0x04, 0, 0]).data)
    assert page[1] == 0x8F and struct.unpack_from(">H", page, 2)[0] == len(page) - 4
    pos, kinds = 4, {}
    while pos < len(page):
        kind, length = struct.unpack_from(">HH", page, pos)
        assert length % 4 == 0
        kinds[kind] = page[pos + 4:pos + 4 + length]
        pos += 4 + length
    assert pos == len(page)
    cmds = kinds[0x0001]
    assert cmds[1:1 + cmds[0]] == bytes((0x83, 1, 0x00, 0x84, 4, 0, 1, 3, 4))
    assert struct.unpack_from(">HH", kinds[0x0004], 4) == (x.MAX_CSCD_DESCRIPTORS,
                                                         x.MAX_SEGMENT_DESCRIPTORS)
    assert kinds[0x0008][:3] == bytes((2, 0x02, 0xE4))


class _GatedStore(MemoryStore):
    """A MemoryStore whose reads wait for a gate (a copy caught in flight)."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.gate = asyncio.Event()
        self.reads = 0

    async def read(self, offset: int, length: int) -> bytes:
        self.reads += 1
        await self.gate.wait()
        return await super().read(offset, length)


def test_same_list_id_while_in_progress_and_abort(h: Harness) -> None:
    store = _GatedStore(BLOCKS * BS)
    h.lu.store = store
    data = plist([cscd(naa(h))], [b2b(0, 0, 4, 0, 8)], list_id=3)

    async def scenario() -> tuple[ScsiResult, ScsiResult, ScsiResult, ScsiResult]:
        first = ScsiTask(h.nexus, 1 << 48, xcopy_cdb(len(data)), data_out=data)
        running = asyncio.ensure_future(h.target.execute(first))
        while not store.reads:
            await asyncio.sleep(0)
        status = await h.target.execute(ScsiTask(h.nexus, 1 << 48, rcr_cdb(0, 3)))
        again = await h.target.execute(
            ScsiTask(h.nexus, 1 << 48, xcopy_cdb(len(data)), data_out=data))
        first.aborted = True
        store.gate.set()
        return status, again, await running, await h.target.execute(
            ScsiTask(h.nexus, 1 << 48, rcr_cdb(0, 3)))

    status, again, first, after = h.loop.run_until_complete(scenario())
    assert bytes(status.data)[4] == 0x00  # in progress
    assert decode_sense(again.sense) == (ILLEGAL, 0x00, 0x16)  # OPERATION IN PROGRESS
    assert first.status == Status.TASK_ABORTED
    assert bytes(after.data)[4] == 0x02  # completed with errors
