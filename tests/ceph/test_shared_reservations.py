"""Reservations kept in RADOS (stores/rbd_shared.py), at the SCSI layer: two gateways,
each a ScsiTarget with its own portal group tag and its own RADOS client, serve one LU.

What a host would see through two paths: a PREEMPT through gateway B fences the
registrant on gateway A before B answers, A's nexus gets REGISTRATIONS PREEMPTED, both
gateways answer PR IN and REPORT TARGET PORT GROUPS alike, and a gateway that stopped
answering is blocklisted by the survivor.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from ceph_dev_cluster import DevCluster

from pytgt.scsi import ItNexus, ScsiResult, ScsiTarget, ScsiTask, Status, create_lu
from pytgt.scsi.lu import LogicalUnit
from pytgt.scsi.pr import PrType
from pytgt.scsi.sense import decode_sense
from pytgt.stores.memory import MemoryStore
from pytgt.stores.rbd_shared import RadosSharedState
from tests.ceph.conftest import need_bindings

RAW_LUN1 = 1 << 48
K_A, K_B = 0xAAAA, 0xBBBB
_ids = itertools.count(1)


def prout(action: int, key: int = 0, sa_key: int = 0, ptype: int = 0) -> tuple[bytes, bytes]:
    cdb = bytes([0x5F, action, ptype]) + bytes(2) + (24).to_bytes(4, "big") + b"\0"
    return cdb, struct.pack(">QQ4xBx2x", key, sa_key, 0)


def prin(action: int) -> bytes:
    return bytes([0x5E, action]) + bytes(5) + (1024).to_bytes(2, "big") + b"\0"


WRITE10 = bytes([0x2A, 0, 0, 0, 0, 8, 0, 0, 1, 0])
RTPG = bytes([0xA3, 0x0A]) + bytes(4) + (1024).to_bytes(4, "big") + bytes(2)


@dataclass
class Gateway:
    """One gateway: a target with portal group ``tpgt`` and the shared LU."""

    tpgt: int
    cluster: Any
    target: ScsiTarget
    lu: LogicalUnit
    shared: RadosSharedState

    def nexus(self, name: str) -> ItNexus:
        initiator = f"iqn.2026-12.test:{name}"
        port = f"{initiator},i,0x23d000000001"
        n = ItNexus(f"{port},tpgt={self.tpgt}", initiator, initiator_port=port,
                    relative_port=self.tpgt, port_group=self.tpgt)
        self.target.add_nexus(n)
        return n

    async def run(self, nexus: ItNexus, cdb: bytes, data: bytes = b"") -> ScsiResult:
        return await self.target.execute(ScsiTask(nexus, RAW_LUN1, cdb, data_out=data))

    async def ready(self, nexus: ItNexus) -> None:
        """Consume the unit attentions of login (TEST UNIT READY until GOOD)."""
        for _ in range(8):
            if (await self.run(nexus, bytes(6))).status == Status.GOOD:
                return
        raise AssertionError("unit attentions do not end")

    async def out(self, nexus: ItNexus, *args: int) -> int:
        return (await self.run(nexus, *prout(*args))).status


async def logged_in(a: Gateway, b: Gateway, name_b: str) -> tuple[ItNexus, ItNexus]:
    """Host "node1" through gateway A and ``name_b`` through B, unit attentions taken."""
    host_a, host_b = a.nexus("node1"), b.nexus(name_b)
    await a.ready(host_a)
    await b.ready(host_b)
    return host_a, host_b


async def _open(ceph: DevCluster, image_id: str, tpgt: int,
                heartbeat: float = 5.0) -> Gateway:
    import rados

    def connect() -> Any:
        cluster = rados.Rados(conffile=str(ceph.conf))
        cluster.connect(timeout=20)
        return cluster

    cluster = await asyncio.to_thread(connect)
    target = ScsiTarget("iqn.2026-12.org.pytgt:shared", tid=1, home_group=tpgt)
    lu = create_lu("disk", 1, MemoryStore(1 << 20), tid=1, path="mem", bstype="memory")
    target.add_lu(lu)
    shared = RadosSharedState(cluster, "rbd", image_id, lu, tpgt, notify_timeout=2.0,
                              heartbeat=heartbeat)
    lu.shared = shared
    await shared.start()
    return Gateway(tpgt, cluster, target, lu, shared)


@asynccontextmanager
async def gateways(ceph: DevCluster, *tags: int,
                   heartbeat: float = 5.0) -> AsyncIterator[list[Gateway]]:
    image_id = f"test{next(_ids)}"
    opened: list[Gateway] = []
    try:
        for tag in tags:
            opened.append(await _open(ceph, image_id, tag, heartbeat))
        yield opened
    finally:
        for gw in opened:
            if gw.shared._ioctx is not None:
                await gw.shared.stop()
            await asyncio.to_thread(gw.cluster.shutdown)


def run(ceph: DevCluster, body: Callable[[DevCluster], Coroutine[Any, Any, None]]) -> None:
    need_bindings()
    asyncio.run(asyncio.wait_for(body(ceph), 120))


def keys(result: ScsiResult) -> tuple[int, list[int]]:
    d = bytes(result.data)
    gen, n = struct.unpack_from(">II", d)
    return gen, sorted(struct.unpack_from(">Q", d, 8 + i)[0] for i in range(0, n, 8))


def test_preempt_through_b_fences_the_registrant_on_a(ceph: DevCluster) -> None:
    async def body(ceph: DevCluster) -> None:
        async with gateways(ceph, 1, 2) as (a, b):
            host_a, host_b = await logged_in(a, b, "node2")
            assert await a.out(host_a, 0, 0, K_A) == Status.GOOD  # REGISTER
            assert await b.out(host_b, 0, 0, K_B) == Status.GOOD
            assert await a.out(host_a, 1, K_A, 0, PrType.WRITE_EXCLUSIVE) == Status.GOOD
            # Both paths answer PR IN alike.
            assert keys(await a.run(host_a, prin(0))) == (2, [K_A, K_B])
            assert keys(await b.run(host_b, prin(0))) == (2, [K_A, K_B])
            res_b = bytes((await b.run(host_b, prin(1))).data)
            assert res_b == bytes((await a.run(host_a, prin(1))).data)
            assert struct.unpack_from(">Q", res_b, 8)[0] == K_A
            # The loser's writes conflict on its own gateway.
            assert (await b.run(host_b, WRITE10, bytes(512))).status == \
                Status.RESERVATION_CONFLICT
            # PREEMPT through B: when it answers, A has already dropped K_A.
            assert await b.out(host_b, 4, K_B, K_A, PrType.WRITE_EXCLUSIVE) == Status.GOOD
            assert [r.key for r in a.lu.pr.registrations.values()] == [K_B]
            first = await a.run(host_a, WRITE10, bytes(512))
            assert first.status == Status.CHECK_CONDITION
            assert decode_sense(first.sense) == (0x06, 0x2A, 0x05)  # REGISTRATIONS PREEMPTED
            assert (await a.run(host_a, WRITE10, bytes(512))).status == \
                Status.RESERVATION_CONFLICT
            assert (await b.run(host_b, WRITE10, bytes(512))).status == Status.GOOD
            assert keys(await a.run(host_a, prin(0))) == (3, [K_B])

    run(ceph, body)


def test_spc2_reserve_holds_across_gateways(ceph: DevCluster) -> None:
    async def body(ceph: DevCluster) -> None:
        async with gateways(ceph, 1, 2) as (a, b):
            host_a, host_b = await logged_in(a, b, "node2")
            reserve6, release6 = bytes([0x16, 0, 0, 0, 0, 0]), bytes([0x17, 0, 0, 0, 0, 0])
            assert (await a.run(host_a, reserve6)).status == Status.GOOD
            assert (await b.run(host_b, reserve6)).status == Status.RESERVATION_CONFLICT
            assert (await b.run(host_b, WRITE10, bytes(512))).status == \
                Status.RESERVATION_CONFLICT
            assert (await a.run(host_a, WRITE10, bytes(512))).status == Status.GOOD
            assert (await a.run(host_a, release6)).status == Status.GOOD
            assert (await b.run(host_b, WRITE10, bytes(512))).status == Status.GOOD
            assert (await b.run(host_b, reserve6)).status == Status.GOOD

    run(ceph, body)


def test_both_gateways_report_the_same_port_groups(ceph: DevCluster) -> None:
    async def body(ceph: DevCluster) -> None:
        async with gateways(ceph, 1, 2) as (a, b):
            host_a, host_b = await logged_in(a, b, "node1")
            via_a = bytes((await a.run(host_a, RTPG)).data)
            assert via_a == bytes((await b.run(host_b, RTPG)).data)
            # group 1 active/optimized (preferred), group 2 active/non-optimized
            assert via_a[4] == 0x80 and via_a[6:8] == b"\0\x01"
            assert via_a[16] == 0x01 and via_a[18:20] == b"\0\x02"
            # Gateway 1 leaves: gateway 2 becomes active/optimized and says so.
            await a.shared.stop()
            after = await b.run(host_b, RTPG)
            assert decode_sense(after.sense) == (0x06, 0x2A, 0x06)
            data = bytes((await b.run(host_b, RTPG)).data)
            assert struct.unpack_from(">I", data)[0] == 12 and data[4] == 0x80  # one group
            assert data[6:8] == b"\0\x02"

    run(ceph, body)


def test_a_gateway_that_stops_answering_is_fenced(ceph: DevCluster) -> None:
    async def body(ceph: DevCluster) -> None:
        async with gateways(ceph, 1, 2) as (a, c):
            host_a = a.nexus("node1")
            await a.ready(host_a)
            c_addr = c.shared._me.addr if c.shared._me else ""
            # Gateway 2 "dies": its watch is gone, it never left the list.
            await asyncio.to_thread(c.shared._close)
            assert await a.out(host_a, 0, 0, K_A) == Status.GOOD
            assert [g.tpgt for g in a.shared.gateways] == [1]
            listed = ceph.ceph("osd", "blocklist", "ls")
            assert c_addr and c_addr in listed, listed

    run(ceph, body)


def test_stpg_making_one_group_optimized_demotes_the_owner(ceph: DevCluster) -> None:
    """What Linux's scsi_dh_alua sends through a non-optimized path when dm-multipath
    fails over to it: group 2 active/optimized, nothing said of group 1. Group 2 is then
    the one owner on both gateways (group 1 active/non-optimized), so the host does not
    spread its I/O over both gateways once group 1's path comes back."""
    async def body(ceph: DevCluster) -> None:
        async with gateways(ceph, 1, 2) as (a, b):
            host_a, host_b = await logged_in(a, b, "node1")
            stpg = bytes([0xA4, 0x0A]) + bytes(4) + (8).to_bytes(4, "big") + bytes(2)
            params = bytes(4) + bytes([0x00, 0, 0, 2])  # group 2: active/optimized
            assert (await b.run(host_b, stpg, params)).status == Status.GOOD
            told = await a.run(host_a, RTPG)
            assert decode_sense(told.sense) == (0x06, 0x2A, 0x06)
            for gw, host in ((a, host_a), (b, host_b)):
                data = bytes((await gw.run(host, RTPG)).data)
                if not data:  # this nexus's unit attention first
                    data = bytes((await gw.run(host, RTPG)).data)
                assert data[6:8] == b"\0\x01" and data[4] & 0x0F == 0x01  # 1: AN
                assert data[18:20] == b"\0\x02" and data[16] & 0x0F == 0x00  # 2: AO
                assert data[21] == 0x01  # group 2 altered by SET TARGET PORT GROUPS

    run(ceph, body)


