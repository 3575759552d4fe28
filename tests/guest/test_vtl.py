"""tgt's VTL example (targets.conf.vtl.L700: an STK L700 with 216 slots, 20 import/export
elements and 3 HP LTO3 drives) loaded unchanged into pytgtd but for its /root/ media
directory, used from the Linux kernel's initiator in a QEMU guest as backup software
uses a library: mtx status, load, unload and loaderinfo on the changer; tapeinfo,
mt-st, tar, sg_read_attr (medium auxiliary memory), a WRITE ATTRIBUTE through sg_raw and
sg_logs on the loaded drive. The host asserts each step's output, then the cartridge
file: the tar archive and the host attributes in its header.
"""

from __future__ import annotations

import hashlib
import io
import struct
import tarfile
from pathlib import Path

import pytest

from pytgt.scsi.tape_media import MAM_OFFSET, parse_mam
from tests.daemon.test_e2e_changer import EXAMPLES, admin, pytgtimg, vtl_setup
from tests.guest.conftest import PORTAL, Guest, booted
from tests.guest.test_tape import _files
from tests.helpers import start_daemon

IQN = "iqn.2008-09.com.example:server.tape"  # the example's target

#: WRITE ATTRIBUTE's parameter list: APPLICATION VENDOR, APPLICATION NAME, USER MEDIUM
#: TEXT LABEL, as backup software writes them (SPC-4 6.36, 7.4.3)
ATTRS = b"".join(struct.pack(">HBH", i, f, len(v)) + v for i, f, v in (
    (0x0800, 1, b"PYTGTEST"), (0x0801, 1, b"guest backup".ljust(32)),
    (0x0803, 2, b"weekly full, set 7".ljust(160, b"\0"))))
WRITE_ATTR = struct.pack(">I", len(ATTRS)) + ATTRS

