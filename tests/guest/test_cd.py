"""``-Y cd`` LUs under the Linux kernel's CD-ROM drivers (sr, cdrom, isofs) in the QEMU
guest: mount an ISO 9660 disc, eject and reload it, swap in another disc with
``pytgtadm --params path=`` (refused while the mounted disc's door is locked), and put a
disc in a drive created empty (a DVD: the image grown past a CD's size)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tests.guest.conftest import PORTAL, Guest, booted
from tests.helpers import RunningDaemon
from tests.iso import mastered_iso

IQN = "iqn.2026-12.org.pytgt:guest-cd"

DISC_A = {"README.TXT": b"disc A\n", "data/random.bin": os.urandom(300_000),
          "data/deep/er/note.txt": b"nested\n" * 1000}
DISC_B = {"OTHER.TXT": b"disc B\n", "big.bin": os.urandom(1_500_000)}

SCRIPT = f"""
T={IQN}; P={PORTAL}
iscsid_start
iscsiadm -m node -o new -T $T -p $P >/dev/null  # at the portal reached, as behind NAT
iscsiadm -m node -T $T -p $P --login
poll 30 disk_of $T 1
poll 30 disk_of $T 2
D=$(disk_of $T 1); E=$(disk_of $T 2)
mark DRIVES $D $E
mark CAPABILITIES $(dmesg | grep -o 'scsi3-mmc drive:.*' | head -1)
mark CDROM-ID $(/usr/lib/udev/cdrom_id $D)
files() {{ (cd /mnt && find . -type f | sort | xargs sha256sum); }}
mount -t iso9660 -o ro $D /mnt
mark FILES-A $(files)
if sg_start -v --eject $D 2>/tmp/err; then mark EJECTED-WHILE-LOCKED; exit 1; fi
mark LOCKED $(cat /tmp/err)
gate mounted
umount /mnt
eject $D
mark EJECTED
eject -t $D
mount -t iso9660 -o ro $D /mnt
mark RELOADED $(files)
umount /mnt
eject $D
if mount -t iso9660 -o ro $E /mnt 2>/tmp/err; then mark EMPTY-DRIVE-MOUNTED; exit 1; fi
mark EMPTY $(cat /tmp/err)
gate swap
mount -t iso9660 -o ro $D /mnt
mark FILES-B $(files)
umount /mnt
mount -t iso9660 -o ro $E /mnt
mark FILES-A-ON-A-DVD $(files)
mark DVD-ID $(/usr/lib/udev/cdrom_id $E)
umount /mnt
iscsiadm -m node -T $T -p $P --logout
"""


def _sums(files: dict[str, bytes]) -> dict[str, str]:
    return {f"./{rel}": hashlib.sha256(data).hexdigest() for rel, data in files.items()}


def _parse(marked: str) -> dict[str, str]:
    words = marked.split()
    return dict(zip(words[1::2], words[0::2], strict=True))


def test_mount_eject_and_swap_discs(guest: Guest, daemon: RunningDaemon,
                                    tmp_path: Path) -> None:
    disc_a = mastered_iso(tmp_path / "a.iso", "DISC_A", DISC_A)
    disc_b = mastered_iso(tmp_path / "b.iso", "DISC_B", DISC_B)
    daemon.adm("--op", "new", "--mode", "target", "--tid", "1", "-T", IQN)
    daemon.adm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1",
               "--device-type", "cd", "-b", str(disc_a))
    daemon.adm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "2",
               "--device-type", "cd")  # a drive with no disc in
    daemon.adm("--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")
    dvd = tmp_path / "dvd.iso"  # A's file system on a medium too large for a CD
    dvd.write_bytes(disc_a.read_bytes())
    with open(dvd, "r+b") as f:
        f.truncate(800 << 20)
    swap = ("--op", "update", "--mode", "logicalunit", "--tid", "1", "--lun", "1",
            "--params", f"path={disc_b}")
    with booted(guest, SCRIPT, {PORTAL: daemon.port}, tmp_path / "boot.log") as run:
        assert run.marker("DRIVES", 120).split()[0].startswith("/dev/sr")
        caps = run.marker("CAPABILITIES", 60)
        assert caps.endswith(" tray"), caps  # MODE SENSE 2Ah: loading mechanism
        cdrom_id = run.marker("CDROM-ID", 60).split()
        assert "ID_CDROM=1" in cdrom_id and "ID_CDROM_MEDIA=1" in cdrom_id, cdrom_id
        assert _parse(run.marker("FILES-A", 60)) == _sums(DISC_A)
        assert "Additional sense: Medium removal prevented" in run.marker("LOCKED", 60)
        with run.gate("mounted", 60):  # the kernel locked the door: no swap
            refused = daemon.adm(*swap, check=False)
            assert (refused.returncode, refused.stderr) == (
                22, "pytgtadm: this device has Prevent Removal set\n")
            shown = daemon.adm("--op", "show", "--mode", "target").stdout
            lun1 = shown[shown.index("LUN: 1"):]
            for line in ("Type: cd/dvd", "Removable media: Yes", "Prevent removal: Yes",
                         f"Backing store path: {disc_a}"):
                assert f"            {line}\n" in lun1, lun1
        run.marker("EJECTED", 60)
        assert _parse(run.marker("RELOADED", 60)) == _sums(DISC_A)
        assert "No medium found" in run.marker("EMPTY", 60)
        with run.gate("swap", 60):  # the tray of LUN 1 is open, LUN 2 has no disc
            shown = daemon.adm("--op", "show", "--mode", "target").stdout
            for lun in ("LUN: 1", "LUN: 2"):
                block = shown[shown.index(lun):]
                assert "            Online: No\n" in block[:block.index("Backing store")]
                assert "            Prevent removal: No\n" in block
            daemon.adm(*swap)
            daemon.adm("--op", "update", "--mode", "logicalunit", "--tid", "1", "--lun", "2",
                       "--params", f"path={dvd}")
            shown = daemon.adm("--op", "show", "--mode", "target").stdout
            assert f"Backing store path: {disc_b}\n" in shown
            assert shown.count("            Online: Yes\n") == 3  # LUN 0 and both drives
        assert _parse(run.marker("FILES-B", 60)) == _sums(DISC_B)
        assert _parse(run.marker("FILES-A-ON-A-DVD", 60)) == _sums(DISC_A)
        dvd_id = run.marker("DVD-ID", 60).split()
        assert "ID_CDROM_MEDIA_DVD=1" in dvd_id, dvd_id