def test_a_dead_owner_nobody_asks_anything_is_found_by_the_heartbeat(
        ceph: DevCluster) -> None:
    """Hosts only read and write (no reservation to change): the survivor finds the dead
    owner by itself, fences it, becomes active/optimized and tells its nexuses."""
    async def body(ceph: DevCluster) -> None:
        async with gateways(ceph, 1, 2, heartbeat=0.5) as (a, b):
            host_b = b.nexus("node1")
            await b.ready(host_b)
            a_addr = a.shared._me.addr if a.shared._me else ""
            await asyncio.to_thread(a.shared._close)  # the owner dies, still listed
            deadline = asyncio.get_running_loop().time() + 30
            while [g.tpgt for g in b.shared.gateways] != [2]:
                assert asyncio.get_running_loop().time() < deadline, "A never dropped"
                await asyncio.sleep(0.1)
            assert a_addr and a_addr in ceph.ceph("osd", "blocklist", "ls")
            told = await b.run(host_b, RTPG)
            assert decode_sense(told.sense) == (0x06, 0x2A, 0x06)
            data = bytes((await b.run(host_b, RTPG)).data)
            assert data[4] == 0x80 and data[6:8] == b"\0\x02"  # B: active/optimized

    run(ceph, body)


def test_the_heartbeat_fences_nobody_while_the_owner_answers(ceph: DevCluster) -> None:
    async def body(ceph: DevCluster) -> None:
        async with gateways(ceph, 1, 2, heartbeat=0.2) as (a, b):
            host_b = b.nexus("node1")
            await b.ready(host_b)
            pings = 0
            receive = a.shared._receive

            def counting(data: bytes) -> None:
                nonlocal pings
                pings += b'"ping"' in data
                receive(data)

            a.shared._receive = counting  # type: ignore[method-assign]
            deadline = asyncio.get_running_loop().time() + 20
            while pings < 3:  # B pings its owner A, which answers
                assert asyncio.get_running_loop().time() < deadline, "no pings from B"
                await asyncio.sleep(0.05)
            assert [g.tpgt for g in b.shared.gateways] == [1, 2]
            assert (await b.run(host_b, RTPG)).status == Status.GOOD  # no UA: no change
            assert bytes((await b.run(host_b, RTPG)).data)[4] == 0x80  # A still optimized

    run(ceph, body)


