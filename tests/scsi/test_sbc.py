"""SBC-3 commands besides READ/WRITE: capacity, VERIFY, COMPARE AND WRITE, WRITE SAME, UNMAP,
SYNCHRONIZE CACHE, PRE-FETCH, GET LBA STATUS, START STOP UNIT, PREVENT ALLOW MEDIUM REMOVAL."""

from __future__ import annotations

import struct

import pytest

from pytgt.scsi import Status, tmf
from pytgt.scsi.sense import decode_sense

from .conftest import BLOCKS, BS, Harness, cdb10, cdb12, cdb16

INVALID_FIELD = (0x05, 0x24, 0x00)
LBA_RANGE = (0x05, 0x21, 0x00)


def rc16(alloc: int = 32) -> bytes:
    return bytes([0x9E, 0x10]) + bytes(8) + alloc.to_bytes(4, "big") + b"\0\0"


def test_read_capacity_10(h: Harness) -> None:
    assert bytes(h.run([0x25] + [0] * 9).data) == struct.pack(">II", BLOCKS - 1, BS)
    assert h.run([0x25, 0, 0, 0, 0, 5, 0, 0, 1, 0]).status == Status.GOOD  # PMI
    assert h.sense([0x25, 0, 0, 0, 0, 5, 0, 0, 0, 0]) == INVALID_FIELD


def test_read_capacity_10_saturates(h: Harness) -> None:
    h.store.size = (1 << 33) * BS
    assert bytes(h.run([0x25] + [0] * 9).data)[:4] == b"\xff\xff\xff\xff"
    assert struct.unpack_from(">Q", bytes(h.run(rc16()).data))[0] == (1 << 33) - 1


@pytest.mark.parametrize("alloc", [0, 8, 12, 32, 64])
def test_read_capacity_16(h: Harness, alloc: int) -> None:
    d = bytes(h.run(rc16(alloc)).data)
    assert d == struct.pack(">QIBBH16x", BLOCKS - 1, BS, 0, 0, 0)[:alloc]


def test_read_capacity_16_thin(h: Harness) -> None:
    h.lu.update_params({"thin_provisioning": "1"})
    assert bytes(h.run(rc16()).data)[14] & 0xC0 == 0xC0


VERIFIES = [(0x2F, cdb10), (0xAF, cdb12), (0x8F, cdb16)]


