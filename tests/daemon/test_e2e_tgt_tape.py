"""tgt's tape images in place: tgtimg makes one, tgtd writes it, pytgtd reads and writes
it, tgtd reads back what pytgtd wrote (docs/tape.md "tgt's tgtimg images").

Both daemons are driven by pytgt.initiator; tgtd is Debian's (bench.targets.TgtTarget,
its own control port and portal, stopped by PID).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from bench.targets import TgtTarget
from pytgt.cli.pytgtimg import show_tape
from pytgt.initiator import Initiator
from pytgt.initiator import InitiatorSession as Session
from pytgt.scsi.sense import decode_sense
from tests.daemon.conftest import IQN
from tests.helpers import start_daemon

pytestmark = pytest.mark.skipif(not TgtTarget.installed() or shutil.which("tgtimg") is None,
                                reason="tgt (tgtd, tgtadm, tgtimg) not installed")

BIG = bytes(range(256)) * 300  # 76,800 bytes: a block spanning several PDUs


def c24(n: int) -> bytes:
    return n.to_bytes(3, "big")


def tgtimg(*args: str) -> str:
    return subprocess.run(["tgtimg", *args], check=True, capture_output=True, text=True,
                          timeout=30).stdout


def show(img: Path) -> str:
    return tgtimg("--op", "show", "--device-type", "tape", "--file", str(img))


async def _ready(s: Session, lun: int) -> None:
    for _ in range(10):  # TEST UNIT READY past the power-on/NOT READY TO READY UAs
        if (await s.execute(lun, bytes(6))).status == 0:
            return
    raise AssertionError("the tape never became ready")


def drive(host: str, port: int, body: Callable[[Session], Awaitable[None]]) -> None:
    async def go() -> None:
        s = await Initiator.login(host, port, target=IQN,
                                  initiator_name="iqn.2026-12.org.test:tgt-tape")
        try:
            await _ready(s, 1)
            await body(s)
        finally:
            with contextlib.suppress(Exception):
                await s.logout(timeout=5)
    asyncio.run(go())


async def write(s: Session, data: bytes) -> None:
    r = await s.execute(1, b"\x0a\x00" + c24(len(data)) + b"\0", data)
    assert r.status == 0, decode_sense(r.sense)


async def weof(s: Session, n: int = 1, setmark: bool = False) -> None:
    r = await s.execute(1, bytes((0x10, 2 if setmark else 0)) + c24(n) + b"\0")
    assert r.status == 0, decode_sense(r.sense)


async def read(s: Session, n: int) -> tuple[int, bytes, tuple[int, int, int] | None]:
    r = await s.execute(1, b"\x08\x00" + c24(n) + b"\0", read_length=n)
    return r.status, bytes(r.data), decode_sense(r.sense) if r.status else None


async def rewind(s: Session) -> None:
    assert (await s.execute(1, b"\x01" + bytes(5))).status == 0


async def set_block(s: Session, length: int) -> None:
    hdr = bytes((0, 0, 0x10, 8, 0, 0, 0, 0, 0)) + c24(length)
    assert (await s.execute(1, bytes((0x15, 0x10, 0, 0, 12, 0)), hdr)).status == 0


FILEMARK = (0x0, 0x00, 0x01)


def tgtd_serves(tmp: Path, img: Path, body: Callable[[Session], Awaitable[None]]) -> None:
    t = TgtTarget(tmp)
    t.start()
    try:
        t.adm("--op", "new", "--mode", "target", "--tid", "1", "-T", IQN)
        t.adm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1",
              "--device-type", "tape", "-b", str(img))
        t.adm("--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")
        drive("127.0.0.1", t.port, body)
    finally:
        t.stop()


def test_tgt_image_round_trip(tmp_path: Path) -> None:
    img = tmp_path / "TGT001"
    tgtimg("--op", "new", "--device-type", "tape", "--barcode", "TGT001", "--size", "4",
           "--type", "data", "--file", str(img))

    async def tgtd_writes(s: Session) -> None:
        await write(s, b"alpha" * 100)
        await write(s, BIG)
        await weof(s)
        await set_block(s, 512)
        r = await s.execute(1, b"\x0a\x01" + c24(2) + b"\0", b"F" * 512 + b"G" * 512)
        assert r.status == 0
        await weof(s, setmark=True)
        await set_block(s, 0)
        await write(s, b"tail")

    tgtd_serves(tmp_path / "tgt1", img, tgtd_writes)
    written_by_tgtd = show(img)
    assert show_tape(str(img)) + "\n" == written_by_tgtd  # pytgtimg shows it as tgtimg

    d = start_daemon(tmp_path / "pytgtd")
    try:
        d.adm("--op", "new", "--mode", "target", "--tid", "1", "-T", IQN)
        d.adm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1",
              "-Y", "tape", "-b", str(img))
        d.adm("--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")

        async def pytgtd_reads_and_writes(s: Session) -> None:
            assert await read(s, 500) == (0, b"alpha" * 100, None)
            assert await read(s, len(BIG)) == (0, BIG, None)
            assert (await read(s, 10))[2] == FILEMARK
            assert await read(s, 512) == (0, b"F" * 512, None)
            assert await read(s, 512) == (0, b"G" * 512, None)
            assert (await read(s, 10))[2] == FILEMARK  # tgtd's setmark is a filemark
            assert await read(s, 4) == (0, b"tail", None)
            assert (await read(s, 4))[2] == (0x8, 0x00, 0x05)  # END OF DATA
            await rewind(s)
            r = await s.execute(1, b"\x11\x01" + c24(1) + b"\0")  # SPACE 1 filemark
            assert r.status == 0
            await write(s, b"from pytgt")  # replaces everything after the first file
            await weof(s, 2)
            await write(s, BIG[::-1])

        drive(d.host, d.port, pytgtd_reads_and_writes)
        d.adm("--op", "delete", "--mode", "target", "--tid", "1", "--force")
    finally:
        assert d.stop() == 0, "pytgtd did not exit cleanly:\n" + "".join(d.log[-30:])

    lines = show(img).splitlines()  # tgtimg reads what pytgtd wrote
    assert lines[:5] == written_by_tgtd.splitlines()[:5]  # label and BOT untouched
    assert [line.split(":")[0].strip() for line in lines[5:]] == [
        "Uncompressed data(2)", "Uncompressed data(2)", "Filemark(64)",
        "Uncompressed data(2)", "Filemark(64)", "Filemark(64)", "Uncompressed data(2)",
        "End of Data(32)"]
    eod = lines[-1].split()
    assert img.stat().st_size == int(eod[eod.index("curr") + 1].rstrip(",")) + 48

    async def tgtd_reads_back(s: Session) -> None:
        assert await read(s, 500) == (0, b"alpha" * 100, None)
        assert await read(s, len(BIG)) == (0, BIG, None)
        assert (await read(s, 10))[2] == FILEMARK
        assert await read(s, 10) == (0, b"from pytgt", None)
        assert (await read(s, 10))[2] == FILEMARK
        assert (await read(s, 10))[2] == FILEMARK
        assert await read(s, len(BIG)) == (0, BIG[::-1], None)
        status, _, _ = await read(s, 10)
        assert status != 0  # the end of data

    tgtd_serves(tmp_path / "tgt2", img, tgtd_reads_back)


def _lu_block(shown: str, lun: int) -> list[str]:
    lines = shown.splitlines()
    start = lines.index(f"        LUN: {lun}")
    end = next((i for i in range(start + 1, len(lines))
                if not lines[i].startswith("            ")), len(lines))
    return lines[start:end]


def test_tape_lu_show_is_tgtds(tmp_path: Path) -> None:
    """``--op show`` of a tape LU (also ``-E ssc``) is tgtd's line for line; --dump keeps
    only what differs from a new tape LU."""
    img = tmp_path / "T1"
    tgtimg("--op", "new", "--device-type", "tape", "--barcode", "T1", "--size", "4",
           "--type", "data", "--file", str(img))
    lus = (("1", ()), ("2", ("-E", "ssc")))
    t = TgtTarget(tmp_path / "tgt")
    t.start()
    try:
        t.adm("--op", "new", "--mode", "target", "--tid", "1", "-T", IQN)
        for lun, extra in lus:
            t.adm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", lun,
                  "--device-type", "tape", "-b", str(img), *extra)
        theirs = t.adm("--op", "show", "--mode", "target")
    finally:
        t.stop()
    d = start_daemon(tmp_path / "pytgtd")
    try:
        d.adm("--op", "new", "--mode", "target", "--tid", "1", "-T", IQN)
        for lun, extra in lus:
            d.adm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", lun,
                  "--device-type", "tape", "-b", str(img), *extra)
        ours = d.adm("--op", "show", "--mode", "target").stdout
        dump = subprocess.run([sys.executable, "-m", "pytgt.cli.pytgt_admin", "-C",
                               str(d.control_port), "--dump"], env=d.env, capture_output=True,
                              text=True, timeout=60).stdout
    finally:
        assert d.stop() == 0, "pytgtd did not exit cleanly:\n" + "".join(d.log[-30:])
    for lun in (1, 2):
        assert _lu_block(ours, lun) == _lu_block(theirs, lun)
    assert _lu_block(ours, 1)[4:] == [
        "            Size: 0 MB, Block size: 1", "            Online: Yes",
        "            Removable media: Yes", "            Prevent removal: No",
        "            Readonly: No", "            SWP: No", "            Thin-provisioning: No",
        "            Backing store type: ssc", f"            Backing store path: {img}",
        "            Backing store flags: "]
    assert f"\t<backing-store {img}>\n\t\tlun 1\n\t\tdevice-type tape\n\t</backing-store>\n" \
        in dump
