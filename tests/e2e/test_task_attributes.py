"""SAM-5 task attributes over the wire (SAM-5 8.6, RFC 7143 11.3.1 ATTR).

``pytgt.initiator`` sends commands with each attribute to an in-process target whose
store holds every write until the test lets it go, and the test checks what the
store was asked to do and the order in which the commands completed.
"""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path
from typing import Any

from pytgt.initiator import InitiatorSession
from pytgt.initiator.scsi import ScsiResult
from pytgt.iscsi.constants import TmfFunction
from tests.e2e.util import clear_unit_attentions, login, run, target

SIMPLE, ORDERED, HEAD_OF_QUEUE, ACA = 1, 2, 3, 4
BS = 512
TUR = bytes(6)


class HoldingStore:
    """Wraps the LU's store: each write waits until ``release()``; starts are logged."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.started: list[str] = []
        self._gate = asyncio.Event()
        self._arrived = asyncio.Condition()

    def __getattr__(self, name: str) -> Any:
        if name in ("read_nowait", "write_nowait"):
            raise AttributeError(name)  # every write goes through write() and waits
        return getattr(self.inner, name)

    async def write(self, offset: int, data: Any) -> None:
        async with self._arrived:
            self.started.append(f"write {offset // BS}")
            self._arrived.notify_all()
        await self._gate.wait()
        await self.inner.write(offset, data)

    async def read(self, offset: int, length: int) -> bytes:
        self.started.append(f"read {offset // BS}")
        data: bytes = await self.inner.read(offset, length)
        return data

    async def writes_started(self, n: int) -> None:
        async with self._arrived:
            await self._arrived.wait_for(
                lambda: sum(s.startswith("write") for s in self.started) >= n)

    def release(self) -> None:
        self._gate.set()

    def hold(self) -> None:
        self._gate.clear()


def write10(lba: int, fua: bool = False) -> bytes:
    return struct.pack(">BBIBHB", 0x2A, 0x08 if fua else 0, lba, 0, 1, 0)


def read10(lba: int) -> bytes:
    return struct.pack(">BBIBHB", 0x28, 0, lba, 0, 1, 0)


async def _session(tmp_path: Path, body: Any) -> None:
    async with target(tmp_path, bstype="memory") as (daemon, port):
        lu = daemon.registry.targets[1].scsi.luns[1]
        store = lu.store = HoldingStore(lu.store)
        s = await login(port)
        try:
            await clear_unit_attentions(s)
            await body(s, store, port)
        finally:
            await s.logout()


def _send(s: InitiatorSession, name: str, done: list[str], cdb: bytes, attr: int,
          data: bytes = b"", read: int = 0) -> asyncio.Task[ScsiResult]:
    task = asyncio.ensure_future(s.execute(1, cdb, data, read, attr=attr))
    task.add_done_callback(lambda t: done.append(name))
    return task


async def _held_write(s: InitiatorSession, store: HoldingStore, name: str,
                      done: list[str]) -> asyncio.Task[ScsiResult]:
    """A SIMPLE WRITE of block 0 that the store is holding once this returns."""
    a = _send(s, name, done, write10(0), SIMPLE, b"a" * BS)
    await store.writes_started(1)
    return a


async def _until(cond: Any) -> None:
    """Until ``cond()`` holds: the target answers over loopback in a few loop turns."""
    for _ in range(10000):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


def test_ordered_waits_for_older_tasks_and_holds_younger_ones(tmp_path: Path) -> None:
    async def body(s: InitiatorSession, store: HoldingStore, port: int) -> None:
        done: list[str] = []
        a = await _held_write(s, store, "A simple write", done)
        b = _send(s, "B ordered write", done, write10(1), ORDERED, b"b" * BS)
        c = _send(s, "C simple read", done, read10(1), SIMPLE, read=BS)
        d = _send(s, "D head of queue", done, TUR, HEAD_OF_QUEUE)
        await _until(lambda: done)
        assert done == ["D head of queue"]  # it jumped the queue; A still holds B and C
        assert store.started == ["write 0"]
        store.release()
        results = await asyncio.gather(a, b, c, d)
        assert [r.status for r in results] == [0, 0, 0, 0]
        assert done == ["D head of queue", "A simple write", "B ordered write",
                        "C simple read"]
        assert store.started == ["write 0", "write 1", "read 1"]
        assert results[2].data == b"b" * BS  # C ran after the ORDERED write, not before

    run(lambda: _session(tmp_path, body))


def test_simple_tasks_overtake_each_other(tmp_path: Path) -> None:
    async def body(s: InitiatorSession, store: HoldingStore, port: int) -> None:
        done: list[str] = []
        a = await _held_write(s, store, "A write", done)
        b = _send(s, "B read", done, read10(7), SIMPLE, read=BS)
        await _until(lambda: done)
        assert done == ["B read"]  # QUEUE ALGORITHM MODIFIER 1: unrestricted reordering
        store.release()
        assert (await a).status == 0 and (await b).status == 0

    run(lambda: _session(tmp_path, body))


def test_restricted_reordering_runs_simple_tasks_in_order(tmp_path: Path) -> None:
    async def body(s: InitiatorSession, store: HoldingStore, port: int) -> None:
        sense = await s.execute(1, bytes((0x1A, 0x08, 0x0A, 0, 255, 0)), read_length=255)
        page = bytearray(sense.data[4:])  # MODE SENSE(6) control page, DBD=1
        assert page[0] & 0x3F == 0x0A and page[3] >> 4 == 1
        page[0] &= 0x3F
        page[3] = 0  # QUEUE ALGORITHM MODIFIER 0: restricted reordering
        params = bytes(4) + bytes(page)
        select = bytes((0x15, 0x10, 0, 0, len(params), 0))
        assert (await s.execute(1, select, params)).status == 0
        done: list[str] = []
        a = await _held_write(s, store, "A write", done)
        b = _send(s, "B read", done, read10(0), SIMPLE, read=BS)
        await s.nop(b"sync", immediate=False)  # answered after B was delivered (CmdSN)
        assert done == [] and store.started == ["write 0"]
        store.release()
        assert (await b).data == b"a" * BS and done == ["A write", "B read"]
        assert (await a).status == 0

    run(lambda: _session(tmp_path, body))


def test_aca_attribute_is_refused(tmp_path: Path) -> None:
    async def body(s: InitiatorSession, store: HoldingStore, port: int) -> None:
        r = await s.execute(1, TUR, attr=ACA)
        # NormACA=0 in the standard INQUIRY data: no ACA condition can exist
        assert (r.status, r.sense_key, r.asc, r.ascq) == (2, 0x05, 0x24, 0x00)
        inquiry = await s.execute(1, bytes((0x12, 0, 0, 0, 96, 0)), read_length=96)
        assert not inquiry.data[3] & 0x20
        assert (await s.execute(1, TUR, attr=SIMPLE)).status == 0

    run(lambda: _session(tmp_path, body))


def test_abort_task_of_a_dormant_task(tmp_path: Path) -> None:
    async def body(s: InitiatorSession, store: HoldingStore, port: int) -> None:
        done: list[str] = []
        a = await _held_write(s, store, "A write", done)
        itt = s.conn.send_command(1, write10(1), b"b" * BS, attr=ORDERED)
        b = asyncio.ensure_future(s._call(itt, 10))
        c = _send(s, "C simple read", done, read10(1), SIMPLE, read=BS)
        await s.nop(b"sync", immediate=False)  # B and C are in the task set, dormant
        assert store.started == ["write 0"]
        assert await s.abort_task(1, itt) == 0  # FUNCTION COMPLETE
        b.cancel()  # no status for a task its own nexus aborted
        store.release()
        assert (await a).status == 0
        assert (await c).data == bytes(BS)  # B never ran: block 1 still reads zeroes
        assert store.started == ["write 0", "read 1"]

    run(lambda: _session(tmp_path, body))


def test_clear_task_set_from_another_initiator_ends_commands_task_aborted(
        tmp_path: Path) -> None:
    async def body(s: InitiatorSession, store: HoldingStore, port: int) -> None:
        done: list[str] = []
        a = await _held_write(s, store, "A write", done)
        other = await login(port, initiator_name="iqn.2026-11.org.pytgt:other")
        try:
            await clear_unit_attentions(other)
            assert await other.task_management(TmfFunction.CLEAR_TASK_SET, lun=1) == 0
            r = await a
            assert r.status == 0x40  # TASK ABORTED: TAS=1 in the Control mode page
            store.release()
            assert (await s.execute(1, read10(0), read_length=BS)).data == bytes(BS)
            assert (await s.execute(1, TUR)).status == 0  # and no unit attention
        finally:
            await other.logout()

    run(lambda: _session(tmp_path, body))
