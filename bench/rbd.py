"""pytgt vs tgt on Ceph RBD (issue 10): pytgt's ``rbd`` store against tgt's ``bs_rbd``.

    python -m bench.rbd                           # a throwaway Ceph, 3 alternations of 10 s
    python -m bench.rbd --quick                   # 1 alternation of 2 s, 64 MiB images
    python -m bench.rbd --ceph-conf /tmp/ceph/ceph.conf   # an existing cluster (pool rbd)

Starts the single-node dev cluster (``contrib/ceph_dev_cluster.py``) in the work dir
unless ``--ceph-conf`` names one, imports the same prefilled file into one image per
target (``rbd import``: every object exists, so reads reach the OSD), exports each image
as LUN 1 (``-E rbd -b rbd/IMAGE --bsopts conf=CONF``, the same tgtadm line for both),
checks with ``qemu-img compare`` that it reads back as the file, then runs the targets in
turn per workload like ``bench.run``. librbd's cache is off in both (pytgt always turns it
off; tgt gets a copy of the ceph.conf that does) unless ``--tgt-rbd-cache default``.
Results go to ``--results-dir`` (default ``bench/results/rbd``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/rbd.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import (  # noqa: E402
    TOOLS,
    environment,
    make_target,
    parse_size,
    prefill,
    run_workload,
    select_targets,
    stop_all,
    summarize,
    write_results,
)
from bench.targets import FILE_LUN, IQN, REPO, Target, TargetError, rss_kib  # noqa: E402
from bench.workloads import K4, M1, Workload, iscsi_perf, qemu_bench  # noqa: E402

sys.path.insert(0, str(REPO / "contrib"))
from ceph_dev_cluster import DevCluster  # noqa: E402

POOL = "rbd"
OBJECT = 4 << 20  # rbd's default object size (order 22)
# 4 KiB writes, each in the next 4 MiB object (and 4 KiB further in): qemu-img bench has
# no random mode, and for RBD what matters is that consecutive writes hit other objects.
SCATTER = OBJECT + K4

WORKLOADS: list[Workload] = [
    Workload("rbd_4k_randread_qd32", "4 KiB random read QD32 (RBD)", "iscsi-perf", "IOPS",
             True, iscsi_perf(FILE_LUN, K4, 32, True)),
    Workload("rbd_4k_randwrite_qd32", "4 KiB scattered write QD32 (RBD)",
             "qemu-img bench -S 4M+4K", "IOPS", True,
             qemu_bench(FILE_LUN, K4, 32, True, step=SCATTER)),
    Workload("rbd_1m_read_qd16", "1 MiB sequential read QD16 (RBD)", "iscsi-perf", "MiB/s",
             True, iscsi_perf(FILE_LUN, M1, 16, False)),
    Workload("rbd_1m_write_qd16", "1 MiB sequential write QD16 (RBD)", "qemu-img bench",
             "MiB/s", True, qemu_bench(FILE_LUN, M1, 16, True)),
]
BY_NAME = {w.name: w for w in WORKLOADS}
# Issue 10's goals as pytgt/tgt ratios.
GOALS: dict[str, float] = {"rbd_4k_randread_qd32": 1.5, "rbd_4k_randwrite_qd32": 1.5,
                           "rbd_1m_read_qd16": 1.0, "rbd_1m_write_qd16": 1.0}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.rbd",
                                description="pytgt vs tgt on Ceph RBD (issue 10)")
    p.add_argument("--quick", action="store_true",
                   help="1 alternation, 2 s runs, 64 MiB images unless --size")
    p.add_argument("--runs", type=int, help="alternations per workload (default 3)")
    p.add_argument("--duration", type=float, help="seconds per run (default 10)")
    p.add_argument("--only", help="comma-separated workload names (see --list)")
    p.add_argument("--targets", default="pytgt,tgt",
                   help="comma-separated, in alternation order (default pytgt,tgt)")
    p.add_argument("--size", help="image size, e.g. 512M (default 512M)")
    p.add_argument("--ceph-conf", type=Path,
                   help="an existing cluster's ceph.conf (pool rbd) instead of a throwaway one")
    p.add_argument("--tgt-rbd-cache", choices=("off", "default"), default="off",
                   help="tgt's librbd cache: off (default; as pytgt, which turns it off so "
                        "that every acknowledged write is in the cluster and gateways stay "
                        "coherent) or librbd's default (on, write-back after the first flush)")
    p.add_argument("--workdir", type=Path, default=Path("/var/tmp/pytgt-bench-rbd"),
                   help="prefilled file, daemon state, the throwaway cluster")
    p.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results" / "rbd")
    p.add_argument("--pytgt-loop", choices=("default", "asyncio"), default="default")
    p.add_argument("--pytgt-args", default="", metavar="ARGS",
                   help="more pytgtd options, e.g. '--metrics 127.0.0.1:0'")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="py-spy stacks of pytgtd per workload (first run) into DIR")
    p.add_argument("--list", action="store_true", help="list the workloads and exit")
    args = p.parse_args(argv)
    args.runs = args.runs or (1 if args.quick else 3)
    args.duration = args.duration or (2.0 if args.quick else 10.0)
    args.size = parse_size(args.size or ("64M" if args.quick else "512M"))
    return args


def select_workloads(only: str | None) -> list[Workload]:
    names = [n.strip() for n in (only or "").split(",") if n.strip()] or list(BY_NAME)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise SystemExit(f"unknown workload(s): {', '.join(unknown)}; see --list")
    return [BY_NAME[n] for n in names]


@contextmanager
def cluster(conf: Path | None, workdir: Path) -> Iterator[Path]:
    """The ceph.conf to use: ``conf``, or a throwaway dev cluster's (stopped on exit)."""
    if conf is not None:
        yield conf
        return
    dev = DevCluster(tempfile.mkdtemp(prefix="ceph-", dir=workdir))
    try:
        dev.start()
        yield dev.conf
    finally:
        dev.stop()


