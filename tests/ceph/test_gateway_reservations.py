"""Reservations through two real gateways (two pytgtd processes, one RBD image).

- A Windows-failover-style sequence with ``pytgt.initiator``: two cluster nodes, one
  per gateway, register, one reserves, the other reads the reservation and preempts;
  the loser gets RESERVATION CONFLICT at once.
- libiscsi's multipath suites with one URL per gateway (MultipathIO, PR IN, PR OUT,
  COMPARE AND WRITE): zero failures.
- A gateway that stops answering (SIGSTOP) is fenced by the survivor, which completes
  the PREEMPT; woken up, the fenced gateway serves no data.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import struct
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from ceph_dev_cluster import DevCluster

from pytgt.initiator import Initiator, InitiatorSession
from tests.ceph.conftest import need_bindings
from tests.ceph.gateways import IQN, Gateways, two_gateways
from tests.interop.test_conformance_full import iscsi_test_cu

K1, K2 = 0x1111_0000_0000_0001, 0x2222_0000_0000_0002
WE_RO = 5  # WRITE EXCLUSIVE - REGISTRANTS ONLY, what failover clusters use
GOOD, CHECK_CONDITION, RESERVATION_CONFLICT = 0x00, 0x02, 0x18


def prout(action: int, key: int = 0, sa_key: int = 0, ptype: int = 0) -> tuple[bytes, bytes]:
    cdb = bytes([0x5F, action, ptype]) + bytes(2) + (24).to_bytes(4, "big") + b"\0"
    return cdb, struct.pack(">QQ4xBx2x", key, sa_key, 0)


def prin(action: int) -> bytes:
    return bytes([0x5E, action]) + bytes(5) + (1024).to_bytes(2, "big") + b"\0"


def write10(lba: int, data: bytes) -> bytes:
    return bytes([0x2A, 0]) + lba.to_bytes(4, "big") + b"\0" + (len(data) // 512).to_bytes(
        2, "big") + b"\0"


async def ready(s: InitiatorSession) -> None:
    for _ in range(8):
        if (await s.test_unit_ready(1, timeout=20)).ok:
            return
    raise AssertionError("unit attentions do not end")


async def out(s: InitiatorSession, *args: int) -> int:
    cdb, data = prout(*args)
    return (await s.execute(1, cdb, data_out=data, timeout=30)).status


async def keys(s: InitiatorSession) -> list[int]:
    d = (await s.execute(1, prin(0), read_length=1024, timeout=30)).data
    n = struct.unpack_from(">I", d, 4)[0]
    return sorted(struct.unpack_from(">Q", d, 8 + i)[0] for i in range(0, n, 8))


@asynccontextmanager
async def reserved_by_node1(gw: Gateways) -> AsyncIterator[tuple[InitiatorSession,
                                                                 InitiatorSession]]:
    """Two cluster nodes, node1 through gateway A and node2 through B, both registered
    (K1, K2); node1 holds a WRITE EXCLUSIVE - REGISTRANTS ONLY reservation."""
    async with Initiator.login(gw.a.host, gw.a.port, target=IQN,
                               initiator_name="iqn.2026-12.test:node1") as n1, \
            Initiator.login(gw.b.host, gw.b.port, target=IQN,
                            initiator_name="iqn.2026-12.test:node2") as n2:
        await ready(n1)
        await ready(n2)
        assert await out(n1, 0, 0, K1) == GOOD  # REGISTER
        assert await out(n2, 0, 0, K2) == GOOD
        assert await out(n1, 1, K1, 0, WE_RO) == GOOD  # RESERVE
        yield n1, n2


def test_failover_cluster_sequence_across_gateways(tmp_path: Path, ceph: DevCluster,
                                                   rbd_image: Callable[..., str]) -> None:
    need_bindings()
    with two_gateways(tmp_path, ceph, rbd_image("32M")) as gw:
        async def body() -> None:
            async with reserved_by_node1(gw) as (n1, n2):
                # node2 reads the reservation through the other gateway
                d = (await n2.execute(1, prin(1), read_length=1024, timeout=30)).data
                assert struct.unpack_from(">IQ", d, 4) == (16, K1)
                assert d[21] & 0x0F == WE_RO
                # node2 preempts node1 (the arbitration of a failover cluster)
                assert await out(n2, 4, K2, K1, WE_RO) == GOOD
                r = await n1.execute(1, write10(0, bytes(512)), data_out=bytes(512),
                                     timeout=30)
                assert r.status == CHECK_CONDITION and r.sense_key == 0x06  # PREEMPTED
                r = await n1.execute(1, write10(0, bytes(512)), data_out=bytes(512),
                                     timeout=30)
                assert r.status == RESERVATION_CONFLICT
                assert await keys(n1) == [K2] and await keys(n2) == [K2]
                r = await n2.execute(1, write10(0, b"n2" * 256), data_out=b"n2" * 256,
                                     timeout=30)
                assert r.status == GOOD
                assert await out(n2, 3, K2) == GOOD  # CLEAR, for the next test

        asyncio.run(asyncio.wait_for(body(), 120))


@pytest.mark.parametrize("suite", ["ALL.MultipathIO", "ALL.PrinReadKeys",
                                   "ALL.PrinServiceactionRange", "ALL.PrinReportCapabilities",
                                   "ALL.ProutRegister", "ALL.ProutReserve",
                                   "ALL.ProutClear", "ALL.ProutPreempt",
                                   "ALL.CompareAndWrite"])
def test_libiscsi_multipath_suites(pair: Gateways, suite: str) -> None:
    run = iscsi_test_cu(suite, *pair.urls, timeout=900)
    logs = "".join(line for line in pair.a.log + pair.b.log if "pytgt.iscsi" not in line)
    assert run.run > 0, run.report()
    assert run.passed == run.run and not run.not_implemented, run.report() + logs


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, ceph: DevCluster) -> Iterator[Gateways]:
    """One pair of gateways for the libiscsi suites (each suite cleans up after itself)."""
    need_bindings()
    ceph.rbd("create", "--size", "64M", "rbd/multipath")
    with two_gateways(tmp_path_factory.mktemp("pair"), ceph, "rbd/multipath") as gw:
        yield gw


def test_a_frozen_gateway_is_fenced_and_serves_nothing(tmp_path: Path, ceph: DevCluster,
                                                      rbd_image: Callable[..., str]) -> None:
    need_bindings()
    with two_gateways(tmp_path, ceph, rbd_image("32M")) as gw:
        async def body() -> None:
            async with reserved_by_node1(gw) as (n1, n2):
                os.kill(gw.a.proc.pid, signal.SIGSTOP)  # gateway A stops answering
                try:
                    assert await out(n2, 4, K2, K1, WE_RO) == GOOD  # fences A
                finally:
                    os.kill(gw.a.proc.pid, signal.SIGCONT)
                fenced = re.search(r"gateway tpgt=1 \((\S+)\) does not answer",
                                   "".join(gw.b.log))
                assert fenced, "".join(gw.b.log[-20:])
                assert fenced.group(1) in ceph.ceph("osd", "blocklist", "ls")
                # A wakes up fenced: its reads of the image fail, they never return data
                r = await n1.execute(1, bytes([0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0]),
                                     read_length=4096, timeout=60)
                assert r.status != GOOD
                # B is the only gateway left: now active/optimized, and it says so
                n2.unit_attentions.clear()
                await n2.test_unit_ready(1, timeout=30)
                assert any(sense[12:14] == b"\x2a\x06" for sense in n2.unit_attentions)
                assert await keys(n2) == [K2]

        asyncio.run(asyncio.wait_for(body(), 180))
