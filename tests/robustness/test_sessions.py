"""Initiators that vanish and come back: reinstatement keeps the right state; sessions
killed with I/O stuck and a TMF pending free everything."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest

from pytgt.initiator import InitiatorSession
from pytgt.initiator.scsi import cdb_read16, cdb_write16
from pytgt.iscsi.constants import TmfFunction
from tests.robustness.test_store_faults import faulty_target
from tests.robustness.util import INITIATOR, login, ready, run

RESERVATION_CONFLICT = 0x18
WRITE_EXCLUSIVE = 1


def pr_out(service_action: int, key: int, sa_key: int = 0, pr_type: int = 0) -> tuple[bytes,
                                                                                     bytes]:
    """PERSISTENT RESERVE OUT (SPC-4 6.16): (CDB, 24-byte parameter list)."""
    cdb = bytes([0x5F, service_action, pr_type, 0, 0]) + struct.pack(">I", 24) + bytes(1)
    return cdb, struct.pack(">QQ8x", key, sa_key)


async def pr(s: InitiatorSession, action: int, key: int, sa_key: int = 0,
             pr_type: int = 0) -> Any:
    cdb, data = pr_out(action, key, sa_key, pr_type)
    return await s.execute(1, cdb, data)


def vanish(s: InitiatorSession) -> None:
    """Drop the TCP connection without a logout (the initiator host crashed)."""
    s.abort()


def test_reinstated_session_keeps_its_persistent_reservation() -> None:
    async def body() -> None:
        async with faulty_target() as (d, port, _store):
            isid = 0x80_1234_5600_00
            a = await login(port, isid=isid)
            await ready(a)
            assert (await pr(a, 0, 0, 0xA1)).status == 0  # REGISTER key A1
            assert (await pr(a, 1, 0xA1, 0, WRITE_EXCLUSIVE)).status == 0  # RESERVE
            vanish(a)
            # The same initiator (same ISID) comes back: session reinstatement (6.3.5).
            a2 = await login(port, isid=isid)
            await ready(a2)
            await a2.write16(1, 0, b"\x01" * 4096)
            b = await login(port, initiator_name=f"{INITIATOR}-other")
            await ready(b)
            r = await b.execute(1, cdb_write16(0, 8), b"\x02" * 4096)
            assert r.status == RESERVATION_CONFLICT
            assert await b.read16(1, 0, 8) == b"\x01" * 4096  # reads allowed (WE)
            assert (await pr(a2, 2, 0xA1, 0, WRITE_EXCLUSIVE)).status == 0  # RELEASE
            assert (await pr(a2, 0, 0xA1, 0)).status == 0  # unregister
            await b.write16(1, 0, b"\x02" * 4096)
            for s in (a2, b):
                await s.logout()
            assert not d.service.sessions.sessions

    run(body())


@pytest.mark.parametrize("tmf", [TmfFunction.ABORT_TASK, TmfFunction.LOGICAL_UNIT_RESET])
def test_killed_with_io_stuck_and_a_tmf_pending(tmf: int) -> None:
    """Several sessions of one initiator vanish while their I/O is stuck in the store and a
    TMF is on its way; everything is freed and a new session of the same ISID works."""
    async def body() -> None:
        async with faulty_target() as (d, port, store):
            store.set_fault("stuck", ops="read", delay=0.5, offset=0, length=4096)
            isids = [0x80_1111_0000_00 + (i << 16) for i in range(4)]
            for isid in isids:
                s = await login(port, isid=isid)
                await ready(s)
                itt = s.conn.send_command(1, cdb_read16(0, 8), read_length=4096)
                s.protocol.transmit()
                s._expect(itt)  # never awaited: the session dies first
                for _ in range(100):  # until the read is inside the store (bounded)
                    if store.stats.in_flight:
                        break
                    await s.nop(b"x")
                s.conn.send_task_management(tmf, 1, itt if tmf == TmfFunction.ABORT_TASK
                                            else 0xFFFFFFFF)
                s.protocol.transmit()
                vanish(s)
            deadline = asyncio.get_running_loop().time() + 10
            while store.stats.in_flight or d.service.sessions.sessions:
                assert asyncio.get_running_loop().time() < deadline, "not cleaned up"
                await asyncio.sleep(0.05)  # waiting on a condition, bounded
            store.clear()
            s = await login(port, isid=isids[0])  # same ISID again: a clean session
            await ready(s)
            await s.write16(1, 8, b"\x33" * 4096)
            assert await s.read16(1, 8, 8) == b"\x33" * 4096
            await s.logout()
            assert not d.service.sessions.sessions
            lu = d.registry.targets[1].scsi.luns[1]
            assert not getattr(lu, "nexuses", None)

    run(body())