def rbd_cli(conf: Path, *args: str, timeout: float = 300) -> None:
    res = subprocess.run(["rbd", "-c", str(conf), *args], capture_output=True, text=True,
                         timeout=timeout)
    if res.returncode != 0:
        raise TargetError(f"rbd {' '.join(args)} -> rc {res.returncode}: {res.stderr.strip()}")


@contextmanager
def images(conf: Path, names: list[str], disk: Path) -> Iterator[dict[str, str]]:
    """One image per target, each ``rbd import`` of ``disk``; removed on exit."""
    made: dict[str, str] = {}
    try:
        for n in names:
            spec = f"{POOL}/bench-{n}-{os.getpid()}"
            rbd_cli(conf, "import", "--no-progress", str(disk), spec)
            made[n] = spec
        yield made
    finally:
        for spec in made.values():
            subprocess.run(["rbd", "-c", str(conf), "rm", "--no-progress", spec],
                           capture_output=True, timeout=300)


def cacheless_conf(conf: Path, workdir: Path) -> Path:
    """A copy of ``conf`` whose clients run without librbd's cache (pytgt's setting)."""
    out = workdir / "ceph-rbd-cache-off.conf"
    out.write_text(conf.read_text() + "\n[client]\nrbd cache = false\n")
    return out


def setup_rbd(t: Target, spec: str, conf: Path, tid: int = 1) -> None:
    """Target ``IQN`` with LUN 1 on the image ``spec``: the same tgtadm lines for both."""
    t.adm("--op", "new", "--mode", "target", "--tid", str(tid), "-T", IQN)
    t.adm("--op", "new", "--mode", "logicalunit", "--tid", str(tid), "--lun", str(FILE_LUN),
          "-E", "rbd", "-b", spec, "--bsopts", f"conf={conf}")
    t.adm("--op", "bind", "--mode", "target", "--tid", str(tid), "-I", "ALL")


