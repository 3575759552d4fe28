"""QoS benchmark: a LU held to its max_iops / max_bps beside an unlimited one (issue 13).

    python -m bench.qos [--duration 5] [--iops 5000] [--bps-mib 200] [--runs 1] [--json FILE]

Starts pytgtd from this checkout on 127.0.0.1 with two LUNs on the ``null`` store (the
protocol path alone, no disk in the way): LUN 1 gets the limits, LUN 2 none. Then, with
libiscsi's ``iscsi-perf`` (READ(16); QD32 x 4 KiB for IOPS, QD16 x 1 MiB for bandwidth):

1. LUN 2 alone, before any limit is set: the unlimited baseline;
2. LUN 1 alone with ``max_iops``: the measured IOPS against the limit (goal: within 10 %);
3. LUN 1 and LUN 2 at once: LUN 1 still at its limit, LUN 2 against its baseline;
4. LUN 1 alone with ``max_bps`` (``max_iops=0``): MiB/s against the limit.

Each step runs ``--runs`` times; the table shows medians. Every daemon is stopped by PID.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.targets import IQN, PytgtTarget, die_with_parent
from bench.workloads import IOPS_LINE, client_timeout

LIMITED, UNLIMITED = 1, 2
MIB = 1 << 20


def perf(t: PytgtTarget, lun: int, depth: int, blocks: int, seconds: int) -> subprocess.Popen[str]:
    cmd = ["iscsi-perf", "-m", str(depth), "-b", str(blocks), "-t", str(seconds), "-r",
           "-i", f"iqn.2026-11.org.pytgt:qos-bench-{lun}", t.url(lun)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=die_with_parent)


def result(p: subprocess.Popen[str], seconds: int) -> float:
    out, _ = p.communicate(timeout=client_timeout(seconds))
    found = IOPS_LINE.findall(out)
    if p.returncode != 0 or not found:
        raise RuntimeError(f"iscsi-perf rc {p.returncode}: {out[-300:]!r}")
    return float(found[-1])


def set_limits(t: PytgtTarget, iops: int, bps: int) -> None:
    t.adm("--op", "update", "--mode", "logicalunit", "--tid", "1", "--lun", str(LIMITED),
          "--params", f"max_iops={iops},max_bps={bps}")


def run(args: argparse.Namespace, workdir: Path) -> dict[str, list[float]]:
    t = PytgtTarget(workdir)
    t.start()
    out: dict[str, list[float]] = {k: [] for k in (
        "baseline_iops", "limited_alone_iops", "limited_shared_iops", "unlimited_shared_iops",
        "bps_limited_mib_s")}
    secs = args.duration
    try:
        t.adm("--op", "new", "--mode", "target", "--tid", "1", "-T", IQN)
        for lun in (LIMITED, UNLIMITED):
            t.adm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", str(lun),
                  "-b", f"null{lun}", "-E", "null")
        t.adm("--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")
        for _ in range(args.runs):
            set_limits(t, 0, 0)
            out["baseline_iops"].append(result(perf(t, UNLIMITED, 32, 8, secs), secs))
            set_limits(t, args.iops, 0)
            out["limited_alone_iops"].append(result(perf(t, LIMITED, 32, 8, secs), secs))
            a, b = perf(t, LIMITED, 32, 8, secs), perf(t, UNLIMITED, 32, 8, secs)
            out["limited_shared_iops"].append(result(a, secs))
            out["unlimited_shared_iops"].append(result(b, secs))
            set_limits(t, 0, args.bps_mib * MIB)
            iops = result(perf(t, LIMITED, 16, 2048, secs), secs)  # 1 MiB reads
            out["bps_limited_mib_s"].append(iops * MIB / MIB)
    finally:
        t.stop()
    return out


def report(args: argparse.Namespace, samples: dict[str, list[float]]) -> str:
    med = {k: statistics.median(v) for k, v in samples.items()}

    def off(measured: float, limit: float) -> str:
        return f"{(measured - limit) / limit * 100:+.1f} %"

    rows = [
        ("LUN 2 alone, no limit (baseline)", f"{med['baseline_iops']:,.0f} IOPS", "", ""),
        (f"LUN 1 alone, max_iops={args.iops}", f"{med['limited_alone_iops']:,.0f} IOPS",
         off(med["limited_alone_iops"], args.iops), "within 10 % of the limit"),
        (f"LUN 1 beside LUN 2, max_iops={args.iops}", f"{med['limited_shared_iops']:,.0f} IOPS",
         off(med["limited_shared_iops"], args.iops), "within 10 % of the limit"),
        ("LUN 2 beside LUN 1, no limit", f"{med['unlimited_shared_iops']:,.0f} IOPS",
         off(med["unlimited_shared_iops"], med["baseline_iops"]) + " vs baseline",
         "not held to LUN 1's limit"),
        (f"LUN 1 alone, max_bps={args.bps_mib}M, 1 MiB QD16",
         f"{med['bps_limited_mib_s']:,.1f} MiB/s",
         off(med["bps_limited_mib_s"], args.bps_mib), "within 10 % of the limit"),
    ]
    lines = [f"QoS, pytgtd null store, iscsi-perf 4 KiB random read QD32 unless noted, "
             f"{args.duration} s x {args.runs} run(s), medians, {time.strftime('%Y-%m-%d %H:%M')}",
             "", "| run | measured | vs limit | goal |", "|---|---:|---:|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.qos", description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=int, default=5, help="seconds per iscsi-perf run")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--iops", type=int, default=2000, help="max_iops of LUN 1")
    p.add_argument("--bps-mib", type=int, default=100, help="max_bps of LUN 1, in MiB/s")
    p.add_argument("--json", metavar="FILE", help="also write the samples as JSON")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pytgt-qos-bench-") as tmp:
        samples = run(args, Path(tmp))
    print(report(args, samples))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "samples": samples},
                                              indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
