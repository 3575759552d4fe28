"""The pt device type on a real SCSI device: in the QEMU guest (this host has none).

The host's pytgtd exports a file with known content; the guest logs in (open-iscsi), so
the disk is /dev/sdX with its /dev/sgN. Inside the guest, pytgt's own source runs on
Debian's Python (linux_guest's Python variant): a pytgtd with a ``--device-type pt
--bstype sg -b /dev/sgN`` LU, to which the guest logs in too (/dev/sdY). What the guest
sees through sdY must be what it sees through sdX: identity (INQUIRY, VPD 80h/83h),
capacity, the device's sense for a bad command, Data-In residuals, data; what it writes
through sdY must land in the host's file. From the host, libiscsi's tools reach the
guest's pytgtd through QEMU's hostfwd.
"""

from __future__ import annotations

import hashlib
import random
import re
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.guest.conftest import PORTAL, Guest, booted, make_target, pytgt_files
from tests.helpers import RunningDaemon, start_daemon
from tests.interop.test_conformance_full import iscsi_test_cu

IQN = "iqn.2026-12.org.pytgt:guest-pt-backing"
PT_IQN = "iqn.2026-12.org.pytgt:guest-pt"
SIZE = 16 << 20
MIB = 1 << 20
#: libiscsi's iscsi-test-cu suites run through the pt LU in the test (about 40 s under TCG):
#: the quick ones of the full run that docs/passthrough.md reports (200 of 230 passed,
#: 33 minutes), task management, residuals, reservations of one initiator, EXTENDED COPY.
SUITES = ("ALL.TestUnitReady", "ALL.Inquiry", "ALL.ReadCapacity10", "ALL.ReadCapacity16",
          "ALL.Read10", "ALL.ReportSupportedOpcodes", "ALL.Mandatory", "ALL.ModeSense6",
          "ALL.Prefetch10", "ALL.StartStopUnit", "ALL.PreventAllow", "ALL.Reserve6.Simple",
          "ALL.ProutRegister", "ALL.PrinReadKeys", "ALL.ExtendedCopy", "ALL.iSCSITMF",
          "ALL.iSCSIcmdsn", "ALL.iSCSIdatasn", "ALL.iSCSIResiduals")
#: sg (and bsg) report one residual count, not its direction: a residual larger than the
#: buffer is an overflow, one as large as the buffer is taken for an underflow. Each of
#: these tests has one case of an overflow exactly the buffer's size (2 blocks asked for,
#: 1 block of EDTL), so each fails that one case through pass-through.
RESIDUAL_AMBIGUITY = [f"iSCSIResiduals.{name}" for name in (
    "Read10Invalid", "Read10Residuals", "Read12Residuals", "Read16Residuals",
    "Write10Residuals", "Write12Residuals", "Write16Residuals", "WriteVerify10Residuals",
    "WriteVerify12Residuals", "WriteVerify16Residuals")]

