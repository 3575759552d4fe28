"""Per-LU I/O counters for ``pytgtadm --op stat`` (tgt's rd/wr bytes and commands, errors).

The counters are plain int attributes of :class:`~pytgt.scsi.lu.LogicalUnit`
(``stat_read_cmds``, ``stat_read_bytes``, ``stat_write_cmds``, ``stat_write_bytes``,
``stat_other_cmds``, ``stat_errors``: every completed command lands in exactly one of
the four command counters, so their sum is the command count), bumped on completion:
``ScsiTarget.execute`` calls :func:`record` for the generic path, and
``scsi/fastpath.py`` bumps the same attributes inline for the READ/WRITE it completes.
Counting starts when the LU is created; nothing is kept per I_T nexus.

Errors are also counted by status and sense key (``stat_error_kinds``, on the error
path only). Latency is measured only on a target whose ``timing`` is N > 0 (``pytgtd
--metrics``: N = 16), for one command in N: ``ScsiTarget.submit`` stamps
``task.started`` and :func:`record` (or the fast path in ``ScsiTarget.submit``) adds the
time to the LU's :class:`Latency`. Reading the clock twice costs about 0.3 us, 5 % of a
4 KiB command's whole path, so every command is counted but a sample is timed. The
daemon's Prometheus collector and ``--op stat`` read these same attributes.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pytgt.scsi.sense import SenseKey
from pytgt.scsi.task import Status

if TYPE_CHECKING:
    from pytgt.scsi.lu import LogicalUnit
    from pytgt.scsi.task import ScsiResult, ScsiTask

# READ(6/10/12/16): Data-In counted as bytes read.
READ_OPS = frozenset({0x08, 0x28, 0xA8, 0x88})
# WRITE(6/10/12/16), WRITE AND VERIFY(10/12/16), COMPARE AND WRITE, ORWRITE(16),
# WRITE ATOMIC(16), WRITE SAME(10/16): Data-Out counted as bytes written.
WRITE_OPS = frozenset({0x0A, 0x2A, 0xAA, 0x8A, 0x2E, 0xAE, 0x8E, 0x89, 0x8B, 0x9C, 0x41,
                       0x93})


# Operation classes of the latency histograms.
READ, WRITE, OTHER = 0, 1, 2
OP_CLASSES = ("read", "write", "other")
_CLASS_OF = [READ if op in READ_OPS else WRITE if op in WRITE_OPS else OTHER
             for op in range(256)]
# Latency buckets: upper bounds 4**k ns, 1.02 us (2**10 ns) to 1.07 s (2**30 ns), then
# +Inf; the bucket comes from the bit length of the time in ns (no search).
FIRST_BUCKET, LAST_BUCKET = 10, 30
BUCKET_BOUNDS_NS = tuple(1 << k for k in range(FIRST_BUCKET, LAST_BUCKET + 1, 2))
_SLOTS = len(BUCKET_BOUNDS_NS) + 1

now_ns = time.perf_counter_ns
# bit length of (ns - 1) -> bucket: ns <= 2**(FIRST_BUCKET + 2 * bucket)
_SLOT_OF_BITS = [min(max((bits - FIRST_BUCKET + 1) >> 1, 0), _SLOTS - 1) for bits in range(65)]


class Latency:
    """Command latencies of one LU by operation class: per-bucket counts and sums (ns)."""

    __slots__ = ("counts", "sums")

    def __init__(self) -> None:
        self.counts = [[0] * _SLOTS for _ in OP_CLASSES]
        self.sums = [0] * len(OP_CLASSES)

    def observe(self, op_class: int, ns: int) -> None:
        self.counts[op_class][_SLOT_OF_BITS[(ns - 1).bit_length()]] += 1
        self.sums[op_class] += ns


def observe(lu: LogicalUnit, task: ScsiTask) -> None:
    """Add the time since ``task.started`` (``now_ns``) to the LU's latency histograms."""
    ns = now_ns() - task.started
    lat = lu.stat_latency
    if lat is None:
        lat = lu.stat_latency = Latency()
    lat.observe(_CLASS_OF[task.cdb[0]], ns)


def op_class(opcode: int) -> int:
    return _CLASS_OF[opcode]


def error_kind(status: int, sense: bytes) -> tuple[str, str]:
    """(status, sense key) names of a failed command, lowercase (``""``: no sense key)."""
    try:
        status_name = Status(status).name.lower()
    except ValueError:
        status_name = f"0x{status:02x}"
    if status != Status.CHECK_CONDITION or len(sense) < 3:
        return status_name, ""
    key = (sense[1] if sense[0] & 0x7F in (0x72, 0x73) else sense[2]) & 0x0F
    try:
        return status_name, SenseKey(key).name.lower()
    except ValueError:
        return status_name, f"0x{key:x}"


def record(lu: LogicalUnit, task: ScsiTask, result: ScsiResult) -> None:
    """Count one command the generic path completed (and time it, when stamped)."""
    op = task.cdb[0]
    if task.started:
        observe(lu, task)
    if result.status:
        lu.stat_errors += 1
        kind = error_kind(result.status, result.sense)
        kinds = lu.stat_error_kinds
        kinds[kind] = kinds.get(kind, 0) + 1
        return
    if op in READ_OPS:
        lu.stat_read_cmds += 1
        lu.stat_read_bytes += len(result.data)
    elif op in WRITE_OPS:
        lu.stat_write_cmds += 1
        lu.stat_write_bytes += len(task.data_out)
    else:
        lu.stat_other_cmds += 1


def commands(lu: LogicalUnit) -> int:
    """Commands the LU completed (every status)."""
    return lu.stat_read_cmds + lu.stat_write_cmds + lu.stat_other_cmds + lu.stat_errors
