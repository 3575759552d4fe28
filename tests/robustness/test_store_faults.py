"""Backing-store faults seen through iSCSI: the right sense for that command only, task
management while I/O is stuck, other sessions unaffected, the LU fine once it clears."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from pytgt.initiator import InitiatorSession
from pytgt.initiator.scsi import cdb_read16, cdb_synchronize_cache16, cdb_write16
from pytgt.iscsi.constants import TmfFunction
from pytgt.scsi.sense import decode_sense
from pytgt.stores.faulty import FaultyStore
from tests.robustness.daemon_proc import IQN
from tests.robustness.util import login, ready, run

BS = 512


@asynccontextmanager
async def faulty_target(bsopts: str = "") -> AsyncIterator[tuple[Any, int, FaultyStore]]:
    from pytgt.daemon.server import Daemon

    async with Daemon([("127.0.0.1", 0)]) as d:
        for req in ({"mode": "target", "op": "new", "tid": 1, "targetname": IQN},
                    {"mode": "logicalunit", "op": "new", "tid": 1, "lun": 1, "bstype": "faulty",
                     "backing_store": "16M", "bsopts": f"size=16M{',' + bsopts if bsopts else ''}"},
                    {"mode": "target", "op": "bind", "tid": 1, "initiator_address": "ALL"}):
            rc, out = await d.management.handle(req)
            assert rc == 0, out
        store = d.registry.targets[1].scsi.luns[1].store
        assert isinstance(store, FaultyStore)
        yield d, d.portals[0][1], store


async def session(port: int) -> InitiatorSession:
    s = await login(port)
    await ready(s)
    return s


def sense(r: Any) -> tuple[int, int, int] | None:
    return decode_sense(r.sense) if r.status == 2 else None


@pytest.mark.parametrize(("fault", "ops", "cdb", "expected"), [
    ("eio", "read", cdb_read16(0, 8), (0x03, 0x11, 0x00)),
    ("eio", "write", cdb_write16(0, 8), (0x03, 0x0C, 0x00)),
    ("enospc", "write", cdb_write16(0, 8), (0x07, 0x27, 0x07)),
    ("eio", "flush", cdb_synchronize_cache16(), (0x03, 0x0C, 0x00)),
    ("truncate", "read+write", cdb_read16(30000, 8), (0x03, 0x11, 0x00)),
])
def test_fault_answers_that_command_only(fault: str, ops: str, cdb: bytes,
                                         expected: tuple[int, int, int]) -> None:
    async def body() -> None:
        async with faulty_target() as (_d, port, store):
            s = await session(port)
            data = bytes(range(256)) * 16 if cdb[0] == 0x8A else b""
            read = 4096 if cdb[0] == 0x88 else 0
            store.set_fault(fault, ops=ops, at=8 << 20 if fault == "truncate" else None)
            r = await s.execute(1, cdb, data, read)
            assert sense(r) == expected
            # The same session goes on: other blocks, other commands are fine.
            await s.write16(1, 100, b"\x5a" * 4096) if "write" not in ops else None
            assert (await s.execute(1, cdb_read16(200, 1), read_length=BS)).status in (0, 2)
            store.clear()  # the fault goes away: the LU works again
            await s.write16(1, 0, b"\xa5" * 4096, fua=True)
            assert await s.read16(1, 0, 8) == b"\xa5" * 4096
            await s.synchronize_cache(1)
            await s.logout()

    run(body())


def test_write_fault_reaches_the_initiator_over_r2t() -> None:
    """EIO on a solicited (R2T) write: the Data-Out is drained, then the sense is sent."""
    async def body() -> None:
        async with faulty_target() as (_d, port, store):
            s = await login(port, immediate_data=False, initial_r2t=True)
            await ready(s)
            store.set_fault("eio", ops="write", count=1)
            r = await s.execute(1, cdb_write16(8, 512), bytes(256 * 1024))
            assert sense(r) == (0x03, 0x0C, 0x00)
            await s.write16(1, 8, bytes(256 * 1024))
            await s.logout()

    run(body())


async def _timed(coro: Any) -> tuple[Any, float]:
    t0 = time.monotonic()
    out = await coro
    return out, time.monotonic() - t0


@pytest.mark.parametrize("fault", ["slow", "stuck"])
@pytest.mark.parametrize("tmf", [TmfFunction.ABORT_TASK, TmfFunction.LOGICAL_UNIT_RESET])
def test_tmf_answered_and_others_served_while_the_store_is_stuck(tmf: int, fault: str) -> None:
    delay = 2.0

    async def body() -> None:
        async with faulty_target() as (_d, port, store):
            a, b = await session(port), await session(port)
            # reads of the first 4 KiB stall for 2 s; everything else is fast
            store.set_fault(fault, ops="read", delay=delay, offset=0, length=4096)
            itt = a.conn.send_command(1, cdb_read16(0, 8), read_length=4096)
            stuck = asyncio.ensure_future(a._call(itt, 10))
            await asyncio.sleep(0)  # let the command go out
            for _ in range(100):  # until the store holds it (a condition, bounded)
                if store.stats.delayed:
                    break
                await a.nop(b"x")
            assert store.stats.delayed == 1
            ref = {"ref_itt": itt} if tmf == TmfFunction.ABORT_TASK else {}
            response, took = await _timed(a.task_management(tmf, lun=1, timeout=delay * 3,
                                                            **ref))
            assert response in (0, 1)  # FUNCTION COMPLETE (or TASK DOES NOT EXIST: done)
            assert took < delay * 2
            # The other session is served at once meanwhile.
            data, fast = await _timed(b.read16(1, 100, 8))
            assert fast < delay / 2
            stuck.cancel()  # no response for a task the TMF aborted (RFC 7143 11.5.1)
            await _store_idle(store, delay * 3)
            store.clear()
            await ready(a)
            await a.write16(1, 0, b"\x11" * 4096)
            assert await a.read16(1, 0, 8) == b"\x11" * 4096
            assert await b.read16(1, 0, 8) == b"\x11" * 4096
            await a.logout()
            await b.logout()

    run(body())


async def _still_usable(s: Any, fill: bytes) -> None:
    """After the fault: the session reads back what it writes now, then logs out."""
    await ready(s)
    await s.write16(1, 0, fill * 4096)
    assert await s.read16(1, 0, 8) == fill * 4096
    await s.logout()


async def _store_idle(store: FaultyStore, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while store.stats.in_flight:
        assert time.monotonic() < deadline, "store I/O still in flight"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("fault", [
    "slow",  # an asyncio wait inside the store: the command is cancelled
    "stuck",  # a pwrite in a pool thread: uncancellable, the TMF waits for it to end
])
@pytest.mark.parametrize("tmf", [TmfFunction.ABORT_TASK, TmfFunction.LOGICAL_UNIT_RESET])
def test_aborted_write_does_not_land_after_the_tmf_response(tmf: int, fault: str) -> None:
    delay = 1.0

    async def body() -> None:
        async with faulty_target() as (_d, port, store):
            s = await session(port)
            store.set_fault(fault, ops="write", delay=delay, count=1)
            itt = s.conn.send_command(1, cdb_write16(0, 8), b"A" * 4096)
            old = asyncio.ensure_future(s._call(itt, 10))
            for _ in range(100):
                if store.stats.delayed:
                    break
                await s.nop(b"x")
            assert store.stats.delayed == 1  # WRITE A is inside the store
            ref = {"ref_itt": itt} if tmf == TmfFunction.ABORT_TASK else {}
            assert await s.task_management(tmf, lun=1, timeout=delay * 3, **ref) == 0
            old.cancel()
            await ready(s)
            await s.write16(1, 0, b"B" * 4096)  # the initiator moves on: WRITE B
            await _store_idle(store, delay * 3)
            assert await s.read16(1, 0, 8) == b"B" * 4096, "the aborted WRITE A landed later"
            await s.logout()

    run(body())


async def _stuck_write(s: InitiatorSession, store: FaultyStore, delay: float) -> Any:
    """A WRITE of b"A" to LBA 0 that sits in the store (a stuck pwrite) for ``delay`` s."""
    store.set_fault("stuck", ops="write", delay=delay, count=1)
    itt = s.conn.send_command(1, cdb_write16(0, 8), b"A" * 4096)
    old = asyncio.ensure_future(s._call(itt, 10))
    for _ in range(100):
        if store.stats.delayed:
            break
        await s.nop(b"x")
    assert store.stats.delayed == 1
    return itt, old


@pytest.mark.parametrize("tmf", [TmfFunction.ABORT_TASK_SET, TmfFunction.CLEAR_TASK_SET,
                                 TmfFunction.TARGET_WARM_RESET,
                                 TmfFunction.TARGET_COLD_RESET])
def test_every_aborting_tmf_waits_for_the_store(tmf: int) -> None:
    """The same wait as ABORT TASK / LU RESET: no store I/O of the aborted WRITE is left
    when the response arrives (a cold reset then drops the session, RFC 7143 11.5.1)."""
    async def body() -> None:
        async with faulty_target() as (_d, port, store):
            s = await session(port)
            _, old = await _stuck_write(s, store, 0.5)
            assert await s.task_management(tmf, lun=1, timeout=5) == 0
            assert store.stats.in_flight == 0  # the WRITE ended before the response
            old.cancel()
            await asyncio.gather(old, return_exceptions=True)
            if tmf == TmfFunction.TARGET_COLD_RESET:
                return
            await _still_usable(s, b"B")

    run(body())


def test_other_sessions_io_flows_while_a_tmf_waits_for_stuck_io() -> None:
    delay = 1.5

    async def body() -> None:
        async with faulty_target() as (_d, port, store):
            a, b = await session(port), await session(port)
            _, old = await _stuck_write(a, store, delay)
            reset = asyncio.ensure_future(
                a.task_management(TmfFunction.LOGICAL_UNIT_RESET, lun=1, timeout=delay * 3))
            t0 = time.monotonic()
            await ready(b)  # the reset's unit attention
            for lba in range(64, 64 + 8 * 16, 8):  # same LU, same store, meanwhile
                await b.write16(1, lba, b"\x5b" * 4096)
                assert await b.read16(1, lba, 8) == b"\x5b" * 4096
            assert time.monotonic() - t0 < delay / 2
            assert not reset.done()  # still waiting for the stuck WRITE
            assert await reset == 0
            assert store.stats.in_flight == 0
            old.cancel()
            await ready(a)
            assert await a.read16(1, 64, 8) == b"\x5b" * 4096
            await a.logout()
            await b.logout()

    run(body())


def test_lu_reset_waits_for_another_sessions_stuck_write() -> None:
    """LU RESET aborts every session's tasks on the LU: the response waits for the other
    session's WRITE too, which then cannot overwrite what the resetting one writes next."""
    async def body() -> None:
        async with faulty_target() as (_d, port, store):
            a, b = await session(port), await session(port)
            _, old = await _stuck_write(b, store, 0.5)
            assert await a.task_management(TmfFunction.LOGICAL_UNIT_RESET, lun=1,
                                           timeout=5) == 0
            assert store.stats.in_flight == 0
            old.cancel()
            await ready(a)
            await a.write16(1, 0, b"B" * 4096)
            assert await a.read16(1, 0, 8) == b"B" * 4096
            await a.logout()
            await b.logout()

    run(body())


