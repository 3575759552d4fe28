"""A media changer (``-Y changer``) through pytgtd, pytgtadm, pytgt-admin and pytgt.initiator.

tgt's own VTL examples (targets.conf.vtl.L700 and .MSL2024) load unchanged but for the
media directory; a cartridge made by pytgtimg moves into a drive, is written and read
through the tape LU, and moves back; the element state survives --dump and --persist;
tgtadm's DVD jukebox example moves an ISO into a cd LU.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from pytgt.initiator import Initiator
from pytgt.initiator.client import InitiatorSession
from tests.helpers import RunningDaemon, start_daemon
from tests.iso import iso_image

EXAMPLES = Path("/usr/share/doc/tgt/examples")
IQN = "iqn.2008-09.com.example:server.tape"  # the examples' target
ININAME = "iqn.2026-11.org.test:vtl"


def pytgtimg(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pytgt.cli.pytgtimg", *args], check=True,
                   capture_output=True, timeout=60,
                   env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")})


def admin(d: RunningDaemon, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pytgt.cli.pytgt_admin", "-C", str(d.control_port), *args]
    res = subprocess.run(cmd, env=d.env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"pytgt-admin {args}: {res.stdout}{res.stderr}"
    return res


def tgtimg(*args: str) -> None:
    subprocess.run(["tgtimg", *args], check=True, capture_output=True, timeout=60)


def vtl_setup(tmp: Path, example: str, maker: str = "pytgtimg") -> tuple[Path, Path]:
    """The example with /root/ replaced, its notape files and smc file, as its comments
    say (made by pytgtimg or tgt's tgtimg); returns (config file, media directory)."""
    text = (EXAMPLES / example).read_text().replace("/root/", f"{tmp}/")
    tapes = tmp / "tapes"
    tapes.mkdir()
    (tgtimg if maker == "tgtimg" else pytgtimg)(
        "--op", "new", "--device-type", "tape", "--barcode", "", "--size", "1",
        "--type", "clean", "--file", str(tapes / "notape"))
    for n in (1, 2, 3):
        os.symlink(tapes / "notape", tapes / f"notape{n}")
    (tmp / "smc").write_bytes(bytes(1024))
    conf = tmp / "targets.conf"
    conf.write_text(text)
    return conf, tapes


def res(b1: int, start: int = 0, count: int = 0xFFFF, alloc: int = 0xFFFF) -> bytes:
    return bytes((0xB8, b1, *start.to_bytes(2, "big"), *count.to_bytes(2, "big"), 0,
                  *alloc.to_bytes(3, "big"), 0, 0))


def move(src: int, dst: int) -> bytes:
    return bytes((0xA5, 0, 0, 0, *src.to_bytes(2, "big"), *dst.to_bytes(2, "big"), 0, 0, 0, 0))


def elements(data: bytes) -> dict[int, list[tuple[int, int, bytes]]]:
    """READ ELEMENT STATUS data -> {type: [(address, flags, volume tag)]}."""
    out: dict[int, list[tuple[int, int, bytes]]] = {}
    pos = 8
    while pos < len(data):
        etype, pflags, dlen = data[pos], data[pos + 1], struct.unpack_from(">H", data, pos + 2)[0]
        blen = int.from_bytes(data[pos + 5:pos + 8], "big")
        for off in range(pos + 8, pos + 8 + blen, dlen):
            tag = data[off + 12:off + 44].rstrip() if pflags & 0x80 else b""
            out.setdefault(etype, []).append((struct.unpack_from(">H", data, off)[0],
                                              data[off + 2], tag))
        pos += 8 + blen
    return out


async def ready(s: InitiatorSession, lun: int) -> int:
    """TEST UNIT READY until no unit attention is left; the final sense key (0: ready)."""
    for _ in range(8):
        r = await s.execute(lun, bytes(6))
        if not r.status:
            return 0
        if r.sense[2] & 0x0F != 0x06:
            return r.sense[2] & 0x0F
    raise AssertionError("unit attentions do not end")


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="tgt's examples are not installed")
@pytest.mark.parametrize(("example", "counts", "drive", "drive_lun", "maker"), [
    ("targets.conf.vtl.L700", {1: 1, 2: 216, 3: 20, 4: 3}, 500, 3, "pytgtimg"),
    ("targets.conf.vtl.MSL2024", {1: 1, 2: 24, 4: 1}, 2, 1, "pytgtimg"),
    pytest.param("targets.conf.vtl.MSL2024", {1: 1, 2: 24, 4: 1}, 2, 1, "tgtimg",
                 marks=pytest.mark.skipif(shutil.which("tgtimg") is None,
                                          reason="tgt's tgtimg not installed")),
])
def test_vtl_example_loads_and_moves_a_cartridge(tmp_path: Path, example: str,
                                                 counts: dict[int, int], drive: int,
                                                 drive_lun: int, maker: str) -> None:
    """An existing tgt library (tgtimg's cartridges) works as it is."""
    conf, tapes = vtl_setup(tmp_path, example, maker)
    (tgtimg if maker == "tgtimg" else pytgtimg)(
        "--op", "new", "--device-type", "tape", "--barcode", "A0000001", "--size", "4",
        "--type", "data", "--file", str(tapes / "A0000001"))
    d = start_daemon(tmp_path / "d", extra=("--allow-backing-symlinks",))
    try:
        admin(d, "-e", "-c", str(conf))
        shown = d.adm("--op", "show", "--mode", "target").stdout
        assert shown.count("            Type: tape\n") == counts[4]  # a tape LU per drive
        assert "            Type: changer\n" in shown
        assert "            Backing store type: smc\n" in shown
        assert f"            Backing store path: {tmp_path}/smc\n" in shown
        # the example's comment: a cartridge is put in slot 1000 at run time
        d.adm("--lld", "iscsi", "--mode", "logicalunit", "--op", "update", "--tid", "1",
              "--lun", "4", "--params", "element_type=2,address=1000,barcode=A0000001,sides=1")

        async def scenario() -> None:
            s = await Initiator.login(d.host, d.port, target=IQN, initiator_name=ININAME)
            try:
                assert await ready(s, 4) == 0
                r = await s.execute(4, res(0x10), read_length=0xFFFF)
                assert r.status == 0
                found = elements(r.data)
                assert {t: len(v) for t, v in found.items()} == counts
                assert found[2][0] == (1000, 0x09, b"A0000001")
                assert (await s.execute(4, move(1000, drive))).status == 0
                assert await ready(s, drive_lun) == 0
                payload = b"changer" * 100
                w = await s.execute(drive_lun, b"\x0a\x00" + len(payload).to_bytes(3, "big")
                                    + b"\0", payload)
                assert w.status == 0
                assert (await s.execute(drive_lun, b"\x01" + bytes(5))).status == 0
                r = await s.execute(drive_lun, b"\x08\x00" + len(payload).to_bytes(3, "big")
                                    + b"\0", read_length=len(payload))
                assert (r.status, r.data) == (0, payload)
                r = await s.execute(4, res(0x14), read_length=0xFFFF)
                assert elements(r.data)[4][0] == (drive, 0x09, b"A0000001")
                assert (await s.execute(4, move(drive, 1001))).status == 0
                assert await ready(s, drive_lun) == 0x02  # NOT READY, MEDIUM NOT PRESENT
            finally:
                with contextlib.suppress(Exception):
                    await s.logout(timeout=5)

        asyncio.run(scenario())
        assert payload_in(tapes / "A0000001", b"changer" * 100)
        if maker == "tgtimg":  # still tgt's format, as tgtimg reads it
            shown = subprocess.run(["tgtimg", "--op", "show", "--device-type", "tape",
                                    "--file", str(tapes / "A0000001")], check=True,
                                   capture_output=True, text=True, timeout=60).stdout
            assert " Uncompressed data(2): Blk No. 1, prev 0, curr 1152,  next 1900, sz 700\n" \
                "      End of Data(32): Blk No. 2, prev 1152, curr 1900,  next 1900, sz 0\n" \
                in shown
        text = admin(d, "--dump").stdout
        assert "\t\tparams element_type=2,address=1001,barcode=A0000001\n" in text
        assert f"\t\tparams element_type=4,address={drive},tid=1,lun={drive_lun}\n" in text
    finally:
        assert d.stop() == 0, "".join(d.log[-30:])


