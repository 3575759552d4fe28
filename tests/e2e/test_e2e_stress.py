"""Heavier end-to-end cases: window overflow, multiple R2Ts, long discovery answers, uvloop."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from pytgt.initiator import Initiator

from .util import INITIATOR, IQN, admin, clear_unit_attentions, login, run, target


def test_more_commands_than_the_cmd_sn_window(tmp_path: Path) -> None:
    async def body() -> None:
        async with target(tmp_path, bstype="memory") as (d, port), await login(port) as s:
            await clear_unit_attentions(s)
            window = (s.conn.max_cmd_sn - s.conn.exp_cmd_sn + 1) & 0xFFFFFFFF
            n = window * 2 + 7
            blobs = [os.urandom(4096) for _ in range(n)]
            await asyncio.gather(*(s.write16(1, i * 8, b) for i, b in enumerate(blobs)))
            got = await asyncio.gather(*(s.read16(1, i * 8, 8) for i in range(n)))
            assert got == blobs and s.conn.outstanding == 0
    run(body)


def test_multiple_r2ts_and_bursts(tmp_path: Path) -> None:
    """MaxBurstLength 16 KiB and MaxOutstandingR2T 4: a 1 MiB write takes 64 R2Ts."""
    data = os.urandom(1 << 20)

    async def body() -> None:
        params = {"MaxOutstandingR2T": "4", "MaxBurstLength": "16384",
                  "FirstBurstLength": "8192", "MaxRecvDataSegmentLength": "4096"}
        async with (target(tmp_path, params=params) as (d, port),
                    await login(port, max_burst_length=16384, first_burst_length=8192,
                                max_outstanding_r2t=4, immediate_data=False,
                                max_recv_data_segment_length=4096) as s):
            assert s.params.max_outstanding_r2t == 4
            assert s.params.max_burst_length == 16384
            await clear_unit_attentions(s)
            await s.write16(1, 0, data)
            assert await s.read16(1, 0, 2048) == data
    run(body)


def test_long_send_targets_answer_is_continued(tmp_path: Path) -> None:
    """Many targets and MaxRecvDataSegmentLength 512: the answer spans Text Responses."""

    async def body() -> None:
        async with target(tmp_path) as (d, port):
            names = [f"{IQN}.{'x' * 60}.{i:03d}" for i in range(2, 40)]
            for tid, name in enumerate(names, start=2):
                await admin(d, {"mode": "target", "op": "new", "tid": tid, "targetname": name})
                await admin(d, {"mode": "target", "op": "bind", "tid": tid,
                                "initiator_address": "ALL"})
            async with Initiator("127.0.0.1", port, initiator_name=INITIATOR) as ini:
                found = await ini.discover(max_recv_data_segment_length=512)
            assert [n for n, _ in found] == [IQN, *names]
            assert all(addrs == [f"127.0.0.1:{port},1"] for _, addrs in found)
    run(body)


def test_send_targets_of_one_name_in_normal_session(tmp_path: Path) -> None:
    async def body() -> None:
        async with target(tmp_path) as (d, port), await login(port) as s:
            assert await s.send_targets(IQN) == [(IQN, [f"127.0.0.1:{port},1"])]
    run(body)


def test_target_name_is_case_insensitive(tmp_path: Path) -> None:
    async def body() -> None:
        async with target(tmp_path) as (d, port), await login(port, target=IQN.upper()) as s:
            assert await s.nop(b"c") == b"c"
    run(body)


def test_io_under_uvloop(tmp_path: Path) -> None:
    uvloop = pytest.importorskip("uvloop")
    data = os.urandom(1 << 20)

    async def body() -> None:
        assert "uvloop" in type(asyncio.get_running_loop()).__module__
        async with (target(tmp_path) as (d, port),
                    await login(port, header_digest=True, data_digest=True,
                                initial_r2t=False) as s):
            await clear_unit_attentions(s)
            await s.write16(1, 8, data)
            assert await s.read16(1, 8, 2048) == data

    async def bounded() -> None:
        await asyncio.wait_for(body(), 60)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(bounded())