def test_tmf_waits_for_stuck_io_in_bounded_time() -> None:
    """I/O stuck longer than ``tmf_wait_timeout``: FUNCTION REJECTED (the initiator then
    escalates), in bounded time, and the session goes on once the store recovers."""
    async def body() -> None:
        async with faulty_target() as (d, port, store):
            d.service.options.tmf_wait_timeout = 0.3
            s = await session(port)
            itt, old = await _stuck_write(s, store, 2.0)
            response, took = await _timed(s.task_management(
                TmfFunction.ABORT_TASK, lun=1, ref_itt=itt, timeout=5))
            assert response == 255 and 0.3 <= took < 1.5
            old.cancel()
            await _store_idle(store, 5)
            await _still_usable(s, b"C")

    run(body())


def test_fault_plan_changed_through_the_control_plane() -> None:
    """``pytgtadm --op update --mode logicalunit --params fault=eio,ops=read``."""
    async def body() -> None:
        async with faulty_target() as (d, port, store):
            s = await session(port)
            rc, out = await d.management.handle({"mode": "logicalunit", "op": "update",
                                                 "tid": 1, "lun": 1,
                                                 "params": "fault=eio,ops=read,count=1"})
            assert rc == 0, out
            assert sense(await s.execute(1, cdb_read16(0, 1), read_length=BS)) == (3, 0x11, 0)
            assert (await s.execute(1, cdb_read16(0, 1), read_length=BS)).status == 0
            await s.logout()

    run(body())


