"""READ/WRITE(10/16) without the generic dispatch: the same answers, fewer layers.

The generic path (``ScsiTarget.execute`` -> ``LogicalUnit.execute`` -> the command
table's handler -> the store) costs a coroutine and an object per layer. Most commands
of a benchmark or a busy initiator are plain reads and writes on an LU in its plain
state, and for those the answer is GOOD with the store's data. These functions give
that answer directly when every preflight check of ``LogicalUnit.execute`` would pass
(no unit attention for the nexus, no ALUA restriction, online with medium, no SPC-2 or
persistent reservation, no ORDERED barrier, the LU's table still has the standard
handler) and the CDB is in range; otherwise they return None and the caller runs the
generic path, which then produces the same data or the error. Keep these checks in
step with ``LogicalUnit.execute``; ``tests/scsi/test_fastpath.py`` runs the same
commands through both paths and compares the PDUs.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from pytgt.scsi import sbc
from pytgt.scsi.lu import store_error
from pytgt.scsi.task import ScsiResult, Status
from pytgt.stores.base import StoreIOError

if TYPE_CHECKING:
    from pytgt.scsi.lu import LogicalUnit
    from pytgt.scsi.target import ScsiTarget

_RW10 = struct.Struct(">xBIxH")  # flags, LBA, transfer length (SBC-3 5.9)
_RW16 = struct.Struct(">xBQI")  # flags, LBA, transfer length (SBC-3 5.11)
_PROTECT = 0xE0  # RDPROTECT / WRPROTECT
_FUA = 0x08
GOOD = ScsiResult(Status.GOOD)  # shared: never modified
_HANDLERS: dict[int, Any] = {0x28: sbc.read_10, 0x88: sbc.read_16,
                             0x2A: sbc.write_10, 0x8A: sbc.write_16}


def _plain_lu(target: ScsiTarget, lun: int, nexus_key: str, op: int) -> LogicalUnit | None:
    """The LU if a command ``op`` from this nexus passes every preflight check as is."""
    lu = target._by_field.get(lun)  # noqa: SLF001 - the target's own LUN index
    if lu is None:
        return None
    row = lu.commands.get(op)
    if (row is None or row.handler is not _HANDLERS[op] or row.available is not None
            or (lu.ua and lu.ua.get(nexus_key)) or lu.alua.restricted
            or not (lu.online and lu.loaded) or lu.reservation is not None or lu.pr.type
            or lu.task_set.barrier is not None or lu.sanitizing is not None):
        return None
    return lu


def _cdb_range(lu: LogicalUnit, cdb: bytes) -> tuple[int, int, int] | None:
    """(flags, byte offset, byte length) of a READ/WRITE(10/16) inside the medium."""
    op = cdb[0]
    if op & 0x80:
        flags, lba, n = _RW16.unpack_from(cdb)
    else:
        flags, lba, n = _RW10.unpack_from(cdb)
    store = lu.store
    bs = lu.block_size
    if flags & _PROTECT or not n or store is None or lba + n > store.size // bs:
        return None
    return flags, lba * bs, n * bs


def read(target: ScsiTarget, nexus_key: str, lun: int, cdb: bytes) -> Any:
    """Data-In of a READ(10)/READ(16) that completes now with GOOD, or None.

    None means: run the generic path (an error to report, an LU not in its plain state,
    or a store that would have to wait for the disk).
    """
    op = cdb[0]
    if op != 0x88 and op != 0x28:
        return None
    lu = _plain_lu(target, lun, nexus_key, op)
    if lu is None:
        return None
    # _cdb_range, inline (one call less per read)
    flags, lba, n = _RW16.unpack_from(cdb) if op == 0x88 else _RW10.unpack_from(cdb)
    store = lu.store
    bs = lu.block_size
    if flags & _PROTECT or not n or store is None or lba + n > store.size // bs:
        return None
    read_nowait = getattr(store, "read_nowait", None)
    if read_nowait is None:
        return None
    length = n * bs
    try:
        data = read_nowait(lba * bs, length)
    except StoreIOError:  # the generic path reports it as sense data
        return None
    if data is not None:  # --op stat (lu_stats.py)
        lu.stat_read_cmds += 1
        lu.stat_read_bytes += length
    return data


def write(target: ScsiTarget, nexus_key: str, lun: int, cdb: bytes,
          data: Any) -> Awaitable[ScsiResult] | ScsiResult | None:
    """Write a WRITE(10)/WRITE(16)'s Data-Out: :data:`GOOD` when the store took it at
    once (``write_nowait``), else a coroutine answering GOOD or the store error's sense
    data; None when the generic path must run.

    Only for a full-length Data-Out on a writable LU with its write cache on and no FUA
    (nothing to flush).
    """
    op = cdb[0]
    if op != 0x8A and op != 0x2A:
        return None
    lu = _plain_lu(target, lun, nexus_key, op)
    if lu is None or lu.readonly or lu.swp or not lu.mode.wce:
        return None
    where = _cdb_range(lu, cdb)
    if where is None or where[0] & _FUA or len(data) != where[2]:
        return None
    write_nowait = getattr(lu.store, "write_nowait", None)
    if write_nowait is not None:
        try:
            if write_nowait(where[1], data):
                lu.stat_write_cmds += 1  # --op stat (lu_stats.py)
                lu.stat_write_bytes += where[2]
                return GOOD
        except StoreIOError:  # the generic path tries again and reports it
            return None
    return _write(lu, where[1], data)


async def _write(lu: LogicalUnit, offset: int, data: Any) -> ScsiResult:
    ts = lu.task_set
    ts.active += 1  # an ORDERED task that arrives meanwhile waits for this one
    try:
        assert lu.store is not None
        await lu.store.write(offset, data)
    except StoreIOError as exc:
        lu.stat_errors += 1
        return lu.check_condition(store_error(exc, True))
    finally:
        ts.active -= 1
        if ts.drained is not None:
            ts.wake()
    lu.stat_write_cmds += 1  # --op stat (lu_stats.py)
    lu.stat_write_bytes += len(data)
    return ScsiResult(Status.GOOD)
