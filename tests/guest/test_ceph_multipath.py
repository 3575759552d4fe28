"""What a Ceph iSCSI gateway user runs, from the Linux kernel: dm-multipath with multipathd
over two pytgtd gateways (tpgt 1 and 2) of one RBD image, through the owner's death and
return.

The guest logs in through both gateways (gateway A on 127.0.0.1 relayed to 10.0.2.100,
gateway B on 127.0.0.2 relayed to 10.0.2.101), multipathd builds one map named by the
image's WWID with two path groups, ALUA prio 50 (A: active/optimized) and prio 10 (B:
active/non-optimized). While the guest writes, the host SIGKILLs A: the writes go on
through B, whose group the kernel's ALUA handler makes active/optimized (SET TARGET
PORT GROUPS) as dm-multipath switches to it; B's heartbeat finds A dead and fences it;
multipathd shows A's path failed and B's prio 50. A restarted on its port and tag takes
the lead back (the lowest tag is the owner): iscsid logs in again, multipathd
reinstates the path and fails back to A's group. The file system checks clean, every
checksum verifies, and the image read from Ceph (``rbd export``) is what the guest's
map holds.
"""

from __future__ import annotations

import hashlib
import re
import signal
from collections.abc import Callable
from pathlib import Path

from ceph_dev_cluster import DevCluster

from tests.ceph.cluster import need_bindings
from tests.ceph.gateways import IQN, start_gateway, two_gateways
from tests.guest.conftest import PORTAL, PORTAL2, Guest, booted, linux_guest
from tests.helpers import RunningDaemon

MARK = linux_guest.MARK

SIZE_MB = 64

#: /etc/multipath.conf in the guest, as docs/ceph.md gives it ("Linux hosts").
MULTIPATH_CONF = """\
defaults {
    user_friendly_names no
    find_multipaths     off
    polling_interval    1
}
devices {
    device {
        vendor                 "PYTGT"
        product                "RBD"
        path_grouping_policy   group_by_prio
        prio                   alua
        detect_prio            no
        hardware_handler       "1 alua"
        path_checker           tur
        path_selector          "service-time 0"
        failback               immediate
        no_path_retry          60
    }
}
"""

SCRIPT = f"""
T={IQN}
iscsid_start
udev_start
mark DISCOVERED-A $(iscsiadm -m discovery -t sendtargets -p {PORTAL})
mark DISCOVERED-B $(iscsiadm -m discovery -t sendtargets -p {PORTAL2})
login() {{  # login PORTAL: a node record for $T there, a dead path failed in 5 s
  iscsiadm -m node -o new -T $T -p $1 >/dev/null
  iscsiadm -m node -T $T -p $1 -o update -n node.session.timeo.replacement_timeout -v 5
  iscsiadm -m node -T $T -p $1 --login
}}
path_of() {{  # path_of PORTAL: the sdX of LUN 1 logged in through PORTAL
  iscsiadm -m session -P 3 | awk -v p="$1" '
    /Current Portal:/ {{ cur = index($3, p) == 1 }}
    /Attached scsi disk/ && cur {{ print $4 }}'
}}
login {PORTAL}
login {PORTAL2}
poll 30 path_of {PORTAL2}
A=$(path_of {PORTAL}); B=$(path_of {PORTAL2})
hctl() {{ basename $(readlink -f /sys/block/$1/device); }}
mark PATHS $A $(hctl $A) $(cat /sys/block/$A/device/wwid) \
  $B $(hctl $B) $(cat /sys/block/$B/device/wwid)
udevadm settle -t 60
mkdir -p /etc/multipath
cat > /etc/multipath.conf <<'EOF'
{MULTIPATH_CONF}EOF
export DM_DISABLE_UDEV=1
multipathd -d -s &
# paths DM_A PRIO_A DM_B PRIO_B: multipathd's view of both paths ("active 50")
paths() {{
  s=$(multipathd show paths raw format "%d %t %p")
  echo "$s" | grep -qx "$A $1 $2" && echo "$s" | grep -qx "$B $3 $4"
}}
ll() {{ multipath -ll | sed "s/^/{MARK} LL$1 /"; mark LL$1-END; }}
poll 60 paths active 50 active 10
M=$(multipathd show maps raw format "%n")
mkfs.ext4 -q -F /dev/mapper/$M
mount /dev/mapper/$M /mnt
mkdir /mnt/data
(
  i=0
  until [ -e /tmp/stop ]; do
    i=$((i + 1))
    dd if=/dev/urandom of=/mnt/data/f$i bs=64k count=4 conv=fsync 2>/dev/null
  done
  mark WROTE $i
) &
W=$!
written() {{ ls /mnt/data | wc -l; }}
more_than() {{ [ $(written) -gt $1 ]; }}
poll 60 more_than 3
ll 1
gate kill-a
# A's path fails (its session gives up after 5 s), B takes over as active/optimized
failed_over() {{  # A's path failed, B's active with prio 50 (whatever A's prio shows)
  s=$(multipathd show paths raw format "%d %t %p")
  echo "$s" | grep -q "^$A failed " && echo "$s" | grep -qx "$B active 50"
}}
poll 120 failed_over
mark FAILED-OVER $(cut -d' ' -f1 /proc/uptime) $(multipathd show paths raw format "%d:%t:%T:%p")
ll 2
sg_rtpg -d /dev/$B || true  # for the log: B's group, and who made it optimized
w=$(written); poll 60 more_than $((w + 3))
mark WRITES-GO-ON $w $(written)
gate restart-a
poll 120 paths active 50 active 10
mark FAILED-BACK $(cut -d' ' -f1 /proc/uptime)
ll 3
w=$(written); poll 60 more_than $((w + 3))
touch /tmp/stop
wait $W
(cd /mnt/data && sha256sum f* > /tmp/sums)
umount /mnt
echo 3 > /proc/sys/vm/drop_caches
e2fsck -fn /dev/mapper/$M
mark FSCK clean
mount -o ro /dev/mapper/$M /mnt
(cd /mnt/data && sha256sum -c /tmp/sums >/dev/null)
mark VERIFIED $(wc -l < /tmp/sums)
umount /mnt
mark DEVSUM $(dd if=/dev/mapper/$M bs=1M iflag=direct 2>/dev/null | sha256sum)
"""


