"""READ/WRITE(10/16) answered at once, without a coroutine, when the store can.

``ScsiTarget.submit`` runs a SIMPLE task that the LU's task set enables at once and
whose command-table row has a ``nowait`` handler this way: the LU's own
``preflight`` first (the same checks as every command), then the row's ``nowait``,
which returns the Data-In (empty for a write) when the store did the work without
waiting (``read_nowait`` / ``write_nowait``: page-cache hits, the null store), or
None, and the command goes on through the row's ordinary handler, which gives the
same answer or the error. Nothing here decides whether a command may run.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from pytgt.stores.base import StoreIOError

if TYPE_CHECKING:
    from pytgt.scsi.lu import LogicalUnit
    from pytgt.scsi.task import ScsiTask

_RW10 = struct.Struct(">xBIxH")  # flags, LBA, transfer length (SBC-3 5.9)
_RW16 = struct.Struct(">xBQI")  # flags, LBA, transfer length (SBC-3 5.11)
_PROTECT = 0xE0  # RDPROTECT / WRPROTECT
_FUA = 0x08
_NOTHING = b""


def read(lu: LogicalUnit, task: ScsiTask) -> Any:
    """READ(10)/READ(16)'s data if the store has it at once, else None."""
    cdb = task.cdb
    flags, lba, n = (_RW16 if cdb[0] & 0x80 else _RW10).unpack_from(cdb)
    store = lu.store
    bs = lu.block_size
    if flags & _PROTECT or not n or store is None or lba + n > store.size // bs:
        return None
    read_nowait = getattr(store, "read_nowait", None)  # optional (stores/base.py)
    if read_nowait is None:
        return None
    length = n * bs
    try:
        data = read_nowait(lba * bs, length)
    except StoreIOError:  # the ordinary handler reports it as sense data
        return None
    if data is not None:  # --op stat (lu_stats.py)
        lu.stat_read_cmds += 1
        lu.stat_read_bytes += length
    return data


def write(lu: LogicalUnit, task: ScsiTask) -> Any:
    """``b""`` if the store took WRITE(10)/WRITE(16)'s data at once, else None.

    Only a full-length Data-Out with the write cache on and no FUA (nothing to flush)
    on a store with ``write_nowait``.
    """
    cdb = task.cdb
    flags, lba, n = (_RW16 if cdb[0] & 0x80 else _RW10).unpack_from(cdb)
    store = lu.store
    bs = lu.block_size
    task.transfer_out = n * bs  # what the CDB asks for (residuals)
    data = task.data_out
    if (flags & (_PROTECT | _FUA) or not n or store is None or not lu.mode.wce
            or len(data) != n * bs or lba + n > store.size // bs):
        return None
    write_nowait = getattr(store, "write_nowait", None)
    if write_nowait is None:
        return None
    try:
        if not write_nowait(lba * bs, data):
            return None
    except StoreIOError:  # the ordinary handler tries again and reports it
        return None
    lu.stat_write_cmds += 1  # --op stat (lu_stats.py)
    lu.stat_write_bytes += len(data)
    return _NOTHING
