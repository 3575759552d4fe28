"""QoS over the wire: a LU's max_iops/max_bps hold an initiator to the limit, a live
change applies to the next commands, an unlimited LU beside it is not slowed, and
libiscsi's iscsi-perf (a real client at QD16) is held to the limit too.

Timing bounds are generous (a loaded 2-core machine): a run of N commands at rate R
with a burst of B cannot end before (N - B) / R, and must end well before the previous,
lower limit would allow. The bucket's own accounting is checked exactly."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time

import pytest

from pytgt.initiator import Initiator, InitiatorSession
from pytgt.scsi.lu import LogicalUnit
from pytgt.scsi.qos import BURST_SECONDS
from pytgt.testing import ServedTarget, serve


def _lu(t: ServedTarget, lun: int = 1) -> LogicalUnit:
    lu: LogicalUnit = t.daemon.registry.targets[1].scsi.luns[lun]
    return lu


def _update(t: ServedTarget, params: str, lun: int = 1) -> None:
    rc, out = t.admin({"mode": "logicalunit", "op": "update", "tid": 1, "lun": lun,
                       "params": params})
    assert rc == 0, out


async def _reads(s: InitiatorSession, lun: int, count: int, blocks: int = 1,
                 depth: int = 8) -> float:
    """``count`` READ(16)s at queue depth ``depth``; the seconds they took."""
    todo = iter(range(count))

    async def worker() -> None:
        for i in todo:
            await s.read16(lun, (i * blocks) % 1024, blocks)

    start = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(depth)))
    return time.monotonic() - start


def test_iops_limit_and_live_change() -> None:
    with serve(size=8 << 20) as t:
        rc, out = t.admin({"mode": "logicalunit", "op": "new", "tid": 1, "lun": 2,
                           "bstype": "memory", "backing_store": "m2", "bsopts": "size=1M"})
        assert rc == 0, out
        _update(t, "max_iops=200")

        async def scenario() -> None:
            async with Initiator.login(t.host, t.port, target=t.iqn) as s:
                await s.test_unit_ready(1)  # the login's unit attentions, outside the count
                await s.test_unit_ready(2)
                qos = _lu(t).qos
                assert qos is not None
                elapsed = await _reads(s, 1, 100)
                assert qos.admitted == 100 and qos.delayed >= 100 - 200 * BURST_SECONDS - 10
                assert (100 - 200 * BURST_SECONDS) / 200 * 0.95 <= elapsed < 10
                # the unlimited LU beside it: not held to 200 IOPS
                assert await _reads(s, 2, 200) < (200 - 200 * BURST_SECONDS) / 200
                _update(t, "max_iops=1000")  # live: the next commands use the new rate
                qos = _lu(t).qos
                assert qos is not None and qos.max_iops == 1000
                elapsed = await _reads(s, 1, 300)
                assert qos.admitted == 300
                assert elapsed >= (300 - 1000 * BURST_SECONDS) / 1000 * 0.95
                assert elapsed < (300 - 200 * BURST_SECONDS) / 200  # not the old 200 IOPS
                _update(t, "max_iops=0")
                assert _lu(t).qos is None

        asyncio.run(scenario())


def test_bandwidth_limit() -> None:
    with serve(size=8 << 20, params="max_bps=4M") as t:

        async def scenario() -> None:
            async with Initiator.login(t.host, t.port, target=t.iqn) as s:
                await s.test_unit_ready(1)
                # 48 reads of 64 KiB = 3 MiB at 4 MiB/s, burst 0.4 MiB
                elapsed = await _reads(s, 1, 48, blocks=128, depth=4)
                qos = _lu(t).qos
                assert qos is not None and qos.bytes_admitted == 48 * 65536
                assert (3 - 0.4) / 4 * 0.95 <= elapsed < 10

        asyncio.run(scenario())


@pytest.mark.skipif(shutil.which("iscsi-perf") is None, reason="needs libiscsi-bin")
def test_iscsi_perf_held_to_the_limit() -> None:
    """libiscsi's iscsi-perf at QD16 for 2 s: its average within 15 % of max_iops=500
    (bench/qos.py measures the 10 % goal on longer runs); the accounting agrees."""
    with serve(size=8 << 20, params="max_iops=500") as t:
        res = subprocess.run(["iscsi-perf", "-m", "16", "-b", "8", "-t", "2", t.url],
                             capture_output=True, text=True, timeout=60)
        found = re.findall(r"iops average (\d+)", res.stdout + res.stderr)
        assert found, res.stdout + res.stderr
        assert 500 * 0.85 <= int(found[-1]) <= 500 * 1.15
        qos = _lu(t).qos
        assert qos is not None and qos.delayed > 0
