"""A virtual tape library (``-Y changer`` and ``-Y tape``) from the Linux kernel's initiator:
mtx drives the changer through sg, mt and dd use the drive through st, in a QEMU guest.

The target: LUN 1 a tape drive (holding the empty "notape" cartridge tgt's examples use),
LUN 2 a changer with one transport, five slots and one drive bound to LUN 1; slot 1 holds
a pytgtimg cartridge. The guest asks mtx for inquiry, inventory and position, then loads
the cartridge, writes and reads it back, unloads it, moves it to slot 2, loads it from
there and reads the same data again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.guest.conftest import PORTAL, Guest, booted
from tests.helpers import RunningDaemon

IQN = "iqn.2026-12.org.pytgt:guest-vtl"

SCRIPT = f"""
T={IQN}; P={PORTAL}
iscsid_start
iscsiadm -m node -o new -T $T -p $P >/dev/null
iscsiadm -m node -T $T -p $P --login
poll 30 dev_of $T 2 scsi_generic
poll 30 dev_of $T 1 scsi_tape
G=$(dev_of $T 2 scsi_generic); S=$(dev_of $T 1 scsi_tape)
MT=$(command -v mt-st || echo mt)  # mt-st's, not busybox's (no status)
mark MTPROG $MT
mark TYPES $(cat /sys/class/scsi_generic/${{G#/dev/}}/device/type) \\
  $(cat /sys/class/scsi_tape/${{S#/dev/}}/device/type)
mark INQUIRY "$(mtx -f $G inquiry 2>&1 | tr '\\n' '|')"
mtx -f $G inventory
mtx -f $G position 3
mark STATUS1 "$(mtx -f $G status 2>&1 | tr '\\n' '|')"
mtx -f $G load 1 0
mark LOADED "$(mtx -f $G status | tr '\\n' '|')"
$MT -f $S status >/tmp/mt 2>&1 || true
mark MT "$(tr '\\n' '|' < /tmp/mt)"
dd if=/dev/urandom of=/tmp/w bs=64k count=4 2>/dev/null
dd if=/tmp/w of=$S bs=64k 2>/dev/null
$MT -f $S rewind
dd if=$S of=/tmp/r bs=64k count=4 2>/dev/null
cmp /tmp/w /tmp/r
mark READBACK $(sha256sum < /tmp/w)
$MT -f $S rewind
mtx -f $G unload 1 0
if $MT -f $S status >/tmp/mt 2>&1; then :; fi
mark NOTAPE "$(tr '\n' '|' < /tmp/mt)"
mark UNLOADED "$(mtx -f $G status | tr '\\n' '|')"
mtx -f $G transfer 1 2
mark TRANSFERRED "$(mtx -f $G status | tr '\\n' '|')"
mtx -f $G load 2 0
poll 30 $MT -f $S status
dd if=$S of=/tmp/r2 bs=64k count=4 2>/dev/null
cmp /tmp/w /tmp/r2
mark READ-AGAIN ok
$MT -f $S rewind
mtx -f $G unload 2 0
iscsiadm -m node -T $T -p $P --logout
"""


def _pytgtimg(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pytgt.cli.pytgtimg", *args], check=True,
                   capture_output=True, timeout=60,
                   env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")})


def _vtl(d: RunningDaemon, tmp: Path) -> Path:
    tapes = tmp / "tapes"
    tapes.mkdir()
    _pytgtimg("--op", "new", "--device-type", "tape", "--barcode", "", "--size", "1",
              "--type", "clean", "--file", str(tapes / "notape"))
    _pytgtimg("--op", "new", "--device-type", "tape", "--barcode", "A0000001", "--size", "8",
              "--type", "data", "--file", str(tapes / "A0000001"))
    (tmp / "smc").write_bytes(bytes(1024))
    adm = ("--lld", "iscsi")
    lu = (*adm, "--mode", "logicalunit", "--tid", "1")
    d.adm(*adm, "--op", "new", "--mode", "target", "--tid", "1", "-T", IQN)
    d.adm("--op", "new", *lu, "--lun", "1", "-Y", "tape", "-b", str(tapes / "notape"))
    d.adm("--op", "new", *lu, "--lun", "2", "-Y", "changer", "-b", str(tmp / "smc"))
    for params in (f"media_home={tapes}",
                   "element_type=1,start_address=1,quantity=1",
                   "element_type=2,start_address=1000,quantity=5",
                   "element_type=4,start_address=500,quantity=1",
                   "element_type=4,address=500,tid=1,lun=1",
                   "element_type=2,address=1000,barcode=A0000001,sides=1"):
        d.adm("--op", "update", *lu, "--lun", "2", "--params", params)
    d.adm(*adm, "--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")
    return tapes


def test_mtx_load_write_read_unload_transfer(guest: Guest, daemon: RunningDaemon,
                                             tmp_path: Path) -> None:
    tapes = _vtl(daemon, tmp_path)
    with booted(guest, SCRIPT, {PORTAL: daemon.port}, tmp_path / "boot.log") as run:
        assert run.marker("TYPES", 120).split() == ["8", "1"]  # medium changer, tape
        inquiry = run.marker("INQUIRY", 60)
        assert "Product Type: Medium Changer" in inquiry and "VIRTUAL-CHANGER" in inquiry
        status = run.marker("STATUS1", 60).split("|")  # after INITIALIZE ELEMENT STATUS and
        # POSITION TO ELEMENT (mtx inventory, position)
        assert "  Storage Changer" in status[0] and "1 Drives, 5 Slots" in status[0]
        assert "Data Transfer Element 0:Empty" in status
        assert any(line.strip() == "Storage Element 1:Full :VolumeTag=A0000001"
                   for line in status), status
        assert status[3].strip().startswith("Storage Element 2:Empty")  # tag: spaces, as tgt
        loaded = run.marker("LOADED", 60)
        assert "Data Transfer Element 0:Full (Storage Element 1 Loaded):VolumeTag = A0000001" \
            in loaded
        assert "Storage Element 1:Empty" in loaded
        mt = run.marker("MT", 60)
        assert "ONLINE" in mt, mt
        run.marker("READBACK", 120)
        assert "DR_OPEN" in run.marker("NOTAPE", 60)  # st: no medium (3Ah/00h)
        unloaded = run.marker("UNLOADED", 60)
        assert "Data Transfer Element 0:Empty" in unloaded
        assert "Storage Element 1:Full :VolumeTag=A0000001" in unloaded
        moved = run.marker("TRANSFERRED", 60)
        assert "Storage Element 1:Empty" in moved
        assert "Storage Element 2:Full :VolumeTag=A0000001" in moved
        run.marker("READ-AGAIN", 120)
    shown = daemon.adm("--op", "show", "--mode", "target").stdout
    assert f"Backing store path: {tapes}/A0000001" not in shown  # unloaded at the end
    assert (tapes / "A0000001").read_bytes()[:8] == b"PYTGTAPE"
