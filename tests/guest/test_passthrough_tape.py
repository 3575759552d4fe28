"""A tape drive through the pt device type: pass-through is not disk-only.

The host's pytgtd serves a ``-Y tape`` LU (a pytgtimg medium); the guest logs in, the
kernel's st driver binds it (/dev/nstX) and sg gives it /dev/sgN. Inside the guest a
second pytgtd (pytgt's own source on Debian's Python) passes that /dev/sgN through a pt
LU, the guest logs in to it, and st binds the pass-through LU too (/dev/nstY): mt-st,
busybox tar and dd work on /dev/nstY across both hops, a variable-block read shorter
than the block comes back with the device's ILI sense and residual, and the host finds
the tape files on its medium file. The sg store gives a tape's commands tgt's 14000 s.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.guest.conftest import PORTAL, Guest, booted, pytgt_files
from tests.guest.test_tape import _files, _marked
from tests.helpers import RunningDaemon

IQN = "iqn.2026-12.org.pytgt:guest-pt-tape-backing"
PT_IQN = "iqn.2026-12.org.pytgt:guest-pt-tape"

SCRIPT = f"""
T={IQN}; P={PORTAL}; PT={PT_IQN}
export PYTHONPATH=/guest PYTGT_RUN_DIR=/run/pytgt PYTGT_STATE_DIR=/tmp/pytgt-state
trap 'echo "--- guest pytgtd log"; cat /tmp/pytgtd.log 2>/dev/null' EXIT
mt() {{ mt-st "$@"; }}  # mt-st's mt (busybox's lacks status, tell)
# tape_of IQN: the /dev/nstN of LUN 1 of the target's session
tape_of() {{
  for s in /sys/class/iscsi_session/session*; do
    [ "$(cat "$s/targetname")" = "$1" ] || continue
    for d in /sys/class/scsi_tape/nst[0-9]; do
      case $(readlink -f $d/device) in */${{s##*/}}/*:1) echo /dev/${{d##*/}}; return 0;; esac
    done
  done
  return 1
}}
iscsid_start
iscsiadm -m node -o new -T $T -p $P >/dev/null
iscsiadm -m node -T $T -p $P --login
poll 30 tape_of $T
H=$(tape_of $T)
G=/dev/$(ls /sys/class/scsi_tape/${{H#/dev/}}/device/scsi_generic)
mark HOST-TAPE $H $G

python3 -m pytgt.daemon.main -f -C 5 --iscsi portal=127.0.0.1:3260 >/tmp/pytgtd.log 2>&1 &
PTD=$!
until grep -q "listening on" /tmp/pytgtd.log; do kill -0 $PTD; sleep 0.2; done
adm() {{ python3 -m pytgt.cli.pytgtadm -C 5 --lld iscsi "$@"; }}
adm --op new --mode target --tid 1 -T $PT
adm --op new --mode logicalunit --tid 1 --lun 1 --bstype sg --device-type pt -b $G
adm --op bind --mode target --tid 1 -I ALL
mark TIMEOUT $(grep -o "peripheral device type .*" /tmp/pytgtd.log)
iscsiadm -m node -o new -T $PT -p 127.0.0.1:3260 >/dev/null
iscsiadm -m node -T $PT -p 127.0.0.1:3260 --login
poll 30 tape_of $PT
N=$(tape_of $PT)
mark PT-TAPE $N $(cat /sys/class/scsi_tape/${{N#/dev/}}/device/type)
mark INQ $(sg_inq $N | grep -E "identification|PDT=" | tr -s ' ' | tr '\\n' '|')
st_of() {{
  mt -f $N status > /tmp/st
  echo $(sed -n 's/^File number=\\([-0-9]*\\), block number=\\([-0-9]*\\).*/\\1 \\2/p' /tmp/st) \\
    $(tail -n 1 /tmp/st)
}}
mark STATUS0 $(st_of)
mt -f $N rewind

mkdir -p /tmp/t/sub
dd if=/dev/urandom of=/tmp/t/a bs=512 count=21 2>/dev/null
dd if=/dev/urandom of=/tmp/t/sub/b bs=4096 count=9 2>/dev/null
(cd /tmp/t && find . -type f | sort | xargs sha256sum) > /tmp/t.sum
mark FILES $(cat /tmp/t.sum)
mt -f $N setblk 512
tar -cf $N -C /tmp/t .
mark AFTER-TAR $(st_of)
mt -f $N setblk 0
head -c 72637 /dev/urandom > /tmp/v
{{ dd bs=100 count=1; dd bs=7000 count=1; dd bs=65536 count=1; dd bs=1 count=1; }} \\
  < /tmp/v > $N 2>/dev/null
mark V $(sha256sum < /tmp/v)
mt -f $N weof
mark AFTER-WEOF $(st_of)
mark TELL $(mt -f $N tell)

mt -f $N rewind
mt -f $N setblk 512
mkdir /tmp/o
tar -xf $N -C /tmp/o
mark READ $(cd /tmp/o && find . -type f | sort | xargs sha256sum)
mark AT1 $(st_of)
mt -f $N setblk 0
dd if=$N of=/tmp/v.r bs=65536 2>/tmp/dd.err || true
mark V-READ $(sha256sum < /tmp/v.r) $(head -n 1 /tmp/dd.err)
# a variable block longer than the read: the device's ILI sense through both hops
mt -f $N rewind
mt -f $N fsf 1
mt -f $N fsr 1
dd if=$N of=/tmp/short bs=1000 count=1 2>/tmp/dd.err && mark OVERLENGTH-READ-OK
mark OVERLENGTH $(tail -n 1 /tmp/dd.err | sed 's/.*: //')
mt -f $N rewind
mt -f $N fsf 2
mark FSF2 $(st_of)
mt -f $N rewind
mark REWOUND $(st_of)
iscsiadm -m node -T $PT -p 127.0.0.1:3260 --logout
adm --op delete --mode logicalunit --tid 1 --lun 1
kill $PTD
wait $PTD && mark PYTGTD-EXIT 0
iscsiadm -m node -T $T -p $P --logout
"""


@pytest.mark.timeout(600)
def test_tape_through_passthrough(python_guest: Guest, daemon: RunningDaemon,
                                  tmp_path: Path) -> None:
    tape = tmp_path / "tape.img"
    subprocess.run([sys.executable, "-m", "pytgt.cli.pytgtimg", "--op", "new",
                    "--device-type", "tape", "--barcode", "PT0001", "--size", "32",
                    "--type", "data", "--file", str(tape)], env=daemon.env, check=True)
    adm = ("--lld", "iscsi", "--op")
    daemon.adm(*adm, "new", "--mode", "target", "--tid", "1", "-T", IQN)
    daemon.adm(*adm, "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1",
               "-Y", "tape", "-b", str(tape))
    daemon.adm(*adm, "bind", "--mode", "target", "--tid", "1", "-I", "ALL")
    with booted(python_guest, SCRIPT, {PORTAL: daemon.port}, tmp_path / "boot.log",
                files=pytgt_files(), memory_mb=768) as run:
        host_tape, sg = run.marker("HOST-TAPE", 120).split()
        assert host_tape.startswith("/dev/nst") and sg.startswith("/dev/sg")
        assert run.marker("TIMEOUT", 240) == "peripheral device type 01h, command timeout 14000 s"
        pt_tape, kind = run.marker("PT-TAPE", 120).split()
        assert pt_tape.startswith("/dev/nst") and pt_tape != host_tape
        assert kind == "1"  # st bound the pass-through LU: TYPE_TAPE
        inq = run.marker("INQ", 60)
        assert "PDT=1" in inq and "IET" in inq, inq  # the host pytgtd's tape, not pt's
        status0 = run.marker("STATUS0", 60).split()
        assert status0[:2] == ["0", "0"] and {"BOT", "ONLINE"} <= set(status0[2:]), status0
        files = _marked(run.marker("FILES", 60))
        assert run.marker("AFTER-TAR", 120).split()[:2] == ["1", "0"]
        v = run.marker("V", 60)
        assert run.marker("AFTER-WEOF", 60).split()[:2] == ["3", "0"]
        tell = run.marker("TELL", 60)
        assert _marked(run.marker("READ", 120)) == files
        assert run.marker("AT1", 60).split()[:2] == ["1", "0"]
        v_read = run.marker("V-READ", 60).split()
        assert v_read[:2] == v.split()
        assert v_read[2:] == ["1+3", "records", "in"]  # 3 blocks shorter than the read
        assert run.marker("OVERLENGTH", 60) == "Cannot allocate memory"  # st: ILI, longer
        fsf2 = run.marker("FSF2", 60).split()
        assert fsf2[:2] == ["2", "0"], fsf2
        rewound = run.marker("REWOUND", 60).split()
        assert rewound[:2] == ["0", "0"] and "BOT" in rewound, rewound
        run.marker("PYTGTD-EXIT", 120)

    tape_files = _files(tape)  # on the host's medium: what the guest wrote through pt
    assert len(tape_files) == 4  # st's filemark after tar and dd, weof's
    assert {len(b) for b in tape_files[0]} == {512}
    with tarfile.open(fileobj=io.BytesIO(b"".join(tape_files[0]))) as tar:
        got = {m.name.removeprefix("./"): hashlib.sha256(
            tar.extractfile(m).read()).hexdigest()  # type: ignore[union-attr]
               for m in tar.getmembers() if m.isfile()}
    assert got == files
    assert [len(b) for b in tape_files[1]] == [100, 7000, 65536, 1]
    assert hashlib.sha256(b"".join(tape_files[1])).hexdigest() == v.split()[0]
    assert tape_files[2] == tape_files[3] == []
    assert tell == f"At block {len(tape_files[0]) + 4 + 3}."
