"""The initiator end to end against the project's in-process target (127.0.0.1)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from pytgt.initiator import ConnectionLost, Initiator, LoginFailed, ScsiError
from pytgt.iscsi.constants import TmfFunction, TmfResponse

from .util import INITIATOR, IQN, SIZE, admin, clear_unit_attentions, login, run, target


def test_discovery(tmp_path: Path) -> None:
    async def body() -> None:
        async with target(tmp_path) as (d, port):
            async with Initiator("127.0.0.1", port, initiator_name=INITIATOR) as ini:
                found = await ini.discover()
            assert found == [(IQN, [f"127.0.0.1:{port},1"])]
    run(body)


def test_discovery_hides_targets_whose_acl_refuses_us(tmp_path: Path) -> None:
    async def body() -> None:
        async with target(tmp_path) as (d, port):
            hidden = IQN + ".hidden"
            await admin(d, {"mode": "target", "op": "new", "tid": 2, "targetname": hidden})
            await admin(d, {"mode": "target", "op": "bind", "tid": 2,
                            "initiator_address": "192.0.2.1"})
            async with Initiator("127.0.0.1", port, initiator_name=INITIATOR) as ini:
                names = [name for name, _ in await ini.discover()]
            assert names == [IQN]
            with pytest.raises(LoginFailed) as info:
                await login(port, target=hidden)
            assert info.value.status_class == 2  # 0x0202 authorization failure (or 0x0203)
    run(body)


def test_login_to_unknown_target_fails_0203(tmp_path: Path) -> None:
    async def body() -> None:
        async with target(tmp_path) as (d, port):
            with pytest.raises(LoginFailed) as info:
                await login(port, target=IQN + ".nope")
            assert info.value.status == 0x0203
    run(body)


def test_login_logout_and_negotiated(tmp_path: Path) -> None:
    async def body() -> None:
        async with target(tmp_path) as (d, port):
            s = await login(port, max_recv_data_segment_length=65536)
            async with s:
                assert s.negotiated["HeaderDigest"] == "None"
                assert s.params.max_recv_data_segment_length == 65536
                declared = int(s.negotiated["MaxRecvDataSegmentLength"])  # the target's
                assert s.params.max_xmit_data_segment_length == declared
                assert s.conn.tsih != 0
            assert s.closed
    run(body)


def test_inquiry_capacity_report_luns(tmp_path: Path) -> None:
    async def body() -> None:
        async with target(tmp_path) as (d, port), await login(port) as s:
            inq = await s.inquiry(1)
            assert inq.peripheral_device_type == 0 and inq.peripheral_qualifier == 0
            assert 1 in await s.report_luns()
            await clear_unit_attentions(s)
            cap = await s.read_capacity16(1)
            assert (cap.block_size, cap.size) == (512, SIZE)
    run(body)


NEGOTIATIONS = {
    "imm-r2t": dict(immediate_data=True, initial_r2t=True),
    "noimm-r2t": dict(immediate_data=False, initial_r2t=True),
    "imm-unsolicited": dict(immediate_data=True, initial_r2t=False),
    "noimm-unsolicited": dict(immediate_data=False, initial_r2t=False),
    "small-mrdsl": dict(max_recv_data_segment_length=4096, max_burst_length=16384,
                        first_burst_length=8192, initial_r2t=False),
    "digests": dict(header_digest=True, data_digest=True),
}
TARGET_PARAMS = {
    "small-mrdsl": {"MaxRecvDataSegmentLength": "4096", "InitialR2T": "No"},
    "imm-unsolicited": {"InitialR2T": "No"},
    "noimm-unsolicited": {"InitialR2T": "No"},
}


@pytest.mark.parametrize("name", list(NEGOTIATIONS))
def test_write_read_back_1mib(tmp_path: Path, name: str) -> None:
    data = os.urandom(1 << 20)

    async def body() -> None:
        async with (target(tmp_path, params=TARGET_PARAMS.get(name)) as (d, port),
                    await login(port, **NEGOTIATIONS[name]) as s):
            n = s.params
            if name == "digests":
                assert n.header_digest and n.data_digest
            if name == "small-mrdsl":
                assert n.max_xmit_data_segment_length == 4096
                assert n.max_recv_data_segment_length == 4096
            if "unsolicited" in name:
                assert not n.initial_r2t
            await clear_unit_attentions(s)
            await s.write16(1, 2048, data)
            assert await s.read16(1, 2048, len(data) // 512) == data
            assert await s.read16(1, 0, 8) == bytes(4096)
    run(body)


def test_many_concurrent_commands(tmp_path: Path) -> None:
    async def body() -> None:
        async with target(tmp_path) as (d, port), await login(port) as s:
            await clear_unit_attentions(s)
            blobs = [os.urandom(8192) for _ in range(64)]
            await asyncio.gather(*(s.write16(1, i * 16, b) for i, b in enumerate(blobs)))
            got = await asyncio.gather(*(s.read16(1, i * 16, 16) for i in range(64)))
            assert got == blobs
            assert s.conn.outstanding == 0
    run(body)


def test_nop_ping(tmp_path: Path) -> None:
    async def body() -> None:
        async with target(tmp_path) as (d, port), await login(port) as s:
            assert await s.nop(b"hello") == b"hello"
            assert await s.nop(immediate=False) == b""
    run(body)


def test_abort_task_of_nonexistent_task(tmp_path: Path) -> None:
    async def body() -> None:
        async with target(tmp_path) as (d, port), await login(port) as s:
            await clear_unit_attentions(s)
            # RefCmdSN = our current CmdSN: not below the TMF's own CmdSN (11.5.1 b)
            rsp = await s.task_management(TmfFunction.ABORT_TASK, 1, 0x7777)
            assert rsp == TmfResponse.TASK_DOES_NOT_EXIST
    run(body)


def test_abort_task_completed_long_ago_is_task_does_not_exist(tmp_path: Path) -> None:
    """RFC 7143 11.6.1 c): RefCmdSN outside the window (already completed) -> 'does not exist'."""

    async def body() -> None:
        async with target(tmp_path) as (d, port), await login(port) as s:
            await clear_unit_attentions(s)  # CmdSN 1.. consumed and completed
            old = (s.conn.cmd_sn - 1) & 0xFFFFFFFF
            rsp = await s.task_management(TmfFunction.ABORT_TASK, 1, 0x7777, ref_cmd_sn=old)
            assert rsp == TmfResponse.TASK_DOES_NOT_EXIST
    run(body)


@pytest.mark.parametrize("bstype", ["memory", "null"])
def test_other_backing_stores(tmp_path: Path, bstype: str) -> None:
    async def body() -> None:
        async with target(tmp_path, bstype=bstype) as (d, port), await login(port) as s:
            await clear_unit_attentions(s)
            cap = await s.read_capacity16(1)
            assert cap.size == SIZE
            blob = os.urandom(65536)
            await s.write16(1, 100, blob)
            back = await s.read16(1, 100, 128)
            assert back == (blob if bstype == "memory" else bytes(65536))
    run(body)


def test_read_past_end_is_check_condition(tmp_path: Path) -> None:
    async def body() -> None:
        async with target(tmp_path) as (d, port), await login(port) as s:
            await clear_unit_attentions(s)
            with pytest.raises(ScsiError) as info:
                await s.read16(1, SIZE // 512, 1)
            assert (info.value.sense_key, info.value.asc) == (5, 0x21)  # LBA out of range
    run(body)


def test_chap(tmp_path: Path) -> None:
    async def body() -> None:
        async with target(tmp_path) as (d, port):
            await admin(d, {"mode": "account", "op": "new", "user": "alice",
                            "password": "alice-secret-1"})
            await admin(d, {"mode": "account", "op": "bind", "tid": 1, "user": "alice"})
            with pytest.raises(LoginFailed) as info:
                await login(port)
            assert info.value.status_class == 2
            with pytest.raises(LoginFailed) as info:
                await login(port, chap=("alice", "wrong-secret-1"))
            assert info.value.status == 0x0201
            async with await login(port, chap=("alice", "alice-secret-1")) as s:
                assert await s.nop(b"x") == b"x"
    run(body)


def test_mutual_chap(tmp_path: Path) -> None:
    async def body() -> None:
        async with target(tmp_path) as (d, port):
            for user, pw in (("alice", "alice-secret-1"), ("tgt", "target-secret-1")):
                await admin(d, {"mode": "account", "op": "new", "user": user, "password": pw})
            await admin(d, {"mode": "account", "op": "bind", "tid": 1, "user": "alice"})
            await admin(d, {"mode": "account", "op": "bind", "tid": 1, "user": "tgt",
                            "outgoing": True})
            async with await login(port, chap=("alice", "alice-secret-1"),
                                   mutual_chap=("tgt", "target-secret-1")) as s:
                assert await s.nop(b"y") == b"y"
    run(body)


def test_timeout_never_hangs(tmp_path: Path) -> None:
    async def body() -> None:
        async with target(tmp_path) as (d, port), await login(port) as s:
            s.conn.max_cmd_sn = (s.conn.exp_cmd_sn - 1) & 0xFFFFFFFF  # close our window
            with pytest.raises(TimeoutError):
                await s.execute(1, bytes(6), timeout=0.3)
            assert s.conn.outstanding == 0
    run(body)


def test_login_as_context_manager_without_await(tmp_path: Path) -> None:
    async def body() -> None:
        async with target(tmp_path) as (d, port):
            async with Initiator.login("127.0.0.1", port, target=IQN,
                                       initiator_name=INITIATOR, timeout=10) as s:
                assert (await s.inquiry(1)).peripheral_device_type == 0
            assert s.closed
    run(body)


def test_same_isid_reinstates_the_session(tmp_path: Path) -> None:
    async def body() -> None:
        async with target(tmp_path) as (d, port):
            first = await login(port, isid=0x80_1234_5600_00)
            async with await login(port, isid=0x80_1234_5600_00) as second:
                await asyncio.wait_for(first._closed.wait(), 5)
                with pytest.raises(ConnectionLost):
                    await first.nop()
                assert await second.nop(b"2") == b"2"
    run(body)


def test_returning_initiator_port_sees_i_t_nexus_loss(tmp_path: Path) -> None:
    """First login: POWER ON (29/00); the same initiator port again after a logout:
    I_T NEXUS LOSS OCCURRED (29/07, SAM-5 6.3.4)."""
    async def first_ua(port: int) -> tuple[int, int]:
        async with await login(port, isid=0x80_1234_5600_01) as s:
            r = await s.execute(1, bytes(6))  # TEST UNIT READY, as sent (no UA retry)
            assert r.sense_key == 0x06
            return r.asc, r.ascq

    async def body() -> None:
        async with target(tmp_path) as (_d, port):
            assert await first_ua(port) == (0x29, 0x00)
            assert await first_ua(port) == (0x29, 0x07)
    run(body)


def _have_ipv6() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _have_ipv6(), reason="no ::1")
def test_ipv6_loopback(tmp_path: Path) -> None:
    async def body() -> None:
        from pytgt.daemon.server import Daemon

        async with Daemon([("::1", 0)]) as d:
            port = d.portals[0][1]
            await admin(d, {"mode": "target", "op": "new", "tid": 1, "targetname": IQN})
            await admin(d, {"mode": "target", "op": "bind", "tid": 1,
                            "initiator_address": "ALL"})
            async with Initiator("::1", port, initiator_name=INITIATOR) as ini:
                assert await ini.discover() == [(IQN, [f"[::1]:{port},1"])]
            async with Initiator.login("::1", port, target=IQN, initiator_name=INITIATOR,
                                       timeout=10) as s:
                assert await s.nop(b"v6") == b"v6"
    run(body)