def payload_in(path: Path, payload: bytes) -> bool:
    return payload in path.read_bytes()[:1 << 20]


def test_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "smc").write_bytes(bytes(1024))
    d = start_daemon(tmp_path / "d")
    try:
        d.adm("--op", "new", "--mode", "target", "--tid", "1", "-T", IQN)
        d.adm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1", "-Y",
              "changer", "-b", str(tmp_path / "smc"))
        for params in ("element_type=9,start_address=1,quantity=1",
                       "element_type=2,address=5,barcode=X",
                       "barcode=X", "media_home=relative"):
            r = d.adm("--op", "update", "--mode", "logicalunit", "--tid", "1", "--lun", "1",
                      "--params", params, check=False)
            assert r.returncode != 0 and len(r.stderr.splitlines()) == 1, r.stderr
            assert "Traceback" not in r.stderr
    finally:
        assert d.stop() == 0, "".join(d.log[-30:])


def test_persist_keeps_elements_and_cartridges(tmp_path: Path) -> None:
    tapes = tmp_path / "tapes"
    tapes.mkdir()
    for name, kind in (("notape", "clean"), ("B1", "data"), ("B2", "data")):
        pytgtimg("--op", "new", "--device-type", "tape", "--barcode",
                 "" if name == "notape" else name, "--size", "2", "--type", kind,
                 "--file", str(tapes / name))
    (tmp_path / "smc").write_bytes(bytes(1024))
    lu = ("--mode", "logicalunit", "--tid", "1")
    d = start_daemon(tmp_path, extra=("--persist",))
    try:
        d.adm("--op", "new", "--mode", "target", "--tid", "1", "-T", IQN)
        d.adm("--op", "new", *lu, "--lun", "1", "-Y", "tape", "-b", str(tapes / "notape"))
        d.adm("--op", "new", *lu, "--lun", "2", "-Y", "changer", "-b", str(tmp_path / "smc"),
              "--params", f"media_home={tapes}")
        for params in ("element_type=1,start_address=1,quantity=1",
                       "element_type=2,start_address=100,quantity=4",
                       "element_type=4,start_address=10,quantity=1",
                       "element_type=4,address=10,tid=1,lun=1",
                       "element_type=2,address=100,barcode=B1,volume_tag=first",
                       "element_type=4,address=10,barcode=B2"):
            d.adm("--op", "update", *lu, "--lun", "2", "--params", params)
        shown = d.adm("--op", "show", "--mode", "target").stdout
        assert f"Backing store path: {tapes}/B2\n" in shown  # loaded into LUN 1
        before = admin(d, "--dump").stdout
        assert "\t\tparams element_type=4,address=10,barcode=B2\n" in before
        assert f"<backing-store {tapes}/notape>" in before  # the drive's own path
    finally:
        assert d.stop() == 0, "".join(d.log[-30:])
    d = start_daemon(tmp_path, extra=("--persist",))
    try:
        after = admin(d, "--dump").stdout
        assert after == before
        shown = d.adm("--op", "show", "--mode", "target").stdout
        assert f"Backing store path: {tapes}/B2\n" in shown
        # the admin empties the drive: LUN 1 has no medium, its own path is still saved
        d.adm("--op", "update", *lu, "--lun", "2", "--params",
              "element_type=4,address=10,clear_slot=1")
        shown = d.adm("--op", "show", "--mode", "target").stdout
        assert shown.split("LUN: 2")[0].split("LUN: 1")[1].count("Backing store path: None")
        emptied = admin(d, "--dump").stdout
        assert "barcode=B2" not in emptied and f"<backing-store {tapes}/notape>" in emptied
    finally:
        assert d.stop() == 0, "".join(d.log[-30:])
    d = start_daemon(tmp_path, extra=("--persist",))
    try:
        assert admin(d, "--dump").stdout == emptied
    finally:
        assert d.stop() == 0, "".join(d.log[-30:])


