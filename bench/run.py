"""pytgt vs tgt, side by side, one command (issue 5).

    python -m bench.run                      # all workloads, 3 alternations of 10 s
    python -m bench.run --quick              # a few seconds per run, 1 alternation
    python -m bench.run --only 4k_randread_qd32,16sess_qd4 --runs 5 --duration 20
    python -m bench.run --targets pytgt      # pytgt alone (no ratios)
    python -m bench.run --footprint          # also: idle RSS with 1,000 null LUNs

Starts pytgtd (this checkout) and tgtd (Debian tgt, when installed) on 127.0.0.1 with the
same LUNs -- a prefilled 1 GiB file and the null store -- and, per workload, runs the
targets in turn A B A B ... so that drift of the machine hits both. Writes
``results.md``, ``results.json`` and, with matplotlib, ``results.png`` to ``--results-dir``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.footprint import conf_apply, footprint  # noqa: E402
from bench.report import write_chart, write_markdown  # noqa: E402
from bench.targets import (  # noqa: E402
    FILE_LUN,
    NULL_LUN,
    REPO,
    TARGETS,
    BaselineTarget,
    PytgtTarget,
    Target,
    TargetError,
    TgtTarget,
    cpu_seconds,
    rss_kib,
)
from bench.workloads import BY_NAME, GOALS, WORKLOADS, ClientError, Workload  # noqa: E402

TOOLS = ("iscsi-perf", "qemu-img", "iscsi-readcapacity16")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run",
                                description="pytgt vs tgt iSCSI benchmark (issue 5)")
    p.add_argument("--quick", action="store_true",
                   help="smoke mode: 1 alternation, 2 s runs, 64 MiB file unless --size")
    p.add_argument("--runs", type=int, help="alternations per workload (default 3)")
    p.add_argument("--duration", type=float, help="seconds per run (default 10)")
    p.add_argument("--only", help="comma-separated workload names (see --list)")
    p.add_argument("--targets", default="pytgt,tgt",
                   help="comma-separated, in alternation order (default pytgt,tgt)")
    p.add_argument("--baseline", type=Path, metavar="DIR",
                   help="another pytgt checkout (e.g. a git worktree of the commit before a "
                        "change), run as target 'baseline' after pytgt in each alternation")
    p.add_argument("--size", help="file LUN size, e.g. 1G, 64M (default 1G)")
    p.add_argument("--workdir", type=Path, default=Path("/var/tmp/pytgt-bench"),
                   help="prefilled disk image and daemon state (default /var/tmp/pytgt-bench)")
    p.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    p.add_argument("--footprint", action="store_true",
                   help="also: idle RSS with 1,000 null LUNs, per idle session, and the time "
                        "to apply a 1,000-target targets.conf (pytgt-admin / tgt-admin -e)")
    p.add_argument("--footprint-luns", type=int, default=1000,
                   help="LUNs for the RSS footprint, and targets in the targets.conf applied")
    p.add_argument("--pytgt-loop", choices=("default", "asyncio"), default="default",
                   help="pytgtd's event loop: default (uvloop when installed) or asyncio")
    p.add_argument("--pytgt-args", default="", metavar="ARGS",
                   help="more pytgtd options for target 'pytgt' only, e.g. "
                        "'--metrics 127.0.0.1:0' (against --baseline of the same checkout)")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="py-spy stacks of pytgtd per workload (first run) into DIR: "
                        "WORKLOAD.folded (for flamegraph.pl/inferno) and WORKLOAD.top.txt")
    p.add_argument("--list", action="store_true", help="list the workloads and exit")
    args = p.parse_args(argv)
    args.runs = args.runs or (1 if args.quick else 3)
    args.duration = args.duration or (2.0 if args.quick else 10.0)
    args.size = parse_size(args.size or ("64M" if args.quick else "1G"))
    return args


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def select_workloads(only: str | None) -> list[Workload]:
    if not only:
        return list(WORKLOADS)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise SystemExit(f"unknown workload(s): {', '.join(unknown)}; see --list")
    return [BY_NAME[n] for n in names]


def select_targets(spec: str) -> list[str]:
    names = [n.strip() for n in spec.split(",") if n.strip()]
    for n in names:
        if n not in TARGETS:
            raise SystemExit(f"unknown target {n!r}; choose from {', '.join(TARGETS)}")
    if "tgt" in names and not TgtTarget.installed():
        print("bench: tgtd/tgtadm not installed; running pytgt alone", file=sys.stderr)
        names.remove("tgt")
    if not names:
        raise SystemExit("no targets to run")
    return names


def prefill(path: Path, size: int) -> None:
    """A file of ``size`` non-zero bytes, written once and reused; then read into cache."""
    if not (path.exists() and path.stat().st_size == size and _nonzero(path)):
        print(f"bench: prefilling {path} ({size >> 20} MiB)", file=sys.stderr)
        chunk = bytearray(os.urandom(4 << 20))
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            for off in range(0, size, len(chunk)):
                chunk[:8] = off.to_bytes(8, "little")  # every chunk distinct
                f.write(chunk[: min(len(chunk), size - off)])
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    with open(path, "rb") as f:  # warm the page cache: both targets then read from RAM
        while f.readinto(buf := bytearray(8 << 20)):
            del buf


def _nonzero(path: Path) -> bool:
    with open(path, "rb") as f:
        return any(f.read(1 << 16))


def make_target(name: str, workdir: Path, args: argparse.Namespace) -> Target:
    if name == "pytgt":
        return PytgtTarget(workdir, loop=args.pytgt_loop, args=tuple(args.pytgt_args.split()))
    if name == "baseline":
        return BaselineTarget(workdir, loop=args.pytgt_loop, source=args.baseline)
    return TARGETS[name](workdir)


def start_targets(names: list[str], workdir: Path, disk: Path, args: argparse.Namespace,
                  errors: dict[str, str]) -> dict[str, Target]:
    """Start and configure each target; one that fails is left out, its error kept."""
    started: dict[str, Target] = {}
    for n in names:
        t = make_target(n, workdir, args)
        try:
            t.start()
            t.setup(disk)
            for lun in (FILE_LUN, NULL_LUN):
                t.blocksize(lun)
            t.verify(disk)
        except (TargetError, OSError, subprocess.TimeoutExpired) as exc:
            errors[n] = f"{exc}\n{t.log_tail(10)}".strip()
            print(f"bench: {n} left out: {errors[n]}", file=sys.stderr)
            stop_all({n: t})
            continue
        started[n] = t
    return started


def stop_all(targets: dict[str, Target]) -> None:
    for t in targets.values():
        try:
            t.stop()
        except (OSError, subprocess.SubprocessError) as exc:
            print(f"bench: stopping {t.name}: {exc}", file=sys.stderr)


def start_profile(outdir: Path | None, workload: str, run: int,
                  t: Target) -> tuple[subprocess.Popen[bytes], Path] | None:
    """py-spy on pytgtd during the first run of a workload (``--profile DIR``)."""
    if outdir is None or run != 0 or t.name != "pytgt":
        return None
    outdir.mkdir(parents=True, exist_ok=True)
    out = outdir / f"{workload}.folded"
    proc = subprocess.Popen(["py-spy", "record", "--pid", str(t.pid), "--rate", "250",
                             "--format", "raw", "--threads", "--output", str(out),
                             "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, out


def stop_profile(profiler: tuple[subprocess.Popen[bytes], Path] | None) -> list[str]:
    """Stop our py-spy with SIGINT so it writes its stacks; return the top self frames."""
    if profiler is None:
        return []
    proc, out = profiler
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    top = top_frames(out)
    out.with_suffix(".top.txt").write_text("\n".join(top) + "\n")
    return top


def top_frames(folded: Path, count: int = 15) -> list[str]:
    """``12.3% function (file:line)`` for the frames most often on top of the stack."""
    frames: Counter[str] = Counter()
    try:
        lines = folded.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        stack, _, n = line.rpartition(" ")
        if n.isdigit():
            frames[stack.rsplit(";", 1)[-1]] += int(n)
    total = sum(frames.values()) or 1
    return [f"{100 * n / total:5.1f}% {f}" for f, n in frames.most_common(count)]


def run_workload(w: Workload, targets: dict[str, Target], runs: int,
                 duration: float, profile_dir: Path | None = None,
                 goals: dict[str, float] = GOALS) -> dict[str, Any]:
    """Alternate the targets ``runs`` times; collect values, extras and errors."""
    res: dict[str, Any] = {
        "title": w.title, "client": w.client, "unit": w.unit,
        "higher_is_better": w.higher_is_better, "goal_ratio": goals.get(w.name),
        "runs": {n: [] for n in targets}, "extra": {n: [] for n in targets},
        "errors": {n: [] for n in targets},
    }
    calibration: dict[str, int] = {}
    for i in range(runs):
        for name, t in targets.items():
            if not t.alive():
                rc = t.proc.returncode if t.proc else "?"
                res["errors"][name].append(f"daemon exited (rc {rc}): {t.log_tail(5)}")
                continue
            profiler = start_profile(profile_dir, w.name, i, t)
            cpu0, wall0 = cpu_seconds(t.pid), time.monotonic()
            try:
                s = w.run(t, duration, calibration)
                cpu1, wall1 = cpu_seconds(t.pid), time.monotonic()
                if cpu0 is not None and cpu1 is not None:
                    s.extra["daemon_cpu_pct"] = 100.0 * (cpu1 - cpu0) / (wall1 - wall0)
            except (ClientError, TargetError, subprocess.TimeoutExpired, OSError) as exc:
                res["errors"][name].append(str(exc))
                print(f"  {w.name} run {i + 1} {name}: ERROR {exc}", file=sys.stderr)
                continue
            finally:
                top = stop_profile(profiler)
                if top:
                    res["profile_top"] = top
            res["runs"][name].append(s.value)
            res["extra"][name].append(s.extra)
            print(f"  {w.name} run {i + 1} {name}: {s.value:,.1f} {w.unit}", file=sys.stderr)
    summarize(res)
    return res


def summarize(res: dict[str, Any]) -> None:
    """Medians per target (and of each extra metric) and the pytgt/tgt ratio."""
    res["median"] = {n: statistics.median(v) if v else None for n, v in res["runs"].items()}
    res["extra_median"] = {}
    for n, extras in res["extra"].items():
        keys = {k for e in extras for k in e}
        res["extra_median"][n] = {k: statistics.median(e[k] for e in extras if k in e)
                                  for k in sorted(keys)}
    m = res["median"]
    res["ratio"] = (m["pytgt"] / m["tgt"]) if m.get("pytgt") and m.get("tgt") else None
    if m.get("pytgt") and m.get("baseline"):
        res["ratio_to_baseline"] = m["pytgt"] / m["baseline"]


def digest_cost(workloads: dict[str, Any]) -> dict[str, float | None]:
    """Per target: the median paired cost of HeaderDigest=CRC32C at 1 MiB reads, percent."""
    w = workloads.get("1m_read_qd16_digest")
    if not w:
        return {}
    return {n: e.get("cost_pct") for n, e in w["extra_median"].items()}


def environment(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    def version(pkg: str) -> str | None:
        if not shutil.which("dpkg-query"):
            return None
        r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True,
                           text=True)
        return r.stdout.strip() or None

    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count(),
        "python": platform.python_version(), "pytgt_commit": commit or None,
        "tgt": version("tgt"), "libiscsi": version("libiscsi-bin"),
        "qemu": version("qemu-utils"), "targets": names, "runs": args.runs,
        "pytgt_loop": args.pytgt_loop, "pytgt_args": args.pytgt_args,
        "duration_s": args.duration, "file_size": args.size,
        "quick": args.quick,
        "loadavg": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for w in WORKLOADS:
            print(f"{w.name:24} {w.unit:6} {w.client:28} {w.title}")
        return 0
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise SystemExit(f"missing clients: {', '.join(missing)} "
                         "(apt-get install libiscsi-bin qemu-utils qemu-block-extra)")
    if args.profile and shutil.which("py-spy") is None:
        raise SystemExit("--profile needs py-spy (pip install py-spy)")
    t0 = time.monotonic()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup in finally
    workloads, names = select_workloads(args.only), select_targets(args.targets)
    if args.baseline is not None:
        if not (args.baseline / "src" / "pytgt").is_dir():
            raise SystemExit(f"--baseline {args.baseline}: no src/pytgt there")
        names.insert(names.index("pytgt") + 1 if "pytgt" in names else 0, "baseline")
    args.workdir.mkdir(parents=True, exist_ok=True)
    disk = args.workdir / f"disk-{args.size}.img"
    prefill(disk, args.size)
    result: dict[str, Any] = {"environment": environment(args, names), "workloads": {},
                              "start_errors": {}}
    targets = start_targets(names, args.workdir, disk, args, result["start_errors"])
    if not targets:
        write_results(result, args.results_dir)
        return 2
    result["environment"]["targets"] = list(targets)
    try:
        result["rss_kib_after_setup"] = {n: rss_kib(t.pid) for n, t in targets.items()}
        for w in workloads:
            print(f"bench: {w.name} ({w.title})", file=sys.stderr)
            result["workloads"][w.name] = run_workload(w, targets, args.runs, args.duration,
                                                      args.profile)
        result["rss_kib_after_runs"] = {n: rss_kib(t.pid) for n, t in targets.items()}
        result["daemon_log_tail"] = {n: t.log_tail(10) for n, t in targets.items()
                                     if not t.alive()}
    finally:
        stop_all(targets)
    result["digest_cost_pct"] = digest_cost(result["workloads"])
    if args.footprint:
        result["footprint"] = {n: footprint(n, args.workdir, args.footprint_luns) for n in names}
        result["conf_apply"] = {n: conf_apply(n, args.workdir, args.footprint_luns)
                                for n in names}
    rc = write_results(result, args.results_dir)
    print(f"bench: done in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return rc


def write_results(result: dict[str, Any], outdir: Path) -> int:
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "results.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    md = write_markdown(result)
    (outdir / "results.md").write_text(md)
    chart = write_chart(result, outdir / "results.png")
    print(md)
    print(f"bench: wrote {outdir / 'results.json'}, {outdir / 'results.md'}"
          + (f", {chart}" if chart else " (no chart: pip install '.[bench]')"), file=sys.stderr)
    failed = result.get("start_errors") or any(
        not v for w in result["workloads"].values() for v in w["runs"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