def start_targets(names: list[str], specs: dict[str, str], confs: dict[str, Path],
                  disk: Path, args: argparse.Namespace,
                  errors: dict[str, str]) -> dict[str, Target]:
    """Start, configure and verify each target; one that fails is left out, error kept."""
    started: dict[str, Target] = {}
    for n in names:
        t = make_target(n, args.workdir, args)
        try:
            t.start()
            setup_rbd(t, specs[n], confs[n])
            t.blocksize(FILE_LUN)
            t.verify(disk)
        except (TargetError, OSError, subprocess.TimeoutExpired) as exc:
            errors[n] = f"{exc}\n{t.log_tail(10)}".strip()
            print(f"bench.rbd: {n} left out: {errors[n]}", file=sys.stderr)
            stop_all({n: t})
            continue
        started[n] = t
    return started


def run_all(args: argparse.Namespace, names: list[str], conf: Path,
            result: dict[str, Any]) -> None:
    disk = args.workdir / f"disk-{args.size}.img"
    prefill(disk, args.size)
    confs = {n: conf for n in names}
    if args.tgt_rbd_cache == "off" and "tgt" in confs:  # pytgt turns it off itself
        confs["tgt"] = cacheless_conf(conf, args.workdir)
    with images(conf, names, disk) as specs:
        targets = start_targets(names, specs, confs, disk, args, result["start_errors"])
        result["environment"]["targets"] = list(targets)
        try:
            for w in select_workloads(args.only):
                print(f"bench.rbd: {w.name} ({w.title})", file=sys.stderr)
                res = run_workload(w, targets, args.runs, args.duration, args.profile, GOALS)
                cpu_per_io(res)
                result["workloads"][w.name] = res
            result["rss_kib_after_runs"] = {n: rss_kib(t.pid) for n, t in targets.items()}
        finally:
            stop_all(targets)


def cpu_per_io(res: dict[str, Any]) -> None:
    """Add each run's daemon CPU time per I/O (µs; librbd's threads included) to an IOPS
    workload's extras, and re-summarize."""
    if res["unit"] != "IOPS":
        return
    for name, extras in res["extra"].items():
        for value, extra in zip(res["runs"][name], extras, strict=True):
            if value and "daemon_cpu_pct" in extra:
                extra["cpu_us_per_io"] = extra["daemon_cpu_pct"] * 1e4 / value
    summarize(res)


def rbd_environment(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    env = environment(args, names)
    ceph = ""
    if shutil.which("dpkg-query"):
        ceph = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "ceph-common"],
                              capture_output=True, text=True).stdout.strip()
    where = "an existing cluster" if args.ceph_conf else \
        "a throwaway single-node cluster (contrib/ceph_dev_cluster.py, one memstore OSD)"
    cache = ("librbd cache off in both" if args.tgt_rbd_cache == "off" else
             "librbd cache off in pytgt, librbd's default (on) in tgt")
    env.update(title="pytgt vs tgt on Ceph RBD", ceph=ceph or None,
               tgt_rbd_cache=args.tgt_rbd_cache,
               lun_desc=f"one {args.size >> 20} MiB RBD image per target, prefilled, "
                        f"Ceph {ceph or '?'} on {where}; {cache}")
    return env


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for w in WORKLOADS:
            print(f"{w.name:24} {w.unit:6} {w.client:28} {w.title}")
        return 0
    missing = [t for t in (*TOOLS, "rbd") if shutil.which(t) is None]
    if missing:
        raise SystemExit(f"missing: {', '.join(missing)} (apt-get install libiscsi-bin "
                         "qemu-utils qemu-block-extra ceph-common)")
    t0 = time.monotonic()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup in finally
    names = select_targets(args.targets)
    args.workdir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"environment": rbd_environment(args, names), "workloads": {},
                              "start_errors": {}}
    try:
        with cluster(args.ceph_conf, args.workdir) as conf:
            run_all(args, names, conf, result)
    except (RuntimeError, TargetError) as exc:  # the cluster or the images
        print(f"bench.rbd: {exc}", file=sys.stderr)
        return 2
    rc = write_results(result, args.results_dir)
    print(f"bench.rbd: done in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return rc if result["environment"]["targets"] else 2


if __name__ == "__main__":
    sys.exit(main())