Group = tuple[int, str, list[tuple[str, str, str]]]


def topology(run: linux_guest.GuestRun, n: int) -> list[Group]:
    """``multipath -ll`` as marked ``LL<n>``: its path groups, each (prio, status,
    [(sdX, dm state, checker state)])."""
    run.marker(f"LL{n}-END", 60)
    rx = re.compile(rf"^{MARK} LL{n} (.*)$")
    lines = [m.group(1) for line in run.console().splitlines() if (m := rx.match(line))]
    groups: list[Group] = []
    for line in lines:
        if g := re.search(r"prio=(\d+) status=(\w+)", line):
            groups.append((int(g.group(1)), g.group(2), []))
        elif p := re.search(r"\d+:\d+:\d+:\d+ (sd[a-z]+) +\S+ +(\w+) (\w+)", line):
            groups[-1][2].append((p.group(1), p.group(2), p.group(3)))
    return groups


def test_dm_multipath_with_multipathd_over_two_rbd_gateways(
        guest: Guest, ceph: DevCluster, rbd_image: Callable[..., str],
        tmp_path: Path) -> None:
    need_bindings()
    image = rbd_image(f"{SIZE_MB}M")

    def brand(d: RunningDaemon) -> None:  # the vendor/product multipath.conf matches
        d.adm("--lld", "iscsi", "--op", "update", "--mode", "logicalunit", "--tid", "1",
              "--lun", "1", "--params", "vendor_id=PYTGT,product_id=RBD")

    with two_gateways(tmp_path, ceph, image) as gw:
        brand(gw.a)
        brand(gw.b)
        ports = {PORTAL: (gw.a.host, gw.a.port), PORTAL2: (gw.b.host, gw.b.port)}
        with booted(guest, SCRIPT, ports, tmp_path / "boot.log") as run:
            assert run.marker("DISCOVERED-A", 120).split() == [
                f"127.0.0.1:{gw.a.port},1", IQN]
            assert run.marker("DISCOVERED-B", 60).split() == [
                f"127.0.0.2:{gw.b.port},2", IQN]
            sd_a, _, wwid_a, sd_b, hctl_b, wwid_b = run.marker("PATHS", 60).split()
            assert wwid_a == wwid_b and wwid_a.startswith("naa.")  # one LU, two paths
            name = f"3{wwid_a.removeprefix('naa.')}"
            title = run.wait_for(rf"^{MARK} LL1 (\S+)", 120).group(1)
            assert title == name  # the map is named by the image's WWID
            before = topology(run, 1)
            assert before == [(50, "active", [(sd_a, "active", "ready")]),
                              (10, "enabled", [(sd_b, "active", "ready")])], before

            with run.gate("kill-a", 120):
                gw.a.proc.send_signal(signal.SIGKILL)  # our own gateway A, by PID
                gw.a.proc.wait(timeout=30)
            run.marker("FAILED-OVER", 150)
            # dm-multipath's switch to B's group made scsi_dh_alua send SET TARGET PORT
            # GROUPS through B (group 2 active/optimized), which demoted A's group: B's
            # nexus is told. Then B's heartbeat fenced A and took it off the list.
            ua_b = rf"sd {re.escape(hctl_b)}: Asymmetric access state changed"
            run.wait_for(ua_b, 10)
            failed = topology(run, 2)
            # B's path has prio 50; A's failed path keeps its last prio (multipathd
            # does not ask a failed path), so both share one group until A returns.
            assert any(g[0] == 50 and (sd_b, "active", "ready") in g[2] for g in failed)
            assert any(p[0] == sd_a and p[1] == "failed" for g in failed for p in g[2])
            assert re.search(r"gateway tpgt=1 \(\S+\) does not answer: fencing it",
                             "".join(gw.b.log)), "".join(gw.b.log[-20:])
            before_kill, after_kill = map(int, run.marker("WRITES-GO-ON", 90).split())
            assert after_kill > before_kill  # through B alone

            with run.gate("restart-a", 60):
                gw.a = start_gateway(tmp_path / "a-again", ceph, image, gw.a.host, 1,
                                     port=gw.a.port)
                brand(gw.a)
                run.wait_for(r"operational after recovery", 120)
            run.marker("FAILED-BACK", 150)
            # The old owner takes the lead back (the lowest tag is active/optimized):
            # B's nexus is told, and multipathd fails back to A's group.
            run.wait_for(ua_b, 60, nth=2)
            assert topology(run, 3) == before
            run.marker("FSCK", 180)
            assert int(run.marker("VERIFIED", 120)) > 9
            devsum = run.marker("DEVSUM", 120).split()[0]
        exported = tmp_path / "export.img"
        ceph.rbd("export", image, str(exported))
        with open(exported, "rb") as f:
            assert hashlib.file_digest(f, "sha256").hexdigest() == devsum


def test_docs_give_the_multipath_conf_this_test_runs() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "ceph.md").read_text()
    assert f"```\n{MULTIPATH_CONF}```\n" in docs