def test_a_restarted_gateway_fences_its_crashed_predecessor(ceph: DevCluster) -> None:
    async def body(ceph: DevCluster) -> None:
        async with gateways(ceph, 1, 2) as (a, old):
            old_addr = old.shared._me.addr if old.shared._me else ""
            await asyncio.to_thread(old.shared._close)  # crashed: still listed
            new = await _open(ceph, a.shared.object.removeprefix("pytgt.lu."), 2)
            try:
                assert old_addr in ceph.ceph("osd", "blocklist", "ls")
                assert sorted(g.tpgt for g in a.shared.gateways) == [1, 2]
                assert [g.addr for g in a.shared.gateways if g.tpgt == 2] == \
                    [new.shared._me.addr if new.shared._me else None]
            finally:
                await new.shared.stop()
                await asyncio.to_thread(new.cluster.shutdown)

    run(ceph, body)


def test_set_target_port_groups_through_one_gateway_holds_on_both(ceph: DevCluster) -> None:
    async def body(ceph: DevCluster) -> None:
        async with gateways(ceph, 1, 2) as (a, b):
            host_a, host_b = await logged_in(a, b, "node1")
            # group 1 active/non-optimized, group 2 active/optimized (SPC-4 6.44)
            stpg = bytes([0xA4, 0x0A]) + bytes(4) + (12).to_bytes(4, "big") + bytes(2)
            params = bytes(4) + bytes([0x01, 0, 0, 1]) + bytes([0x00, 0, 0, 2])
            assert (await a.run(host_a, stpg, params)).status == Status.GOOD
            via_b = await b.run(host_b, RTPG)
            assert decode_sense(via_b.sense) == (0x06, 0x2A, 0x06)  # told on the other path
            via_b = await b.run(host_b, RTPG)
            assert bytes(via_b.data) == bytes((await a.run(host_a, RTPG)).data)
            data = bytes(via_b.data)
            assert data[4] & 0x0F == 0x01 and data[9] == 0x01  # group 1: AN, by STPG
            assert data[16] & 0x0F == 0x00 and data[21] == 0x01  # group 2: AO, by STPG

    run(ceph, body)
