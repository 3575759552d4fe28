"""What ``pytgtd --metrics`` adds per command on the fast path, measured in process.

``ScsiTarget.submit`` of READ(16) 4 KiB on a null-store LU (answered by the nowait
handler, as in the ``4k_randread_qd32_null`` workload) with ``timing`` off, as pytgtd
--metrics sets it (one command in 16 timed) and timing every command, in alternating
batches; prints the best batch of each in ns per command. Unlike a
whole-daemon run it does not depend on what else the machine runs::

    python -m bench.metrics_cost [--commands N] [--batches N]
"""

from __future__ import annotations

import argparse
import struct
import time

from pytgt.daemon.metrics import LATENCY_SAMPLE
from pytgt.scsi.lu import create_lu
from pytgt.scsi.target import ScsiTarget
from pytgt.scsi.task import ItNexus, ScsiTask
from pytgt.stores.null import NullStore


def _target(timing: int) -> tuple[ScsiTarget, ItNexus]:
    target = ScsiTarget("iqn.2026-12.org.pytgt:cost", 1, timing=timing)
    target.add_lu(create_lu("disk", 1, NullStore(1 << 30), tid=1, bstype="null"))
    nexus = ItNexus("n1", "iqn.2026-12.org.pytgt:client")
    target.add_nexus(nexus)
    return target, nexus


def _batch(target: ScsiTarget, nexus: ItNexus, n: int) -> float:
    """ns per command of ``n`` READ(16) of 8 blocks."""
    def done(*_: object) -> None:
        raise AssertionError("not answered at once")
    cdbs = [struct.pack(">BBQIBB", 0x88, 0, (i * 8) % (1 << 20), 8, 0, 0) for i in range(256)]
    t0 = time.perf_counter_ns()
    for i in range(n):
        target.submit(ScsiTask(nexus, 1, cdbs[i & 255], tag=i, expected_in=4096), done)
    return (time.perf_counter_ns() - t0) / n


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.metrics_cost")
    p.add_argument("--commands", type=int, default=200_000, help="commands per batch")
    p.add_argument("--batches", type=int, default=10, help="batches per setting")
    args = p.parse_args()
    runs: dict[int, list[float]] = {0: [], LATENCY_SAMPLE: [], 1: []}
    pairs = {timing: _target(timing) for timing in runs}
    for target, nexus in pairs.values():  # consume the POWER ON unit attention
        target.submit(ScsiTask(nexus, 1, bytes(16)), lambda *_: None)
    for _ in range(args.batches):
        for timing, (target, nexus) in pairs.items():
            runs[timing].append(_batch(target, nexus, args.commands))
    off = min(runs[0])
    print(f"ScsiTarget.submit, READ(16) 4 KiB on the null store: {off:.0f} ns per command "
          "without --metrics")
    for timing, what in ((LATENCY_SAMPLE, "with --metrics"), (1, "timing every command")):
        on = min(runs[timing])
        print(f"  {what} (1 in {timing} timed): {on:.0f} ns, +{on - off:.0f} ns "
              f"({100 * (on - off) / off:+.1f} %)")


if __name__ == "__main__":
    main()
