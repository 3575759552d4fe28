"""Per-LU I/O counters for ``pytgtadm --op stat`` (tgt's rd/wr bytes and commands, errors).

The counters are plain int attributes of :class:`~pytgt.scsi.lu.LogicalUnit`
(``stat_read_cmds``, ``stat_read_bytes``, ``stat_write_cmds``, ``stat_write_bytes``,
``stat_other_cmds``, ``stat_errors``: every completed command lands in exactly one of
the four command counters, so their sum is the command count), bumped on completion:
``ScsiTarget.execute`` calls :func:`record` for the generic path, and
``scsi/fastpath.py`` bumps the same attributes inline for the READ/WRITE it completes.
Counting starts when the LU is created; nothing is kept per I_T nexus.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytgt.scsi.lu import LogicalUnit
    from pytgt.scsi.task import ScsiResult, ScsiTask

# READ(6/10/12/16): Data-In counted as bytes read.
READ_OPS = frozenset({0x08, 0x28, 0xA8, 0x88})
# WRITE(6/10/12/16), WRITE AND VERIFY(10/12/16), COMPARE AND WRITE, ORWRITE(16),
# WRITE ATOMIC(16), WRITE SAME(10/16): Data-Out counted as bytes written.
WRITE_OPS = frozenset({0x0A, 0x2A, 0xAA, 0x8A, 0x2E, 0xAE, 0x8E, 0x89, 0x8B, 0x9C, 0x41,
                       0x93})


def record(lu: LogicalUnit, task: ScsiTask, result: ScsiResult) -> None:
    """Count one command the generic path completed."""
    if result.status:
        lu.stat_errors += 1
        return
    op = task.cdb[0]
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
