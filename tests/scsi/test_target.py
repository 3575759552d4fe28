"""ScsiTarget: LUN decoding, expected Data-Out, TMFs, create_lu and LU settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytgt.scsi import ScsiTarget, Status, create_lu, tmf
from pytgt.scsi.lun import decode_lun, encode_lun
from pytgt.scsi.sense import build_sense, decode_sense
from pytgt.stores import open_store
from pytgt.stores.memory import MemoryStore
from pytgt.stores.null import NullStore

from .conftest import BS, RAW_LUN1, Harness, cdb6, cdb10, cdb12, cdb16


@pytest.mark.parametrize(("raw", "lun"), [
    (0, 0), (1 << 48, 1), (255 << 48, 255), (0x4101 << 48, 0x101), (5, 5), (0xC000 << 48, -1),
])
def test_decode_lun(raw: int, lun: int) -> None:
    assert decode_lun(raw) == lun


@pytest.mark.parametrize("lun", [0, 1, 255, 256, 16383])
def test_lun_round_trip(lun: int) -> None:
    assert decode_lun(int.from_bytes(encode_lun(lun), "big")) == lun


def test_plain_lun_numbers_work_too(h: Harness) -> None:
    assert h.run(cdb10(0x28, 0, 1), lun=1).status == Status.GOOD


@pytest.mark.parametrize(("cdb", "length"), [
    (cdb6(0x0A, 0, 4), 4 * BS),
    (cdb10(0x2A, 0, 8), 8 * BS),
    (cdb12(0xAA, 0, 3), 3 * BS),
    (cdb16(0x8A, 0, 2), 2 * BS),
    (cdb10(0x2E, 0, 2), 2 * BS),
    (cdb10(0x41, 0, 9), BS),
    (bytes([0x15, 0x10, 0, 0, 28, 0]), 28),
    (bytes([0x55, 0x10, 0, 0, 0, 0, 0, 1, 2, 0]), 258),
    (cdb10(0x28, 0, 8), 0),
    (bytes([0x12, 0, 0, 0, 96, 0]), 0),
])
def test_expected_data_out(h: Harness, cdb: bytes, length: int) -> None:
    assert h.target.expected_data_out(RAW_LUN1, cdb) == length


def test_expected_data_out_unknown(h: Harness) -> None:
    assert h.target.expected_data_out(RAW_LUN1, bytes([0xEE] + [0] * 9)) is None
    assert h.target.expected_data_out(9 << 48, cdb10(0x2A, 0, 1)) is None
    assert h.target.expected_data_out(RAW_LUN1, bytes([0x2A, 0])) is None


def test_tmf_response_codes(h: Harness) -> None:
    no_lun = tmf.ServiceResponse.INCORRECT_LOGICAL_UNIT_NUMBER
    done = tmf.ServiceResponse.FUNCTION_COMPLETE
    assert h.tmf(tmf.Function.LOGICAL_UNIT_RESET, 9 << 48) == no_lun
    assert h.tmf(tmf.Function.CLEAR_TASK_SET, 9 << 48) == no_lun
    assert h.tmf(tmf.Function.ABORT_TASK_SET, 9 << 48) == no_lun
    assert h.tmf(tmf.Function.CLEAR_TASK_SET, RAW_LUN1) == done
    assert h.tmf(tmf.Function.TARGET_WARM_RESET) == done


def test_target_reset_unit_attentions(h: Harness) -> None:
    h.lu.mode.wce = False
    h.tmf(tmf.Function.TARGET_WARM_RESET)
    assert h.sense([0] * 6) == (0x06, 0x29, 0x00)
    assert h.lu.mode.wce
    h.tmf(tmf.Function.TARGET_COLD_RESET)
    assert h.sense([0] * 6, lun=0) == (0x06, 0x29, 0x01)


def test_clear_task_set_leaves_no_unit_attention(h: Harness) -> None:
    # TAS=1 (control mode page): other nexuses' aborted commands end with TASK ABORTED
    # (tests/scsi/test_task_set.py) instead of COMMANDS CLEARED BY ANOTHER INITIATOR.
    n2 = h.new_nexus("n2")
    h.tmf(tmf.Function.CLEAR_TASK_SET, RAW_LUN1)
    assert h.run([0] * 6).status == Status.GOOD
    assert h.run([0] * 6, nexus=n2).status == Status.GOOD


def test_reset_ua_replaces_older_ones(h: Harness) -> None:
    h.lu.ua_add(h.nexus.key, (0x3F, 0x0E))
    h.tmf(tmf.Function.LOGICAL_UNIT_RESET, RAW_LUN1)
    assert h.sense([0] * 6) == (0x06, 0x29, 0x03)
    assert h.run([0] * 6).status == Status.GOOD


def test_remove_lun0_brings_back_controller() -> None:
    t = ScsiTarget("iqn.x", 3)
    assert t.luns[0].device_type == "controller" and t.luns[0].path == "None"
    assert t.luns[0].bstype == "null" and t.luns[0].size == 0
    t.remove_lu(0)
    assert t.luns[0].device_type == "controller"
    with pytest.raises(KeyError):
        t.remove_lu(5)


def test_lu_defaults() -> None:
    lu = create_lu("disk", 2, NullStore(1 << 30), tid=7, path="/dev/null", bstype="null")
    assert (lu.vendor_id, lu.product_id, lu.product_rev) == ("IET", "VIRTUAL-DISK", "0001")
    assert lu.scsi_id == "IET     00070002" and lu.scsi_sn == "beaf72"
    assert (lu.online, lu.removable, lu.prevent_removal, lu.readonly, lu.swp) == (
        True, False, False, False, False)
    assert (lu.thin_provisioning, lu.sense_format, lu.size, lu.block_size) == (
        True, 0, 1 << 30, 512)  # the null store is sparse: thin by default
    assert (lu.path, lu.bstype, lu.bsoflags, lu.device_type) == ("/dev/null", "null", "", "disk")


def test_thin_provisioning_defaults_to_the_store_being_sparse(tmp_path: Path) -> None:
    """A sparse file is thin (LBPME) by default, memory is not; ``auto`` restores it."""
    path = tmp_path / "disk.img"
    path.write_bytes(b"")
    os.truncate(path, 1 << 20)
    file_lu = create_lu("disk", 1, open_store("rdwr", str(path)), tid=1, path=str(path))
    memory_lu = create_lu("disk", 2, MemoryStore(1 << 20), tid=1)
    assert file_lu.thin_provisioning and not memory_lu.thin_provisioning
    file_lu.update_params({"thin_provisioning": "0"})
    assert not file_lu.thin_provisioning
    file_lu.update_params({"thin_provisioning": "auto"})
    assert file_lu.thin_provisioning
    memory_lu.update_params({"thin_provisioning": "auto"})
    assert not memory_lu.thin_provisioning


@pytest.mark.parametrize(("args", "kwargs", "match"), [
    (("bogus", 1, None), {}, "device type"),
    (("tape", 1, None), {}, "backing store"),
    (("disk", 1, None), {}, "backing store"),
    (("disk", 1, MemoryStore(4096)), {"block_size": 1000}, "block size"),
    (("disk", 1, MemoryStore(4096)), {"params": {"bogus": "1"}}, "unknown"),
    (("disk", 1, MemoryStore(4096)), {"params": {"readonly": "maybe"}}, "readonly"),
])
def test_create_lu_errors(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        create_lu(*args, tid=1, **kwargs)


def test_update_params() -> None:
    lu = create_lu("disk", 1, MemoryStore(4096), tid=1, block_size=4096,
                   params={"vendor_id": "ACME", "readonly": "1"})
    assert lu.vendor_id == "ACME" and lu.readonly and lu.num_blocks == 1
    lu.update_params({"product_id": "DISK", "online": "0", "sense_format": "1",
                      "removable": "yes"})
    assert lu.product_id == "DISK" and not lu.online and lu.sense_format == 1 and lu.removable
    with pytest.raises(ValueError):
        lu.update_params({"vendor_id": "TOO-LONG-VENDOR"})
    with pytest.raises(ValueError):
        lu.update_params({"product_rev": "1", "block_size": "512"})
    assert lu.product_rev == "0001"  # nothing applied on error
    with pytest.raises(ValueError):
        create_lu("disk", 1, NullStore(4096), tid=1).update_params({"sense_format": "2"})


def test_offline_lu_is_not_ready(h: Harness) -> None:
    h.lu.update_params({"online": "0"})
    assert h.sense([0] * 6) == (0x02, 0x3A, 0x00)
    assert h.run([0x12, 0, 0, 0, 36, 0]).status == Status.GOOD
    d = bytes(h.run([0x03, 0, 0, 0, 18, 0]).data)
    assert decode_sense(d) == (0x02, 0x3A, 0x00)


def test_build_sense_fixed_and_descriptor() -> None:
    assert build_sense(5, 0x24, 0, information=0x1234) == bytes(
        [0xF0, 0, 5, 0, 0, 0x12, 0x34, 10, 0, 0, 0, 0, 0x24, 0, 0, 0, 0, 0])
    assert build_sense(0xE, 0x1D, 0, descriptor=True, information=7) == bytes(
        [0x72, 0xE, 0x1D, 0, 0, 0, 0, 12, 0, 0x0A, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 7])


def test_ordered_task_waits_for_earlier_and_blocks_later(h: Harness) -> None:
    import asyncio

    from pytgt.scsi import ScsiTask, TaskAttribute

    events: list[str] = []
    gate = asyncio.Event()
    orig = h.store.read

    async def read(offset: int, length: int) -> bytes:
        events.append(f"start {offset // BS}")
        if offset == 0:
            await gate.wait()
        events.append(f"end {offset // BS}")
        return await orig(offset, length)

    h.store.read = read  # type: ignore[method-assign]

    def task(lba: int, attr: TaskAttribute) -> ScsiTask:
        return ScsiTask(h.nexus, RAW_LUN1, cdb10(0x28, lba, 1), attribute=attr)

    async def main() -> list[int]:
        first = asyncio.ensure_future(h.target.execute(task(0, TaskAttribute.SIMPLE)))
        await asyncio.sleep(0)
        ordered = asyncio.ensure_future(h.target.execute(task(1, TaskAttribute.ORDERED)))
        later = asyncio.ensure_future(h.target.execute(task(2, TaskAttribute.SIMPLE)))
        hoq = asyncio.ensure_future(h.target.execute(task(3, TaskAttribute.HEAD_OF_QUEUE)))
        for _ in range(5):
            await asyncio.sleep(0)
        assert events == ["start 0", "start 3", "end 3"]
        gate.set()
        results = await asyncio.gather(first, ordered, later, hoq)
        return [r.status for r in results]

    assert h.loop.run_until_complete(main()) == [Status.GOOD] * 4
    assert events[3:] == ["end 0", "start 1", "end 1", "start 2", "end 2"]
    assert not h.lu.task_set.tasks and not h.lu.task_set.blockers


def test_fixed_sense_information_too_large_is_not_valid() -> None:
    s = build_sense(0xE, 0x1D, 0, information=1 << 40)
    assert s[0] == 0x70 and s[3:7] == bytes(4)
    assert build_sense(0xE, 0x1D, 0, descriptor=True, information=1 << 40)[12:20] == \
        (1 << 40).to_bytes(8, "big")
