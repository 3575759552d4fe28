"""A tape LU (``-Y tape``) through pytgtd and pytgt.initiator: records across a filemark."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from pytgt.initiator import Initiator
from tests.daemon.conftest import IQN
from tests.helpers import start_daemon


def _c24(n: int) -> bytes:
    return n.to_bytes(3, "big")


def test_tape_records_across_filemark(tmp_path: Path) -> None:
    tape = tmp_path / "tape.img"
    with open(tape, "wb") as f:
        f.truncate(8 << 20)  # a blank tape
    d = start_daemon(tmp_path / "d")
    try:
        d.adm("--op", "new", "--mode", "target", "--tid", "1", "-T", IQN)
        d.adm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1",
              "-Y", "tape", "-b", str(tape))
        d.adm("--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")
        shown = d.adm("--op", "show", "--mode", "target").stdout
        assert "            Type: tape\n" in shown
        assert "            Removable media: Yes\n" in shown

        async def scenario() -> None:
            s = await Initiator.login(d.host, d.port, target=IQN,
                                      initiator_name="iqn.2026-11.org.test:tape")
            try:
                while (await s.execute(1, bytes(6))).status:  # TEST UNIT READY past UAs
                    pass
                inq = await s.execute(1, bytes((0x12, 0, 0, 0, 96, 0)), read_length=96)
                assert inq.data[0] == 0x01
                for payload in (b"first" * 1000, b"second" * 10):
                    r = await s.execute(1, b"\x0a\x00" + _c24(len(payload)) + b"\0", payload)
                    assert r.status == 0
                assert (await s.execute(1, b"\x10\x00" + _c24(1) + b"\0")).status == 0
                r = await s.execute(1, b"\x0a\x00" + _c24(5) + b"\0", b"third")
                assert r.status == 0
                assert (await s.execute(1, b"\x01" + bytes(5))).status == 0
                r = await s.execute(1, b"\x08\x00" + _c24(5000) + b"\0", read_length=5000)
                assert (r.status, r.data) == (0, b"first" * 1000)
                r = await s.execute(1, b"\x08\x00" + _c24(60) + b"\0", read_length=60)
                assert (r.status, r.data) == (0, b"second" * 10)
                r = await s.execute(1, b"\x08\x00" + _c24(100) + b"\0", read_length=100)
                assert r.status == 2 and r.sense[2] == 0x80  # NO SENSE + FILEMARK
                assert (r.sense[12], r.sense[13]) == (0x00, 0x01)
                r = await s.execute(1, b"\x08\x00" + _c24(3) + b"\0", read_length=3)
                assert (r.status, r.data, r.sense[2]) == (2, b"thi", 0x20)  # ILI, with data
                assert r.sense[3:7] == (-2).to_bytes(4, "big", signed=True)  # overlength
                r = await s.execute(1, b"\x08\x00" + _c24(5) + b"\0", read_length=5)
                assert r.status == 2 and (r.sense[2] & 0x0F, r.sense[12], r.sense[13]) == (
                    0x08, 0x00, 0x05)  # BLANK CHECK, END-OF-DATA DETECTED
            finally:
                with contextlib.suppress(Exception):
                    await s.logout(timeout=5)

        asyncio.run(scenario())
        d.adm("--op", "delete", "--mode", "target", "--tid", "1", "--force")
    finally:
        assert d.stop() == 0, "pytgtd did not exit cleanly:\n" + "".join(d.log[-30:])
    assert tape.read_bytes()[:8] == b"PYTGTAPE"