@pytest.mark.parametrize("how", ["truncate", "delete"])
def test_rdwr_file_truncated_or_deleted_under_a_live_lu(tmp_path: Any, how: str) -> None:
    """tgt's bs_rdwr keeps serving its open descriptor: reads past the new end of file
    return zeros, writes extend the file again; nothing crashes, the LU stays usable."""
    import os

    from pytgt.daemon.server import Daemon

    image = tmp_path / "disk.img"
    with open(image, "wb") as f:
        f.truncate(8 << 20)

    async def body() -> None:
        async with Daemon([("127.0.0.1", 0)]) as d:
            for req in ({"mode": "target", "op": "new", "tid": 1, "targetname": IQN},
                        {"mode": "logicalunit", "op": "new", "tid": 1, "lun": 1,
                         "backing_store": str(image)},
                        {"mode": "target", "op": "bind", "tid": 1, "initiator_address": "ALL"}):
                rc, out = await d.management.handle(req)
                assert rc == 0, out
            s = await session(d.portals[0][1])
            await s.write16(1, 1000, b"\x77" * 4096, fua=True)
            if how == "truncate":
                os.truncate(image, 0)
            else:
                os.unlink(image)
            r = await s.execute(1, cdb_read16(1000, 8), read_length=4096)
            assert r.status in (0, 2)
            if r.status == 0:
                assert r.data in (b"\x77" * 4096, bytes(4096))
            await s.write16(1, 1000, b"\x78" * 4096, fua=True)
            assert await s.read16(1, 1000, 8) == b"\x78" * 4096
            await s.logout()

    run(body())
