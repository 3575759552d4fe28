"""The fault-injecting store alone, and the SCSI answers to its faults on a LU."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Iterator

import pytest

from pytgt.scsi import ItNexus, ScsiTarget, ScsiTask, Status, create_lu
from pytgt.scsi.sense import decode_sense
from pytgt.stores import StoreError, StoreIOError, available, open_store
from pytgt.stores.faulty import FaultPlan, FaultyStore
from pytgt.stores.memory import MemoryStore

BS = 512
RAW_LUN1 = 1 << 48


def run(coro: object) -> object:
    return asyncio.run(asyncio.wait_for(coro, 10))  # type: ignore[arg-type]


def test_registered_as_a_backing_store() -> None:
    assert "faulty" in available()
    store = open_store("faulty", "1M", bsopts="fault=eio,after=2,ops=read+write")
    assert isinstance(store, FaultyStore)
    assert store.size == 1 << 20
    assert store.plan == FaultPlan("eio", frozenset({"read", "write"}), after=2)


def test_inner_rdwr(tmp_path: object) -> None:
    path = f"{tmp_path}/f.img"
    with open(path, "wb") as f:
        f.truncate(8192)
    store = FaultyStore.open(path, bsopts="fault=enospc,ops=write")
    assert store.inner.name == "rdwr"

    async def body() -> None:
        with pytest.raises(StoreIOError) as exc:
            await store.write(0, b"x" * 512)
        assert exc.value.errno == errno.ENOSPC
        assert len(await store.read(0, 512)) == 512
        await store.close()

    run(body())


@pytest.mark.parametrize("bsopts", ["fault=nope", "ops=read+bogus", "after=-1", "after=x",
                                    "fault=truncate", "colour=blue", "inner=null,size=1M"])
def test_bad_options(bsopts: str) -> None:
    with pytest.raises(StoreError):
        FaultyStore.open("1M", bsopts=bsopts)


def test_after_and_count() -> None:
    store = FaultyStore(MemoryStore(4096), FaultPlan("eio", frozenset({"read"}), after=2, count=2))

    async def body() -> list[bool]:
        out = []
        for _ in range(6):
            try:
                await store.read(0, 512)
                out.append(True)
            except StoreIOError as exc:
                assert exc.errno == errno.EIO
                out.append(False)
        await store.write(0, b"\1" * 512)  # writes are not hit
        return out

    assert run(body()) == [True, True, False, False, True, True]
    assert store.stats.faults == 2 and store.stats.in_flight == 0


def test_range_truncate_and_short() -> None:
    store = FaultyStore(MemoryStore(8192))

    async def body() -> None:
        store.set_fault("eio", offset=4096, length=512)
        await store.read(0, 4096)
        with pytest.raises(StoreIOError):
            await store.read(4000, 100)
        store.set_fault("truncate", at=2048)
        await store.write(1024, b"a" * 1024)
        with pytest.raises(StoreIOError) as exc:
            await store.write(1536, b"a" * 1024)
        assert exc.value.errno == errno.ENXIO
        await store.flush()
        store.set_fault("short", ops="read")
        assert len(await store.read(0, 1024)) == 512
        store.clear()
        assert len(await store.read(0, 1024)) == 1024

    run(body())


def test_update_params_changes_nothing_on_error() -> None:
    store = FaultyStore(MemoryStore(4096))
    store.update_params({"fault": "eio", "ops": "write"})
    assert store.plan.fault == "eio" and store.plan.ops == {"write"}
    with pytest.raises(ValueError):
        store.update_params({"fault": "enospc", "after": "many"})
    assert store.plan.fault == "eio"
    store.update_params({"fault": "none"})
    assert store.plan.fault == "none" and store.plan.ops == {"write"}


def test_delay_is_cancellable() -> None:
    store = FaultyStore(MemoryStore(4096), FaultPlan("slow", delay=30))

    async def body() -> None:
        t = asyncio.ensure_future(store.read(0, 512))
        await asyncio.sleep(0)
        assert store.stats.delayed == 1
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

    run(body())


# -- the SCSI answers to store faults (sense for that command only) ---------------------
@pytest.fixture
def lu_target() -> Iterator[tuple[ScsiTarget, ItNexus, FaultyStore, asyncio.AbstractEventLoop]]:
    loop = asyncio.new_event_loop()
    store = FaultyStore(MemoryStore(64 * BS))
    target = ScsiTarget("iqn.2026-11.test:faulty", tid=1)
    target.add_lu(create_lu("disk", 1, store, tid=1, bstype="faulty"))
    nexus = ItNexus("n", "iqn.2026-11.test:i", initiator_port="iqn.2026-11.test:i,i,0x1")
    target.add_nexus(nexus)
    yield target, nexus, store, loop
    loop.close()


def _cdb16(op: int, lba: int, n: int, flags: int = 0) -> bytes:
    return bytes([op, flags]) + lba.to_bytes(8, "big") + n.to_bytes(4, "big") + b"\0\0"


def _sense(target: ScsiTarget, nexus: ItNexus, loop: asyncio.AbstractEventLoop, cdb: bytes,
           data: bytes = b"") -> tuple[int, int, int] | None:
    while True:
        r = loop.run_until_complete(target.execute(ScsiTask(nexus, RAW_LUN1, cdb, data_out=data)))
        if r.status == Status.GOOD:
            return None
        key = decode_sense(r.sense)
        if key[0] != 6:  # unit attentions from the power on: skip
            return key


READ16, WRITE16, SYNC16 = 0x88, 0x8A, 0x91


@pytest.mark.parametrize(("fault", "op", "cdb", "expected"), [
    ("eio", "read", _cdb16(READ16, 0, 1), (0x03, 0x11, 0x00)),
    ("eio", "write", _cdb16(WRITE16, 0, 1), (0x03, 0x0C, 0x00)),
    ("enospc", "write", _cdb16(WRITE16, 0, 1), (0x07, 0x27, 0x07)),
    ("erofs", "write", _cdb16(WRITE16, 0, 1), (0x07, 0x27, 0x00)),
    ("eio", "flush", _cdb16(SYNC16, 0, 0), (0x03, 0x0C, 0x00)),
])
def test_fault_sense_then_recovery(lu_target: tuple, fault: str, op: str, cdb: bytes,
                                   expected: tuple[int, int, int]) -> None:
    target, nexus, store, loop = lu_target
    data = b"\xab" * BS if cdb[0] == WRITE16 else b""
    store.set_fault(fault, ops=op, count=1)
    assert _sense(target, nexus, loop, cdb, data) == expected
    assert _sense(target, nexus, loop, _cdb16(READ16, 1, 1)) is None  # other commands fine
    assert _sense(target, nexus, loop, cdb, data) is None  # count=1: fault cleared


def test_short_read_from_store_is_not_sent_as_good(lu_target: tuple) -> None:
    target, nexus, store, loop = lu_target
    store.set_fault("short", ops="read")
    r = loop.run_until_complete(target.execute(ScsiTask(nexus, RAW_LUN1, _cdb16(READ16, 0, 4))))
    while r.status == Status.CHECK_CONDITION and decode_sense(r.sense)[0] == 6:
        r = loop.run_until_complete(
            target.execute(ScsiTask(nexus, RAW_LUN1, _cdb16(READ16, 0, 4))))
    # Either the data the store returned (a residual for the transport to report) or an
    # error; never an exception.
    assert r.status in (Status.GOOD, Status.CHECK_CONDITION)


def test_plan_changes_through_management_update() -> None:
    """``pytgtadm --op new --bstype faulty --bsopts ...`` then ``--op update --params``."""
    from pytgt.config.model import Registry
    from pytgt.daemon.mgmt import Management

    async def body() -> None:
        m = Management(Registry(), portals=[("127.0.0.1", 3260)], control_port=0)
        for req in ({"mode": "target", "op": "new", "tid": 1, "targetname": "iqn.2026-11.t:f"},
                    {"mode": "logicalunit", "op": "new", "tid": 1, "lun": 1, "bstype": "faulty",
                     "backing_store": "1M", "bsopts": "size=1M,fault=eio,ops=read"},
                    {"mode": "logicalunit", "op": "update", "tid": 1, "lun": 1,
                     "params": "fault=enospc,ops=write,readonly=0"}):
            rc, out = await m.handle(req)
            assert rc == 0, out
        store = m.registry.targets[1].scsi.luns[1].store
        assert store.plan.fault == "enospc" and store.plan.ops == {"write"}
        rc, _ = await m.handle({"mode": "logicalunit", "op": "update", "tid": 1, "lun": 1,
                                "params": "fault=melt"})
        assert rc != 0 and store.plan.fault == "enospc"
        await store.close()

    run(body())


def test_quiesce_waits_for_a_stuck_write_that_outlived_its_caller() -> None:
    store = FaultyStore(MemoryStore(4096), FaultPlan("stuck", ops=frozenset({"write"}),
                                                     delay=0.2))

    async def body() -> None:
        t = asyncio.ensure_future(store.write(0, b"A" * 512))
        while not store.stats.delayed:  # until the store holds it
            await asyncio.sleep(0)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert bytes(await store.inner.read(0, 1)) == b"\0"  # not landed yet
        await store.quiesce()
        assert bytes(await store.inner.read(0, 512)) == b"A" * 512
        assert store.stats.in_flight == 0

    run(body())
