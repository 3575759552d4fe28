"""QD1 read latency with per-command timing, through libiscsi's synchronous API (ctypes).

``iscsi-perf`` and ``qemu-img bench`` report only totals, so this client times every
READ(16) itself: one ``iscsi_read16_sync`` call per command, ``perf_counter_ns`` around it.
The ctypes call adds about a microsecond to every sample, equally for every target.

    python bench/latency.py --portal 127.0.0.1:3260 --target IQN --lun 1 --size 4096 \
        --duration 5 [--random] [--header-digest]

Prints one JSON object: count, iops, median_us, p99_us, mean_us, min_us, max_us.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import random
import statistics
import sys
import time

ISCSI_SESSION_NORMAL = 2
ISCSI_HEADER_DIGEST_NONE = 0
ISCSI_HEADER_DIGEST_CRC32C = 3
SCSI_STATUS_GOOD = 0


class ReadCapacity16(ctypes.Structure):
    """The head of libiscsi's ``struct scsi_readcapacity16``."""

    _fields_ = [("returned_lba", ctypes.c_uint64), ("block_length", ctypes.c_uint32)]


def load_libiscsi() -> ctypes.CDLL:
    """Open libiscsi and declare the few functions used here; raises OSError if absent."""
    name = ctypes.util.find_library("iscsi") or "libiscsi.so.7"
    lib = ctypes.CDLL(name)
    vp, cp, ci = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    sigs = {
        "iscsi_create_context": (vp, [cp]),
        "iscsi_destroy_context": (ci, [vp]),
        "iscsi_set_targetname": (ci, [vp, cp]),
        "iscsi_set_session_type": (ci, [vp, ci]),
        "iscsi_set_header_digest": (ci, [vp, ci]),
        "iscsi_full_connect_sync": (ci, [vp, cp, ci]),
        "iscsi_logout_sync": (ci, [vp]),
        "iscsi_get_error": (cp, [vp]),
        "iscsi_readcapacity16_sync": (vp, [vp, ci]),
        "scsi_datain_unmarshall": (vp, [vp]),
        "iscsi_read16_sync": (vp, [vp, ci, ctypes.c_uint64, ctypes.c_uint32, ci,
                                   ci, ci, ci, ci, ci]),
        "scsi_free_scsi_task": (None, [vp]),
    }
    for fname, (restype, argtypes) in sigs.items():
        fn = getattr(lib, fname)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


def task_status(task: int) -> int:
    """``task->status`` (the first member of ``struct scsi_task``)."""
    return ctypes.c_int.from_address(task).value


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    k = max(0, min(len(sorted_values) - 1, round(p / 100.0 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def measure(args: argparse.Namespace) -> dict[str, float]:
    """Log in, read for ``args.duration`` seconds at QD1, log out; return the summary."""
    lib = load_libiscsi()
    ctx = lib.iscsi_create_context(args.initiator.encode())
    if not ctx:
        raise RuntimeError("iscsi_create_context failed")
    try:
        lib.iscsi_set_targetname(ctx, args.target.encode())
        lib.iscsi_set_session_type(ctx, ISCSI_SESSION_NORMAL)
        lib.iscsi_set_header_digest(
            ctx, ISCSI_HEADER_DIGEST_CRC32C if args.header_digest else ISCSI_HEADER_DIGEST_NONE)
        if lib.iscsi_full_connect_sync(ctx, args.portal.encode(), args.lun) != 0:
            raise RuntimeError(f"login failed: {lib.iscsi_get_error(ctx).decode()}")
        blocksize, nblocks = read_capacity(lib, ctx, args.lun)
        samples = read_loop(lib, ctx, args, blocksize, nblocks)
        lib.iscsi_logout_sync(ctx)
    finally:
        lib.iscsi_destroy_context(ctx)
    return summarize(samples)


def read_capacity(lib: ctypes.CDLL, ctx: int, lun: int) -> tuple[int, int]:
    """(logical block size, number of blocks) from READ CAPACITY(16)."""
    task = lib.iscsi_readcapacity16_sync(ctx, lun)
    if not task or task_status(task) != SCSI_STATUS_GOOD:
        raise RuntimeError(f"READ CAPACITY(16) failed: {lib.iscsi_get_error(ctx).decode()}")
    rc16 = ReadCapacity16.from_address(lib.scsi_datain_unmarshall(task))
    result = rc16.block_length, rc16.returned_lba + 1
    lib.scsi_free_scsi_task(task)
    return result


def read_loop(lib: ctypes.CDLL, ctx: int, args: argparse.Namespace, blocksize: int,
              nblocks: int) -> list[float]:
    """Issue READ(16)s one at a time until the deadline; return latencies in microseconds."""
    per_io = max(1, args.size // blocksize)
    span = max(1, min(nblocks, (1 << 30) // blocksize) - per_io)
    read16, free, clock = lib.iscsi_read16_sync, lib.scsi_free_scsi_task, time.perf_counter_ns
    rng = random.Random(1)
    samples: list[float] = []
    lba = 0
    deadline = time.monotonic() + args.duration
    while time.monotonic() < deadline:
        for _ in range(100):
            lba = rng.randrange(span) if args.random else (lba + per_io) % span
            t0 = clock()
            task = read16(ctx, args.lun, lba, per_io * blocksize, blocksize, 0, 0, 0, 0, 0)
            t1 = clock()
            if not task or task_status(task) != SCSI_STATUS_GOOD:
                raise RuntimeError(f"READ(16) failed: {lib.iscsi_get_error(ctx).decode()}")
            free(task)
            samples.append((t1 - t0) / 1000.0)
    return samples


def summarize(samples: list[float]) -> dict[str, float]:
    """Count, IOPS and latency percentiles (µs) of a list of samples."""
    ordered = sorted(samples)
    total_s = sum(ordered) / 1e6
    return {
        "count": len(ordered),
        "iops": len(ordered) / total_s if total_s else 0.0,
        "median_us": statistics.median(ordered),
        "p99_us": percentile(ordered, 99.0),
        "mean_us": statistics.fmean(ordered),
        "min_us": ordered[0],
        "max_us": ordered[-1],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portal", required=True, help="HOST:PORT")
    parser.add_argument("--target", required=True, help="target IQN")
    parser.add_argument("--lun", type=int, default=1)
    parser.add_argument("--size", type=int, default=4096, help="bytes per READ")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds")
    parser.add_argument("--random", action="store_true", help="random LBAs (default sequential)")
    parser.add_argument("--header-digest", action="store_true", help="require CRC32C")
    parser.add_argument("--initiator", default="iqn.2026-11.org.pytgt:bench-latency")
    args = parser.parse_args(argv)
    try:
        result = measure(args)
    except (RuntimeError, OSError) as exc:
        print(f"latency: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