@pytest.mark.parametrize(("op", "make"), VERIFIES)
def test_verify(h: Harness, op: int, make: object) -> None:
    data = bytes(range(256)) * (4 * BS // 256)
    h.run(cdb10(0x2A, 10, 4), data)
    assert h.run(make(op, 10, 4, 0x02), data).status == Status.GOOD  # type: ignore[operator]
    bad = bytearray(data)
    bad[700] ^= 1
    r = h.run(make(op, 10, 4, 0x02), bytes(bad))  # type: ignore[operator]
    assert r.sense == bytes([0xF0, 0, 0x0E, 0, 0, 0x02, 0xBC, 10, 0, 0, 0, 0, 0x1D, 0, 0, 0, 0,
                             0])
    assert h.run(make(op, 10, 4, 0x00), bytes(bad)).status == Status.GOOD  # type: ignore[operator]
    assert h.sense(make(op, BLOCKS - 1, 2)) == LBA_RANGE  # type: ignore[operator]
    assert h.run(make(op, 0, 0, 0x02)).status == Status.GOOD  # type: ignore[operator]
    assert h.sense(make(op, 0, 1, 0x20)) == INVALID_FIELD  # type: ignore[operator]
    assert h.sense(make(op, 0, 1, 0x04)) == INVALID_FIELD  # type: ignore[operator]  # BYTCHK 10b


def test_verify_bytchk_11_compares_one_block_with_each(h: Harness) -> None:
    h.run(cdb10(0x2A, 0, 3), b"q" * (3 * BS))
    assert h.run(cdb10(0x2F, 0, 3, 0x06), b"q" * BS).status == Status.GOOD
    assert h.target.expected_data_out(1 << 48, cdb10(0x2F, 0, 3, 0x06)) == BS
    assert h.target.expected_data_out(1 << 48, cdb10(0x2F, 0, 3, 0x02)) == 3 * BS
    assert h.target.expected_data_out(1 << 48, cdb10(0x2F, 0, 3, 0x00)) == 0


@pytest.mark.parametrize(("op", "make"), [(0x2E, cdb10), (0xAE, cdb12), (0x8E, cdb16)])
def test_write_and_verify(h: Harness, op: int, make: object) -> None:
    assert h.run(make(op, 5, 1, 0x02), b"w" * BS).status == Status.GOOD  # type: ignore[operator]
    assert bytes(h.run(cdb10(0x28, 5, 1)).data) == b"w" * BS
    assert h.sense(make(op, BLOCKS, 1), b"w" * BS) == LBA_RANGE  # type: ignore[operator]


def caw(lba: int, n: int, flags: int = 0) -> bytes:
    return bytes([0x89, flags]) + lba.to_bytes(8, "big") + bytes([0, 0, 0, n, 0, 0])


def test_compare_and_write(h: Harness) -> None:
    h.run(cdb10(0x2A, 3, 1), b"a" * BS)
    assert h.run(caw(3, 1), b"a" * BS + b"b" * BS).status == Status.GOOD
    assert bytes(h.run(cdb10(0x28, 3, 1)).data) == b"b" * BS
    r = h.run(caw(3, 1), b"b" * 10 + b"x" + b"b" * (BS - 11) + b"c" * BS)
    assert decode_sense(r.sense) == (0x0E, 0x1D, 0x00) and r.sense[3:7] == b"\0\0\0\x0a"
    assert bytes(h.run(cdb10(0x28, 3, 1)).data) == b"b" * BS
    assert h.sense(caw(BLOCKS, 1), bytes(2 * BS)) == LBA_RANGE
    assert h.sense(caw(0, 2), bytes(4 * BS)) == INVALID_FIELD
    assert h.sense(caw(0, 1), bytes(BS)) == (0x05, 0x1A, 0x00)
    assert h.target.expected_data_out(1 << 48, caw(0, 1)) == 2 * BS
    assert h.run(caw(0, 0)).status == Status.GOOD
    assert h.sense(caw(0, 0), bytes(512 * BS)) == INVALID_FIELD  # 256 wrapped to 0


def ws10(lba: int, n: int, flags: int = 0) -> bytes:
    return cdb10(0x41, lba, n, flags)


def ws16(lba: int, n: int, flags: int = 0) -> bytes:
    return cdb16(0x93, lba, n, flags)


@pytest.mark.parametrize("make", [ws10, ws16])
def test_write_same(h: Harness, make: object) -> None:
    assert h.run(make(100, 300), b"\x5a" * BS).status == Status.GOOD  # type: ignore[operator]
    assert bytes(h.run(cdb10(0x28, 100, 300)).data) == b"\x5a" * (300 * BS)
    assert bytes(h.run(cdb10(0x28, 400, 1)).data) == bytes(BS)
    assert h.sense(make(BLOCKS - 1, 2), bytes(BS)) == LBA_RANGE  # type: ignore[operator]
    assert h.sense(make(0, 0), bytes(BS)) == INVALID_FIELD  # type: ignore[operator]  # WSNZ
    assert h.sense(make(0, 1, 0x20), bytes(BS)) == INVALID_FIELD  # type: ignore[operator]
    assert h.sense(make(0, 1, 0x08), bytes(BS)) == INVALID_FIELD  # type: ignore[operator]
    assert h.sense(make(0, 1), bytes(10)) == (0x05, 0x1A, 0x00)  # type: ignore[operator]


@pytest.mark.parametrize("make", [ws10, ws16])
def test_write_same_unmap_when_thin(h: Harness, make: object) -> None:
    h.lu.update_params({"thin_provisioning": "1"})
    h.run(cdb10(0x2A, 0, 4), b"z" * (4 * BS))
    assert h.run(make(1, 2, 0x08), bytes(BS)).status == Status.GOOD  # type: ignore[operator]
    assert bytes(h.run(cdb10(0x28, 0, 4)).data) == b"z" * BS + bytes(2 * BS) + b"z" * BS


def test_write_same_16_ndob(h: Harness) -> None:
    h.run(cdb10(0x2A, 0, 2), b"z" * (2 * BS))
    assert h.target.expected_data_out(1 << 48, ws16(0, 2, 0x01)) == 0
    assert h.run(ws16(0, 2, 0x01)).status == Status.GOOD
    assert bytes(h.run(cdb10(0x28, 0, 2)).data) == bytes(2 * BS)


def unmap_list(*ranges: tuple[int, int]) -> bytes:
    descs = b"".join(struct.pack(">QI4x", lba, n) for lba, n in ranges)
    return struct.pack(">HH4x", len(descs) + 6, len(descs)) + descs


def unmap_cdb(length: int) -> bytes:
    return bytes([0x42, 0, 0, 0, 0, 0, 0]) + length.to_bytes(2, "big") + b"\0"


def test_unmap(h: Harness) -> None:
    h.lu.update_params({"thin_provisioning": "1"})
    h.run(cdb10(0x2A, 0, 8), b"u" * (8 * BS))
    plist = unmap_list((1, 2), (5, 1))
    assert h.target.expected_data_out(1 << 48, unmap_cdb(len(plist))) == len(plist)
    assert h.run(unmap_cdb(len(plist)), plist).status == Status.GOOD
    got = bytes(h.run(cdb10(0x28, 0, 8)).data)
    assert got == b"u" * BS + bytes(2 * BS) + b"u" * (2 * BS) + bytes(BS) + b"u" * (2 * BS)
    assert h.run(unmap_cdb(0)).status == Status.GOOD
    plist = unmap_list((BLOCKS - 1, 2))
    assert h.sense(unmap_cdb(len(plist)), plist) == LBA_RANGE
    assert h.run(unmap_cdb(len(unmap_list())), unmap_list()).status == Status.GOOD


def test_unmap_needs_thin_provisioning(h: Harness) -> None:
    plist = unmap_list((1, 2))
    assert h.sense(unmap_cdb(len(plist)), plist) == (0x05, 0x20, 0x00)


def test_synchronize_cache_flushes(h: Harness) -> None:
    calls = []

    async def flush() -> None:
        calls.append(1)

    h.store.flush = flush  # type: ignore[method-assign]
    assert h.run(cdb10(0x35, 0, 0)).status == Status.GOOD
    assert h.run(cdb16(0x91, 10, 10)).status == Status.GOOD
    assert calls == [1, 1]
    assert h.sense(cdb10(0x35, BLOCKS, 1)) == LBA_RANGE
    assert h.sense(cdb16(0x91, BLOCKS + 1, 0)) == LBA_RANGE


@pytest.mark.parametrize(("op", "make"), [(0x34, cdb10), (0x90, cdb16)])
def test_pre_fetch(h: Harness, op: int, make: object) -> None:
    assert h.run(make(op, 0, 10, 0x02)).status == Status.GOOD  # type: ignore[operator]
    assert h.run(make(op, 0, 0)).status == Status.GOOD  # type: ignore[operator]
    assert h.sense(make(op, BLOCKS - 1, 2)) == LBA_RANGE  # type: ignore[operator]


def test_get_lba_status(h: Harness) -> None:
    cdb = bytes([0x9E, 0x12]) + (10).to_bytes(8, "big") + (24).to_bytes(4, "big") + b"\0\0"
    d = bytes(h.run(cdb).data)
    assert d == struct.pack(">I4xQIB3x", 20, 10, BLOCKS - 10, 0)
    cdb = bytes([0x9E, 0x12]) + BLOCKS.to_bytes(8, "big") + (24).to_bytes(4, "big") + b"\0\0"
    assert h.sense(cdb) == LBA_RANGE


def ssu(start: bool, loej: bool, power: int = 0) -> bytes:
    return bytes([0x1B, 0, 0, 0, power << 4 | (2 if loej else 0) | (1 if start else 0), 0])


def test_start_stop_unit_not_removable(h: Harness) -> None:
    assert h.run(ssu(True, False)).status == Status.GOOD
    assert h.run(ssu(False, False)).status == Status.GOOD
    assert h.sense(ssu(False, True)) == INVALID_FIELD
    assert h.run(ssu(False, True, power=1)).status == Status.GOOD


def test_eject_load_and_prevent(h: Harness) -> None:
    h.lu.update_params({"removable": "1"})
    assert h.run([0x12, 0, 0, 0, 36, 0]).data[1] & 0x80
    assert h.run(ssu(False, True)).status == Status.GOOD
    assert h.sense([0] * 6) == (0x02, 0x3A, 0x00)
    assert h.sense(cdb10(0x28, 0, 1)) == (0x02, 0x3A, 0x00)
    assert h.run(ssu(True, True)).status == Status.GOOD
    assert h.run([0] * 6).status == Status.GOOD
    assert h.run([0x1E, 0, 0, 0, 1, 0]).status == Status.GOOD
    assert h.lu.prevent_removal
    n2 = h.new_nexus("n2")
    assert h.sense(ssu(False, True), nexus=n2) == (0x05, 0x53, 0x02)
    assert h.sense(ssu(True, True)) == (0x05, 0x53, 0x02)  # nor load
    assert h.run([0x1E, 0, 0, 0, 0, 0]).status == Status.GOOD
    assert h.run(ssu(False, True), nexus=n2).status == Status.GOOD


@pytest.mark.parametrize("how", ["nexus_loss", "lu_reset", "warm", "cold"])
def test_prevent_cleared(h: Harness, how: str) -> None:
    h.lu.update_params({"removable": "1"})
    h.run([0x1E, 0, 0, 0, 1, 0])
    if how == "nexus_loss":
        h.target.remove_nexus(h.nexus)
    elif how == "lu_reset":
        h.tmf(tmf.Function.LOGICAL_UNIT_RESET, 1 << 48)
    else:
        h.tmf(tmf.Function.TARGET_COLD_RESET if how == "cold" else tmf.Function.TARGET_WARM_RESET)
    assert not h.lu.prevent_removal


def test_orwrite(h: Harness) -> None:
    h.run(cdb10(0x2A, 4, 2), b"\x0f" * (2 * BS))
    assert h.run(cdb16(0x8B, 4, 2), b"\xf0" * BS + b"\x01" * BS).status == Status.GOOD
    assert bytes(h.run(cdb10(0x28, 4, 2)).data) == b"\xff" * BS + b"\x0f" * BS
    assert h.sense(cdb16(0x8B, BLOCKS, 1), bytes(BS)) == LBA_RANGE
    assert h.sense(cdb16(0x8B, 0, 1, 0x20), bytes(BS)) == INVALID_FIELD
    assert h.run(cdb16(0x8B, 0, 0)).status == Status.GOOD


def test_get_lba_status_reports_holes_of_a_thin_rdwr_lu(tmp_path: object) -> None:
    import asyncio
    import os

    from pytgt.scsi import ItNexus, ScsiTarget, ScsiTask, create_lu
    from pytgt.stores import open_store

    path = os.path.join(str(tmp_path), "thin.img")
    with open(path, "wb") as f:
        f.truncate(8 << 20)

    async def main() -> list[bytes]:
        store = open_store("rdwr", path)
        t = ScsiTarget("iqn.x", 1)
        t.add_lu(create_lu("disk", 1, store, tid=1, params={"thin_provisioning": "1"}))
        n = ItNexus("n", "iqn.i")
        t.add_nexus(n)
        await t.execute(ScsiTask(n, 1, bytes(6)))
        await t.execute(ScsiTask(n, 1, cdb10(0x2A, 4096, 2048), data_out=b"x" * (1 << 20)))
        out = []
        for lba in (0, 4096, 6144):
            cdb = bytes([0x9E, 0x12]) + lba.to_bytes(8, "big") + (24).to_bytes(4, "big") + b"\0\0"
            out.append(bytes((await t.execute(ScsiTask(n, 1, cdb))).data))
        await store.close()
        return out

    got = [struct.unpack_from(">QIB", d, 8) for d in asyncio.run(main())]
    assert got == [(0, 4096, 1), (4096, 2048, 0), (6144, 16384 - 6144, 1)]