def test_dvd_jukebox_moves_an_iso_into_a_cd_drive(tmp_path: Path) -> None:
    media = tmp_path / "vtl"
    media.mkdir()
    (media / "first.iso").write_bytes(iso_image("FIRST"))
    (media / "DISK_002").write_bytes(iso_image("SECOND", 80))
    (tmp_path / "smc").write_bytes(bytes(1024))
    lu = ("--mode", "logicalunit", "--tid", "1")
    d = start_daemon(tmp_path / "d")
    try:
        d.adm("--op", "new", "--mode", "target", "--tid", "1", "-T", IQN)
        d.adm("--op", "new", *lu, "--lun", "1", "-Y", "cd", "-b", str(media / "first.iso"))
        d.adm("--op", "new", *lu, "--lun", "2", "-Y", "changer", "-b", str(tmp_path / "smc"))
        for params in (f"media_home={media}", "element_type=4,start_address=1,quantity=1",
                       "element_type=4,address=1,tid=1,lun=1",
                       "element_type=1,start_address=16,quantity=1",
                       "element_type=2,start_address=1024,quantity=8",
                       "element_type=2,address=1025,barcode=DISK_002,"
                       "volume_tag=My second blank disk,sides=1"):
            d.adm("--op", "update", *lu, "--lun", "2", "--params", params)
        d.adm("--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")

        async def scenario() -> None:
            s = await Initiator.login(d.host, d.port, target=IQN, initiator_name=ININAME)
            try:
                assert await ready(s, 2) == 0
                r = await s.execute(2, res(0x12), read_length=0xFFFF)
                assert elements(r.data)[2][1] == (1025, 0x09, b"My second blank disk")
                assert await ready(s, 1) == 0
                assert (await s.execute(2, move(1025, 1))).status == 0
                assert await ready(s, 1) == 0
                cap = await s.execute(1, bytes((0x25,)) + bytes(9), read_length=8)
                assert struct.unpack(">II", cap.data) == (79, 2048)  # the second disc
                assert (await s.execute(2, move(1, 1024))).status == 0
                assert await ready(s, 1) == 0x02  # NOT READY: no disc
            finally:
                with contextlib.suppress(Exception):
                    await s.logout(timeout=5)

        asyncio.run(scenario())
    finally:
        assert d.stop() == 0, "".join(d.log[-30:])