SCRIPT = f"""
T={IQN}; P={PORTAL}
MT=mt-st
iscsid_start
iscsiadm -m node -o new -T $T -p $P >/dev/null
iscsiadm -m node -T $T -p $P --login
for l in 1 2 3; do poll 30 dev_of $T $l scsi_tape; done
poll 30 dev_of $T 4 scsi_generic
G=$(dev_of $T 4 scsi_generic); S=$(dev_of $T 3 scsi_tape); SG=$(dev_of $T 3 scsi_generic)
one() {{ tr '\\n' '|'; }}
mark STATUS0 "$(mtx -f $G status 2>&1 | one)"
# tgt's notape, a cleaning cartridge; the first tapeinfo's LOG SENSE meets the power-on
# unit attention, as on a real drive
tapeinfo -f $(dev_of $T 1 scsi_generic) >/dev/null 2>&1
mark NOTAPE "$(tapeinfo -f $(dev_of $T 1 scsi_generic) 2>&1 | one)"
mtx -f $G load 1 0
mark LOADED "$(mtx -f $G status 2>&1 | one)"
poll 30 $MT -f $S status
mark TAPEINFO "$(tapeinfo -f $SG 2>&1 | one)"
mark MTSTATUS "$($MT -f $S status 2>&1 | one)"
mkdir -p /tmp/t/sub
dd if=/dev/urandom of=/tmp/t/a bs=1000 count=7 2>/dev/null
echo "a small file" > /tmp/t/sub/b
(cd /tmp/t && find . -type f | sort | xargs sha256sum) > /tmp/t.sum
mark FILES "$(one < /tmp/t.sum)"
$MT -f $S rewind
tar -cf - -C /tmp/t . | dd of=$S obs=10240 2>/dev/null  # GNU tar's 10240-byte records
$MT -f $S rewind
mkdir /tmp/x
dd if=$S bs=10240 2>/dev/null | tar -xf - -C /tmp/x
(cd /tmp/x && sha256sum -c /tmp/t.sum >/dev/null)
mark TAR ok
mark ATTRS "$(sg_read_attr $SG 2>&1 | one)"
sg_raw -s {len(WRITE_ATTR)} -i /guest/attrs $SG 8d 0 0 0 0 0 0 0 0 0 0 0 0 {len(WRITE_ATTR):02x} 0 0
mark HOSTATTRS "$(sg_read_attr --first=0x800 $SG 2>&1 | one)"
mark ATTRLIST "$(sg_read_attr --sa=1 $SG 2>&1 | one)"
mark LOGS "$(sg_logs $SG 2>&1 | one)"
mark SEQLOG "$(sg_logs --page=0xc $SG 2>&1 | one)"
mark ALERTS "$(sg_logs --page=0x2e $SG 2>&1 | one)"
$MT -f $S rewind
mtx -f $G unload 1 0
mark UNLOADED "$(mtx -f $G status 2>&1 | one)"
mtx -f $G load 2 1
mark SECOND "$(mtx -f $G status 2>&1 | one)"
mark LOADERINFO "$(loaderinfo -f $G 2>&1 | one)"
mtx -f $G unload 2 1
iscsiadm -m node -T $T -p $P --logout
"""


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="tgt's examples are not installed")
def test_tgt_l700_example_as_a_library(guest: Guest, tmp_path: Path) -> None:
    conf, tapes = vtl_setup(tmp_path, "targets.conf.vtl.L700")
    for n in (1, 2, 3):
        pytgtimg("--op", "new", "--device-type", "tape", "--barcode", f"A000000{n}",
                 "--size", "16", "--type", "data", "--file", str(tapes / f"A000000{n}"))
    d = start_daemon(tmp_path / "d", extra=("--allow-backing-symlinks",))
    try:
        admin(d, "-e", "-c", str(conf))
        lu4 = ("--lld", "iscsi", "--mode", "logicalunit", "--op", "update", "--tid", "1",
               "--lun", "4", "--params")
        d.adm(*lu4, "element_type=2,address=1000,barcode=A0000001,sides=1")  # slot 1
        d.adm(*lu4, "element_type=2,address=1001,barcode=A0000002,sides=1")  # slot 2
        d.adm(*lu4, "element_type=3,address=10,barcode=A0000003,sides=1")  # a mail slot
        with booted(guest, SCRIPT, {PORTAL: d.port}, tmp_path / "boot.log",
                    files={"attrs": WRITE_ATTR}) as run:
            status = run.marker("STATUS0", 120).split("|")
            assert status[0].strip() == \
                "Storage Changer /dev/sg" + status[0].split("/dev/sg")[1].split(":")[0] \
                + ":3 Drives, 236 Slots ( 20 Import/Export )"
            assert [s.strip() for s in status[1:4]] == [f"Data Transfer Element {n}:Empty"
                                                         for n in range(3)]
            assert status[4].strip() == "Storage Element 1:Full :VolumeTag=A0000001"
            assert status[5].strip() == "Storage Element 2:Full :VolumeTag=A0000002"
            assert sum("Storage Element" in s and "IMPORT/EXPORT" not in s
                       for s in status) == 216
            assert "Storage Element 217 IMPORT/EXPORT:Full :VolumeTag=A0000003" in \
                [s.strip() for s in status]
            assert sum("IMPORT/EXPORT" in s for s in status) == 20
            notape = run.marker("NOTAPE", 60).split("|")
            assert "TapeAlert[11]: Cleaning Media:Cannot back up or restore to a cleaning " \
                "cartridge." in notape, notape
            assert "Medium Type: Not Loaded" in notape  # 00h: no data cartridge
            loaded = [s.strip() for s in run.marker("LOADED", 60).split("|")]
            assert "Data Transfer Element 0:Full (Storage Element 1 Loaded):VolumeTag = " \
                "A0000001" in loaded
            assert any(s.startswith("Storage Element 1:Empty") for s in loaded)  # tag: spaces
            info = run.marker("TAPEINFO", 60).split("|")
            for line in ("Product Type: Tape Drive", "Vendor ID: 'HP      '",
                         "Product ID: 'LTO3 ULTRIUM    '", "SerialNumber: 'HUM1A00003'",
                         "MinBlock: 1", "MaxBlock: 16777215", "Ready: yes",
                         "Medium Type: 0x58", "Density Code: 0x58", "BlockSize: 0",
                         "DataCompCapable: yes", "BOP: yes", "Block Position: 0",
                         "Partition 0 Remaining Kbytes: 15", "Partition 0 Size in Kbytes: 16",
                         "ActivePartition: 0"):
                assert line in info, (line, info)
            assert not any(s.startswith("TapeAlert") for s in info)
            mt = run.marker("MTSTATUS", 60)
            assert "Density code 0x58 (LTO-5)." in mt and "BOT ONLINE" in mt
            files = run.marker("FILES", 60)
            run.marker("TAR", 120)
            attrs = [a.strip() for a in run.marker("ATTRS", 60).split("|")]
            for line in ("Remaining capacity in partition [MiB]: 15",
                         "Maximum capacity in partition [MiB]: 16", "Load count: 1",
                         "MAM space remaining [B]: 436", "Format density code: 0x58",
                         "Medium manufacturer: PYTGT", "Medium density code: 0x58",
                         "Medium type: 0x0", "Barcode: A0000001"):
                assert line in attrs, (line, attrs)
            assert any(a.startswith("Medium serial number: A0000001_") for a in attrs)
            host = [a.strip() for a in run.marker("HOSTATTRS", 60).split("|")]
            assert host[1:5] == ["Application vendor: PYTGTEST",
                                 "Application name: guest backup",
                                 "User medium text label: weekly full, set 7",
                                 "Barcode: A0000001"], host
            listed = [a.strip() for a in run.marker("ATTRLIST", 60).split("|")]
            assert listed[0] == "Attribute list:" and len(listed) == 16  # 14, title, end
            assert "Application vendor" in listed and "Load count" in listed
            logs = run.marker("LOGS", 60)
            for page in ("0x00        Supported log pages", "0x02        Write error",
                         "0x03        Read error", "0x0c        Sequential access device",
                         "0x2e        Tape alert", "0x31        Tape capacity"):
                assert page in logs, (page, logs)
            seq = run.marker("SEQLOG", 60)
            assert "Data bytes received with WRITE commands" in seq
            assert "Cleaning action not required" in seq
            alerts = run.marker("ALERTS", 60).split("|")
            assert sum(a.strip().endswith(": 0") for a in alerts) == 64, alerts  # all clear
            unloaded = [s.strip() for s in run.marker("UNLOADED", 60).split("|")]
            assert "Data Transfer Element 0:Empty" in unloaded
            assert "Storage Element 1:Full :VolumeTag=A0000001" in unloaded
            second = [s.strip() for s in run.marker("SECOND", 60).split("|")]
            assert "Data Transfer Element 1:Full (Storage Element 2 Loaded):VolumeTag = " \
                "A0000002" in second
            loader = run.marker("LOADERINFO", 60).split("|")
            for line in ("Product Type: Medium Changer", "Vendor ID: 'STK     '",
                         "Product ID: 'L700            '", "Number of Storage Elements: 216",
                         "Number of Import/Export Elements: 20",
                         "Number of Data Transfer Elements: 3",
                         "Number of Medium Transport Elements: 1"):
                assert line in loader, (line, loader)
        # the cartridge: the archive as tar wrote it, the host attributes in its header
        raw = (tapes / "A0000001").read_bytes()
        mam = parse_mam(raw[MAM_OFFSET:512])
        assert mam[0x0800] == b"PYTGTEST" and mam[0x0801] == b"guest backup"
        assert mam[0x0803] == b"weekly full, set 7"
        assert int.from_bytes(mam[0x0003], "big") == 1  # loaded once
        sums = {path: sha for sha, path in (line.split() for line in files.split("|") if line)}
        archive = b"".join(_files(tapes / "A0000001")[0])
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
            got = {m.name: hashlib.sha256(tar.extractfile(m).read()).hexdigest()  # type: ignore[union-attr]
                   for m in tar.getmembers() if m.isfile()}
        assert got == sums
    finally:
        assert d.stop() == 0, "".join(d.log[-30:])