SCRIPT = f"""
T={IQN}; P={PORTAL}; PT={PT_IQN}
export PYTHONPATH=/guest PYTGT_RUN_DIR=/run/pytgt PYTGT_STATE_DIR=/tmp/pytgt-state
trap 'echo "--- guest pytgtd log"; cat /tmp/pytgtd.log 2>/dev/null' EXIT
iscsid_start
iscsiadm -m node -o new -T $T -p $P >/dev/null
iscsiadm -m node -T $T -p $P --login
poll 30 disk_of $T 1
D=$(disk_of $T 1)
G=/dev/$(ls /sys/block/${{D#/dev/}}/device/scsi_generic)
mark HOST-DISK $D $G

python3 -m pytgt.daemon.main -f -C 5 --iscsi portal=127.0.0.1:3260 \\
  --iscsi portal=10.0.2.15:3260 >/tmp/pytgtd.log 2>&1 &
PTD=$!
until grep -q "listening on" /tmp/pytgtd.log; do kill -0 $PTD; sleep 0.2; done
mark GUEST-PYTGTD $(python3 -c 'import crc32c, prometheus_client; print("deps-ok")')
adm() {{ python3 -m pytgt.cli.pytgtadm -C 5 --lld iscsi "$@"; }}
adm --op new --mode target --tid 1 -T $PT
for b in $D /dev/null; do
  if adm --op new --mode logicalunit --tid 1 --lun 1 --bstype sg --device-type pt -b $b \\
      2>/tmp/err; then mark ACCEPTED $b; exit 1; fi
  mark REFUSED $(cat /tmp/err)
done
adm --op new --mode logicalunit --tid 1 --lun 1 --bstype sg --device-type pt -b $G
B=/dev/bsg/$(ls /sys/block/${{D#/dev/}}/device/bsg)
if adm --op new --mode logicalunit --tid 1 --lun 2 --bstype bsg --device-type pt -b $G \
    2>/tmp/err; then mark ACCEPTED $G; exit 1; fi
mark REFUSED $(cat /tmp/err)
adm --op new --mode logicalunit --tid 1 --lun 2 --bstype bsg --device-type pt -b $B
mark BSG $B
adm --op bind --mode target --tid 1 -I ALL
adm --op show --mode target | sed 's/^/@@PYTGT@@ SHOW /'

mark DISCOVERED $(iscsiadm -m discovery -t sendtargets -p 127.0.0.1:3260 | grep -c $PT)
iscsiadm -m node -T $PT -p 127.0.0.1:3260 --login
poll 30 disk_of $PT 1
E=$(disk_of $PT 1)
mark PT-DISK $E
poll 30 disk_of $PT 2
F=$(disk_of $PT 2)
flat() {{ tr -s ' ' | tr '\\n' '|'; }}
for d in $D $E $F; do
  n=${{d#/dev/}}
  mark INQ $n $(sg_inq $d | grep -E "identification|revision level|PDT=" | flat)
  mark SN $n $(sg_vpd -p sn $d | flat)
  mark DI $n $(sg_vpd -p di $d | flat)
  mark CAP $n $(sg_readcap -l $d | grep -E "Last LBA|Logical block length" | flat)
  # READ(10) of the last LBA + 1: the device's CHECK CONDITION and sense, as sent
  last=$(sg_readcap $d | sed -n 's/.*Last LBA=\\([0-9]*\\).*/\\1/p')
  lba=$(printf '%08x' $((last + 1)))
  mark OOR $n $(sg_raw -r 512 $d 28 00 $(echo $lba | sed 's/../& /g') 00 00 01 00 2>&1 | flat)
  # INQUIRY with room for 1024 bytes: the device sends fewer (a Data-In residual)
  mark RESID $n $(sg_raw -r 1024 $d 12 00 00 00 ff 00 2>&1 | grep -i received | flat)
done
mark READ $(dd if=$E bs=64k count=16 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
mark BSG-READ $(dd if=$F bs=64k count=16 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
dd if=/dev/urandom of=/tmp/w bs=64k count=16 2>/dev/null
dd if=/tmp/w of=$E bs=64k seek=32 count=16 oflag=direct 2>/dev/null
mark WROTE $(sha256sum < /tmp/w | cut -d' ' -f1)
gate written
mark READBACK $(dd if=$D bs=64k skip=32 count=16 iflag=direct 2>/dev/null | sha256sum | \\
  cut -d' ' -f1)
mark BSG-READBACK $(dd if=$F bs=64k skip=32 count=16 iflag=direct 2>/dev/null | \\
  sha256sum | cut -d' ' -f1)
# written through bsg: the host's disk has it
dd if=/dev/urandom of=/tmp/w2 bs=64k count=4 2>/dev/null
dd if=/tmp/w2 of=$F bs=64k seek=64 count=4 oflag=direct 2>/dev/null
mark BSG-WROTE $(sha256sum < /tmp/w2 | cut -d' ' -f1)
mark BSG-WRITEBACK $(dd if=$D bs=64k skip=64 count=4 iflag=direct 2>/dev/null | \\
  sha256sum | cut -d' ' -f1)
# a LOGICAL UNIT RESET of the bsg LU: SG_SCSI_RESET through the device's sg node
sg_reset -d $F
# a LOGICAL UNIT RESET of sdb reaches the device: SG_SCSI_RESET on sg1, the host's LU reset
sg_reset -d $E
mark RESET $(dd if=$E bs=64k count=1 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
iscsiadm -m node -T $PT -p 127.0.0.1:3260 --logout
# libiscsi's conformance suites from the host, the pt LU theirs alone
gate conformance
adm --op delete --mode logicalunit --tid 1 --lun 1
adm --op delete --mode logicalunit --tid 1 --lun 2
kill $PTD
wait $PTD && mark PYTGTD-EXIT 0
iscsiadm -m node -T $T -p $P --logout
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _by_disk(run_marker: list[str]) -> dict[str, str]:
    """``NAME sdX rest`` markers -> {sdX: rest}."""
    return dict(m.split(" ", 1) for m in run_marker)


@pytest.mark.timeout(900)
def test_passthrough_lu_is_the_device_behind_it(python_guest: Guest, tmp_path: Path) -> None:
    metrics = _free_port()
    daemon = start_daemon(tmp_path, extra=("--metrics", f"127.0.0.1:{metrics}"))
    try:
        _check(python_guest, daemon, tmp_path)
        lu_resets = re.findall(r'pytgt_target_tmf_total\{[^}]*function="logical_unit_reset"'
                               r'[^}]*response="function_complete"[^}]*\} (\S+)',
                               urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics",
                                                      timeout=30).read().decode())
        assert lu_resets and float(lu_resets[0]) >= 2  # the guest's two device resets (sg, bsg)
    finally:
        daemon.stop()


def _check(python_guest: Guest, daemon: RunningDaemon, tmp_path: Path) -> None:
    backing = tmp_path / "disk.img"
    content = random.Random(7).randbytes(4 * MIB)
    with open(backing, "wb") as f:
        f.write(content)
        f.truncate(SIZE)
    make_target(daemon, 1, IQN, backing)
    hostfwd = _free_port()
    with booted(python_guest, SCRIPT, {PORTAL: daemon.port}, tmp_path / "boot.log",
                files=pytgt_files(), inbound={hostfwd: 3260}, memory_mb=768) as run:
        sd, sg = run.marker("HOST-DISK", 120).split()
        assert re.fullmatch(r"/dev/sg\d+", sg), sg
        assert run.marker("GUEST-PYTGTD", 240) == "deps-ok"
        refused = [run.marker("REFUSED", 60, n) for n in (1, 2, 3)]
        assert refused[0] == (f"pytgtadm: {sd}: not a SCSI generic device (a block device; "
                              "bstype sg needs /dev/sgN, a character device of major 21)")
        assert refused[1].startswith("pytgtadm: /dev/null: not a SCSI generic device (a "
                                     "character device of major 1;")
        assert re.fullmatch(rf"pytgtadm: {sg}: not a bsg device \(a character device "
                            r"21:\d+; bstype bsg needs /dev/bsg/H:C:T:L\)", refused[2])
        bsg = run.marker("BSG", 60)
        assert re.fullmatch(r"/dev/bsg/\d+:0:0:1", bsg), bsg
        assert int(run.marker("DISCOVERED", 60)) >= 1
        pt = run.marker("PT-DISK", 120)
        for what in ("INQ", "SN", "DI", "CAP", "OOR", "RESID"):
            seen = _by_disk([run.marker(what, 120, n) for n in (1, 2, 3)])
            assert len(set(seen.values())) == 1 and sd.removeprefix("/dev/") in seen, \
                (what, seen)  # the host's disk, its sg LU and its bsg LU alike
            assert seen[pt.removeprefix("/dev/")], what
        assert run.marker("READ", 120) == hashlib.sha256(content[:MIB]).hexdigest()
        assert run.marker("BSG-READ", 120) == hashlib.sha256(content[:MIB]).hexdigest()
        wrote = run.marker("WROTE", 120)
        with run.gate("written", 120):
            with open(backing, "rb") as f:
                f.seek(2 * MIB)
                assert hashlib.sha256(f.read(MIB)).hexdigest() == wrote
            _libiscsi_from_the_host(hostfwd)
        assert run.marker("READBACK", 120) == wrote
        assert run.marker("BSG-READBACK", 120) == wrote
        assert run.marker("BSG-WRITEBACK", 120) == run.marker("BSG-WROTE", 120)
        assert run.marker("RESET", 120) == hashlib.sha256(content[:65536]).hexdigest()
        with run.gate("conformance", 120):
            _conformance_from_the_host(hostfwd)
        run.marker("PYTGTD-EXIT", 120)
    console = run.console()
    shown = [line.split(" SHOW ", 1)[1] for line in console.splitlines() if " SHOW " in line]
    lun1 = shown[shown.index("        LUN: 1"):]
    assert lun1[1:16] == [
        "            Type: passthrough", "            SCSI ID: IET     00010001",
        "            SCSI SN: beaf11", "            Size: 0 MB, Block size: 1",
        "            Online: Yes", "            Removable media: No",
        "            Prevent removal: No", "            Readonly: No", "            SWP: No",
        "            Thin-provisioning: No", "            Backing store type: sg",
        f"            Backing store path: {sg}", "            Backing store flags: ",
        "        LUN: 2", "            Type: passthrough"], lun1
    lun2 = lun1[lun1.index("        LUN: 2"):]
    assert lun2[11:15] == [
        "            Backing store type: bsg", f"            Backing store path: {bsg}",
        "            Backing store flags: ", "    Account information:"], lun2
    inq = next(line for line in console.splitlines() if " INQ " in line)
    assert "IET" in inq and "VIRTUAL-DISK" in inq  # the host pytgtd's LU, not a pt default


def _libiscsi_from_the_host(port: int) -> None:
    """libiscsi's iscsi-inq and iscsi-readcapacity16 on the guest's pt LU (hostfwd)."""
    if shutil.which("iscsi-inq") is None:
        return
    url = f"iscsi://127.0.0.1:{port}/{PT_IQN}/1"
    inq = subprocess.run(["iscsi-inq", url], capture_output=True, text=True, timeout=120)
    assert inq.returncode == 0, inq.stderr
    assert "VIRTUAL-DISK" in inq.stdout and "IET" in inq.stdout, inq.stdout
    cap = subprocess.run(["iscsi-readcapacity16", url], capture_output=True, text=True,
                         timeout=120)
    assert cap.returncode == 0, cap.stderr
    assert f"Total size:{SIZE}" in cap.stdout, cap.stdout


def _conformance_from_the_host(port: int) -> None:
    """libiscsi's conformance suites (writes allowed) on the guest's pt LU (hostfwd)."""
    if shutil.which("iscsi-test-cu") is None:
        return
    url = f"iscsi://127.0.0.1:{port}/{PT_IQN}/1"
    failed: list[str] = []
    for suite in SUITES:
        result = iscsi_test_cu(suite, url, timeout=300)
        assert result.run > 0 and result.not_implemented == [], result.report()
        assert result.passed + len(result.failed) == result.run, result.report()
        failed += result.failed
    assert failed == RESIDUAL_AMBIGUITY
