#!/usr/bin/env python3
"""A throwaway single-node Ceph cluster on 127.0.0.1, for trying pytgt's RBD store and
for its tests: one monitor, one manager, one memstore OSD (data in RAM, no disk), pool
size 1, cephx off, everything under one temporary directory.

    contrib/ceph_dev_cluster.py start /tmp/ceph   # prints CEPH_CONF=/tmp/ceph/ceph.conf
    rbd -c /tmp/ceph/ceph.conf create --size 1G rbd/disk1
    pytgtadm --op new --mode logicalunit --tid 1 --lun 1 -E rbd -b rbd/disk1 \\
        --bsopts conf=/tmp/ceph/ceph.conf
    contrib/ceph_dev_cluster.py stop /tmp/ceph

Needs Debian's ceph-mon, ceph-osd, ceph-mgr and ceph-common (Ceph 16.2). Every daemon
listens on 127.0.0.1 on ports from the ephemeral range; ``stop`` kills only the
processes ``start`` recorded in DIR/pids. Importable: :class:`DevCluster`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

POOL = "rbd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DevCluster:
    """One mon, one mgr, one memstore OSD in ``directory``; ``conf`` is its ceph.conf."""

    def __init__(self, directory: str | os.PathLike[str], memstore_bytes: int = 4 << 30):
        self.dir = Path(directory).resolve()
        self.conf = self.dir / "ceph.conf"
        self.memstore_bytes = memstore_bytes
        self.pids: list[int] = []

    # Helpers.
    def _run(self, *argv: str, timeout: float = 60) -> str:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): "
                               f"{proc.stderr.strip() or proc.stdout.strip()}")
        return proc.stdout

    def ceph(self, *args: str, timeout: float = 60) -> str:
        """Run the ``ceph`` CLI against this cluster."""
        return self._run("ceph", "-c", str(self.conf), "--connect-timeout", "20", *args,
                         timeout=timeout)

    def _settled(self, deadline: float, *args: str) -> str:
        """``ceph ARGS`` while the monitor settles: a young monitor can refuse commands
        for a moment ("problem getting command descriptions"), so retry until
        ``deadline``."""
        while True:
            try:
                return self.ceph(*args)
            except (RuntimeError, subprocess.TimeoutExpired):
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)

    def rbd(self, *args: str, timeout: float = 60) -> str:
        """Run the ``rbd`` CLI against this cluster."""
        return self._run("rbd", "-c", str(self.conf), *args, timeout=timeout)

    def _spawn(self, *argv: str) -> None:
        with open(self.dir / f"{Path(argv[0]).name}.{len(self.pids)}.out", "wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.pids.append(proc.pid)
        (self.dir / "pids").write_text("".join(f"{p}\n" for p in self.pids))

    # Life cycle.
    def start(self, timeout: float = 120) -> None:
        """Create and start the cluster; returns once pool ``rbd`` takes I/O."""
        for tool in ("ceph-mon", "ceph-osd", "ceph-mgr", "ceph", "monmaptool"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} not found: apt-get install ceph-mon ceph-osd "
                                   "ceph-mgr ceph-common")
        self.dir.mkdir(parents=True, exist_ok=True)
        fsid, mon_port = str(uuid.uuid4()), _free_port()
        low = 40000 + (mon_port % 200) * 100  # an ephemeral-range window for OSD/mgr
        self.conf.write_text(f"""[global]
fsid = {fsid}
mon host = v1:127.0.0.1:{mon_port}
public addr = 127.0.0.1
ms bind msgr2 = false
ms bind port min = {low}
ms bind port max = {low + 99}
auth cluster required = none
auth service required = none
auth client required = none
run dir = {self.dir}/run
log file = {self.dir}/log/$name.log
admin socket = {self.dir}/run/$name.asok
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
osd objectstore = memstore
memstore device bytes = {self.memstore_bytes}
osd data = {self.dir}/$name
mon data = {self.dir}/$name
mgr data = {self.dir}/$name
osd op num shards = 2
osd client watch timeout = 5
osd crush update on start = false
osd class update on start = false
osd op num threads per shard = 1
mgr initial modules =
""")
        for sub in ("run", "log", "mon.a", "osd.0", "mgr.x"):
            (self.dir / sub).mkdir(exist_ok=True)
        monmap = self.dir / "monmap"
        self._run("monmaptool", "--create", "--fsid", fsid, "--addv", "a",
                  f"[v1:127.0.0.1:{mon_port}]", str(monmap), "--clobber")
        self._run("ceph-mon", "-c", str(self.conf), "--mkfs", "-i", "a",
                  "--monmap", str(monmap))
        self._spawn("ceph-mon", "-f", "-c", str(self.conf), "-i", "a")
        deadline = time.monotonic() + timeout
        osd_uuid = str(uuid.uuid4())
        osd_id = self._settled(deadline, "osd", "create", osd_uuid).strip()
        self._run("ceph-osd", "-c", str(self.conf), "-i", osd_id, "--mkfs",
                  "--osd-uuid", osd_uuid)
        # Placed by hand: the OSD's own boot-time crush commands can race its monmap.
        self._settled(deadline, "osd", "crush", "add", f"osd.{osd_id}", "1", "root=default")
        self._spawn("ceph-osd", "-f", "-c", str(self.conf), "-i", osd_id)
        self._spawn("ceph-mgr", "-f", "-c", str(self.conf), "-i", "x")
        self._settled(deadline, "osd", "pool", "create", POOL, "8", "8")
        self._settled(deadline, "osd", "pool", "application", "enable", POOL, "rbd")
        while True:  # the OSD is up and the pool's PGs are active
            if self._pool_ready():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"ceph cluster in {self.dir} not ready in {timeout} s")
            time.sleep(0.2)

    def _pool_ready(self) -> bool:
        try:
            self._run("rados", "-c", str(self.conf), "-p", POOL, "put", "ready-probe",
                      str(self.conf), timeout=5)
        except (RuntimeError, subprocess.TimeoutExpired):
            return False
        return True

    def stop(self) -> None:
        """Kill the processes ``start`` recorded and remove the directory."""
        pids = self.pids
        pid_file = self.dir / "pids"
        if not pids and pid_file.exists():
            pids = [int(p) for p in pid_file.read_text().split()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.pids = []
        shutil.rmtree(self.dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("directory", help="where the cluster lives (created by start, "
                        "removed by stop)")
    args = parser.parse_args(argv)
    cluster = DevCluster(args.directory)
    try:
        if args.action == "start":
            cluster.start()
            print(f"CEPH_CONF={cluster.conf}")
        else:
            cluster.stop()
    except RuntimeError as exc:
        print(f"ceph_dev_cluster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
