"""A CD LU (``-Y cd``) through pytgtd and pytgt.initiator: read the ISO, eject it with
START STOP UNIT, swap the medium with ``pytgtadm --params path=`` and see the new one."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytgt.initiator import Initiator
from pytgt.initiator.client import InitiatorSession
from pytgt.initiator.scsi import ScsiResult
from tests.daemon.conftest import IQN
from tests.helpers import RunningDaemon, start_daemon
from tests.iso import BLOCK, iso_image

TUR = bytes(6)
EJECT = bytes((0x1B, 0, 0, 0, 0x02, 0))
READ_PVD = bytes((0x28, 0, 0, 0, 0, 16, 0, 0, 1, 0))


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[RunningDaemon]:
    d = start_daemon(tmp_path / "pytgtd")
    try:
        yield d
    finally:
        assert d.stop() == 0, "pytgtd did not exit cleanly:\n" + "".join(d.log[-30:])


async def _settle(s: InitiatorSession) -> ScsiResult:
    """TEST UNIT READY until the unit attentions of login are consumed."""
    for _ in range(8):
        r = await s.execute(1, TUR)
        if r.sense_key != 0x06:
            return r
    raise AssertionError("unit attentions do not end")


def test_cd_read_eject_and_swap(daemon: RunningDaemon, tmp_path: Path) -> None:
    first, second = tmp_path / "first.iso", tmp_path / "second.iso"
    first.write_bytes(iso_image("FIRST", 64))
    second.write_bytes(iso_image("SECOND", 40))
    daemon.adm("--op", "new", "--mode", "target", "--tid", "1", "-T", IQN)
    daemon.adm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1",
               "-Y", "cd", "-b", str(first))
    daemon.adm("--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")

    async def scenario() -> None:
        s = await Initiator.login(daemon.host, daemon.port, target=IQN,
                                  initiator_name="iqn.2026-11.org.test:cd")
        try:
            assert (await _settle(s)).ok
            inq = await s.execute(1, bytes((0x12, 0, 0, 0, 36, 0)), read_length=36)
            assert inq.data[0] == 0x05 and inq.data[1] & 0x80
            pvd = await s.execute(1, READ_PVD, read_length=BLOCK)
            assert pvd.data[1:6] == b"CD001" and pvd.data[40:45] == b"FIRST"

            assert (await s.execute(1, EJECT)).ok
            gone = await s.execute(1, TUR)
            assert (gone.sense_key, gone.asc, gone.ascq) == (0x02, 0x3A, 0x02)

            await asyncio.to_thread(daemon.adm, "--op", "update", "--mode", "logicalunit",
                                    "--tid", "1", "--lun", "1", "--params", f"path={second}")
            ua = await s.execute(1, READ_PVD, read_length=BLOCK)
            assert (ua.sense_key, ua.asc, ua.ascq) == (0x06, 0x28, 0x00)
            pvd = await s.execute(1, READ_PVD, read_length=BLOCK)
            assert pvd.data[1:6] == b"CD001" and pvd.data[40:46] == b"SECOND"
            cap = await s.execute(1, bytes((0x25,)) + bytes(9), read_length=8)
            assert struct.unpack(">II", cap.data) == (39, BLOCK)

            await asyncio.to_thread(daemon.adm, "--op", "update", "--mode", "logicalunit",
                                    "--tid", "1", "--lun", "1", "--params", "path=")
            empty = await s.execute(1, TUR)
            assert (empty.sense_key, empty.asc, empty.ascq) == (0x02, 0x3A, 0x01)
        finally:
            await s.logout(timeout=5)

    try:
        asyncio.run(scenario())
    finally:
        daemon.adm("--op", "delete", "--mode", "target", "--tid", "1", "--force")
