"""The Linux kernel's initiator (open-iscsi: iscsid, iscsiadm; iscsi_tcp, sd) against
pytgtd, in a QEMU guest: discovery, login, a file system written and checked across two
boots, CHAP, digests, and a daemon killed and restarted under the guest's writes.

pytgtd listens on 127.0.0.1 only; the guest reaches it at 10.0.2.100:3260 through QEMU's
user-mode network. SendTargets therefore answers the host's address (127.0.0.1:PORT), which
the guest cannot reach, and the guest logs in at the portal it discovered through, as an
initiator behind NAT does.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.guest.conftest import PORTAL, PORTAL2, Guest, Link, booted, make_target
from tests.helpers import RunningDaemon, start_daemon

IQN = "iqn.2026-12.org.pytgt:guest-disk"
GUEST_IQN = "iqn.2026-12.org.pytgt:guest"
SIZE = 64 << 20

LOGIN = f"""
T={IQN}; P={PORTAL}
iscsid_start
login() {{  # login IQN [name=value...]: a node record at $P with these settings, logged in
  t=$1; shift
  iscsiadm -m node -o new -T "$t" -p $P >/dev/null
  for kv in "$@"; do iscsiadm -m node -T "$t" -p $P -o update -n "${{kv%%=*}}" -v "${{kv#*=}}"; done
  iscsiadm -m node -T "$t" -p $P --login
}}
"""

WRITE = LOGIN + """
mark DISCOVERED $(iscsiadm -m discovery -t sendtargets -p $P)
login $T
poll 30 disk_of $T 1
D=$(disk_of $T 1)
mark WWID $(cat /sys/block/${D#/dev/}/device/wwid)
gate logged-in
mkfs.ext4 -q -F $D
mount $D /mnt
mkdir /mnt/data
for i in 1 2 3 4 5; do
  dd if=/dev/urandom of=/mnt/data/f$i bs=4k count=$((i * 100)) 2>/dev/null
done
cp -a /usr/sbin /mnt/tree
(cd /mnt && find data tree -type f | sort | xargs sha256sum > /mnt/SHA256SUMS)
mark SUMS $(sha256sum < /mnt/SHA256SUMS)
umount /mnt
e2fsck -fn $D
mark FSCK clean
iscsiadm -m node -T $T -p $P --logout
"""

VERIFY = LOGIN + """
login $T
poll 30 disk_of $T 1
D=$(disk_of $T 1)
mark WWID $(cat /sys/block/${D#/dev/}/device/wwid)
e2fsck -fn $D
mark FSCK clean
mount -o ro $D /mnt
(cd /mnt && sha256sum -c SHA256SUMS >/dev/null)
mark SUMS $(sha256sum < /mnt/SHA256SUMS)
umount /mnt
iscsiadm -m node -T $T -p $P --logout
"""


def test_mkfs_write_fsck_and_checksums_across_two_boots(guest: Guest, daemon: RunningDaemon,
                                                        tmp_path: Path) -> None:
    backing = tmp_path / "lun1.img"
    make_target(daemon, 1, IQN, backing, SIZE)
    ports = {PORTAL: daemon.port}
    with booted(guest, WRITE, ports, tmp_path / "boot1.log") as run:
        assert run.marker("DISCOVERED", 120).split() == [f"127.0.0.1:{daemon.port},1", IQN]
        wwid = run.marker("WWID", 60)
        assert wwid.startswith("naa.")
        with run.gate("logged-in", 60):
            shown = daemon.adm("--lld", "iscsi", "--op", "show", "--mode", "target").stdout
            assert f"Initiator: {GUEST_IQN}" in shown
        sums = run.marker("SUMS", 180)
        run.marker("FSCK", 60)
    assert os.stat(backing).st_blocks > 0
    with booted(guest, VERIFY, ports, tmp_path / "boot2.log") as run:
        assert run.marker("WWID", 120) == wwid
        run.marker("FSCK", 60)
        assert run.marker("SUMS", 120) == sums


CHAP_IQN, MUTUAL_IQN = f"{IQN}-chap", f"{IQN}-mutual"
SECRETS = {"guest1": "guest1-secret-1", "guest2": "guest2-secret-2",
           "target2": "target2-secret-3"}

CHAP = LOGIN + f"""
io_check() {{  # write 4 MiB of random data to $1 with O_DIRECT, read it back, compare
  dd if=/dev/urandom of=/tmp/w bs=64k count=64 2>/dev/null
  dd if=/tmp/w of=$1 bs=64k oflag=direct 2>/dev/null
  dd if=$1 of=/tmp/r bs=64k count=64 iflag=direct 2>/dev/null
  cmp /tmp/w /tmp/r
}}
A=node.session.auth
if login {CHAP_IQN} $A.authmethod=CHAP $A.username=guest1 $A.password=wrong-secret-1; then
  mark WRONG-SECRET-ACCEPTED; exit 1
fi
mark ONE-WAY-WRONG-SECRET-REFUSED
iscsiadm -m node -T {CHAP_IQN} -p $P -o update -n $A.password -v {SECRETS["guest1"]}
iscsiadm -m node -T {CHAP_IQN} -p $P --login
poll 30 disk_of {CHAP_IQN} 1
io_check $(disk_of {CHAP_IQN} 1)
mark ONE-WAY-OK
iscsiadm -m node -T {CHAP_IQN} -p $P --logout

C='node.conn[0].iscsi'
login {MUTUAL_IQN} $A.authmethod=CHAP $A.username=guest2 $A.password={SECRETS["guest2"]} \\
  $A.username_in=target2 $A.password_in={SECRETS["target2"]} \\
  $C.HeaderDigest=CRC32C $C.DataDigest=CRC32C
poll 30 disk_of {MUTUAL_IQN} 1
mark GUEST-DIGESTS $(iscsiadm -m session -P 2 | grep -o '[a-zA-Z]*Digest: [A-Z0-9]*')
gate mutual
io_check $(disk_of {MUTUAL_IQN} 1)
mark MUTUAL-OK
iscsiadm -m node -T {MUTUAL_IQN} -p $P --logout
iscsiadm -m node -T {MUTUAL_IQN} -p $P -o update -n $A.password_in -v wrong-secret-3
if iscsiadm -m node -T {MUTUAL_IQN} -p $P --login; then mark WRONG-TARGET-ACCEPTED; exit 1; fi
mark MUTUAL-WRONG-TARGET-SECRET-REFUSED
"""


def test_chap_one_way_and_mutual_with_crc32c_digests(guest: Guest, daemon: RunningDaemon,
                                                     tmp_path: Path) -> None:
    for user, password in SECRETS.items():
        daemon.adm("--lld", "iscsi", "--op", "new", "--mode", "account", "--user", user,
                   "--password", password)
    make_target(daemon, 1, CHAP_IQN, tmp_path / "chap.img", 8 << 20)
    make_target(daemon, 2, MUTUAL_IQN, tmp_path / "mutual.img", 8 << 20)
    bind = ("--lld", "iscsi", "--op", "bind", "--mode", "account")
    daemon.adm(*bind, "--tid", "1", "--user", "guest1")
    daemon.adm(*bind, "--tid", "2", "--user", "guest2")
    daemon.adm(*bind, "--tid", "2", "--user", "target2", "--outgoing")
    with booted(guest, CHAP, {PORTAL: daemon.port}, tmp_path / "boot.log") as run:
        run.marker("ONE-WAY-WRONG-SECRET-REFUSED", 120)
        run.marker("ONE-WAY-OK", 120)
        assert run.marker("GUEST-DIGESTS", 120).split() == [
            "HeaderDigest:", "CRC32C", "DataDigest:", "CRC32C"]
        with run.gate("mutual", 60):
            shown = daemon.adm("--lld", "iscsi", "--op", "show", "--mode", "session",
                               "--tid", "2").stdout
            assert "HeaderDigest=CRC32C" in shown and "DataDigest=CRC32C" in shown, shown
            assert f"Initiator: {GUEST_IQN}" in shown
        run.marker("MUTUAL-OK", 120)
        run.marker("MUTUAL-WRONG-TARGET-SECRET-REFUSED", 120)


RECOVER = LOGIN + """
login $T
poll 30 disk_of $T 1
D=$(disk_of $T 1)
mkfs.ext4 -q -F $D
mount $D /mnt
(
  i=0
  until [ -e /tmp/stop ]; do
    i=$((i + 1))
    dd if=/dev/urandom of=/mnt/f$i bs=64k count=4 conv=fsync 2>/dev/null
    [ $i = 2 ] && mark WRITING
  done
  mark WROTE $i
) &
gate recovered
touch /tmp/stop
wait $!
(cd /mnt && sha256sum f* > /tmp/sums)
umount /mnt
echo 3 > /proc/sys/vm/drop_caches
e2fsck -fn $D
mark FSCK clean
mount -o ro $D /mnt
(cd /mnt && sha256sum -c /tmp/sums >/dev/null)
mark VERIFIED
umount /mnt
iscsiadm -m node -T $T -p $P --logout
"""


def test_daemon_sigkilled_and_restarted_while_the_guest_writes(guest: Guest,
                                                               tmp_path: Path) -> None:
    backing, conf = tmp_path / "lun1.img", tmp_path / "targets.conf"
    with open(backing, "wb") as f:
        f.truncate(SIZE)
    conf.write_text(f"<target {IQN}>\n    backing-store {backing}\n"
                    "    initiator-address ALL\n</target>\n")
    d = start_daemon(tmp_path / "first", extra=("--config", str(conf)))
    try:
        with booted(guest, RECOVER, {PORTAL: d.port}, tmp_path / "boot.log") as run:
            run.marker("WRITING", 120)
            with run.gate("recovered", 120):
                d.proc.kill()  # SIGKILL, our own daemon by PID
                d.proc.wait(timeout=30)
                d = start_daemon(tmp_path / "second", port=d.port,
                                 extra=("--config", str(conf)))
                run.wait_for(r"operational after recovery", 120)
            assert int(run.marker("WROTE", 120)) > 2
            run.marker("FSCK", 120)
            run.marker("VERIFIED", 120)
    finally:
        d.stop()


MULTIPATH = LOGIN + f"""
disks_of() {{  # every /dev/sdX of LUN $2 of target $1, one session per portal
  for s in /sys/class/iscsi_session/session*; do
    [ "$(cat "$s/targetname")" = "$1" ] || continue
    for b in "$s"/device/target*/*:"$2"/block/*; do [ -e "$b" ] && echo "${{b##*/}}"; done
  done
}}
two_disks() {{ [ "$(disks_of $T 1 | wc -l)" = 2 ]; }}
udev_start
R=node.session.timeo.replacement_timeout=5
login $T $R
P={PORTAL2}
login $T $R
poll 30 two_disks
for d in $(disks_of $T 1); do mark PATH $d $(cat /sys/block/$d/device/wwid); done
udevadm settle -t 60
ls -l /dev/disk/by-id/
mark BY-ID $(ls /dev/disk/by-id/)
sg_rtpg -d /dev/$(disks_of $T 1 | head -1)
cat > /etc/multipath.conf <<EOF
defaults {{
  user_friendly_names no
  find_multipaths off
}}
overrides {{
  path_grouping_policy group_by_prio
  detect_prio no
  prio alua
  path_checker tur
}}
EOF
export DM_DISABLE_UDEV=1
multipath -v2
multipath -ll
M=$(multipath -l -v1)
mark MAP $M $(ls /dev/mapper/)
mkfs.ext4 -q -F /dev/mapper/$M
mount /dev/mapper/$M /mnt
write() {{ dd if=/dev/urandom of=/mnt/$1 bs=64k count=8 conv=fsync 2>/dev/null; }}
for i in 1 2 3; do write before$i; done
gate cut
for i in 1 2 3 4 5 6; do write after$i; done
multipath -ll
mark ACTIVE-PATHS $(multipath -ll | grep -c 'active ready')
(cd /mnt && sha256sum before* after* > /tmp/sums)
umount /mnt
echo 3 > /proc/sys/vm/drop_caches
e2fsck -fn /dev/mapper/$M
mount -o ro /dev/mapper/$M /mnt
(cd /mnt && sha256sum -c /tmp/sums >/dev/null)
mark VERIFIED
umount /mnt
"""


def test_dm_multipath_over_two_portals_survives_a_cut_path(guest: Guest,
                                                           tmp_path: Path) -> None:
    d = start_daemon(tmp_path, extra=("--iscsi", "portal=127.0.0.1:0"))
    try:
        line = next(line for line in d.log if "listening on" in line)
        ports = [int(port) for port in re.findall(r"127\.0\.0\.1:(\d+)", line)]
        assert len(ports) == 2, line
        make_target(d, 1, IQN, tmp_path / "lun1.img", SIZE)
        link = Link(ports[1])
        with booted(guest, MULTIPATH, {PORTAL: ports[0], PORTAL2: link.port},
                    tmp_path / "boot.log") as run:
            (sd1, wwid1), (sd2, wwid2) = (run.marker("PATH", 120, nth).split() for nth in (1, 2))
            assert sd1 != sd2 and wwid1 == wwid2 and wwid1.startswith("naa.")
            naa = wwid1.removeprefix("naa.")
            by_id = run.marker("BY-ID", 60).split()
            assert f"wwn-0x{naa}" in by_id and f"scsi-3{naa}" in by_id
            assert run.marker("MAP", 60).split()[0] == f"3{naa}"  # named by its WWID
            with run.gate("cut", 120):
                link.cut()
            assert run.marker("ACTIVE-PATHS", 120) == "1"
            run.marker("VERIFIED", 180)
    finally:
        d.stop()
