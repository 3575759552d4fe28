"""A LU's capacity changed while initiators are logged in (``--op update --mode
logicalunit --tid N --lun L --params ...``):

- ``rescan=1`` reads the backing store's size again (a file grown with ``truncate -s``
  or ``fallocate``, a block device grown with ``lvextend``, an RBD image grown with
  ``rbd resize``: stores.base.SupportsRescan) and exports it;
- ``size=BYTES`` (``4096``, ``64M``, ``2G``) exports that size: a regular backing file
  shorter than that is extended (sparse, never shortened), a memory store grows, a block
  device must already be that large.

When the exported size changes, every I_T nexus gets CAPACITY DATA HAS CHANGED (unit
attention 2Ah/09h, SBC-3 4.10) on that LU, so hosts re-read the capacity.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable

from pytgt.scsi.lu import LogicalUnit
from pytgt.scsi.sense import Asc
from pytgt.stores.base import BackingStore, StoreError, SupportsRescan, parse_size

log = logging.getLogger("pytgt.daemon.live")


def _fd(store: BackingStore) -> int | None:
    """The store's file descriptor (rdwr keeps it as ``_fd``), or None."""
    fd = getattr(store, "fd", None)
    if fd is None:
        fd = getattr(store, "_fd", None)
    return fd if isinstance(fd, int) else None


def _real_size(store: BackingStore) -> int | None:
    """The backing object's size now (None when the store cannot tell)."""
    if isinstance(store, SupportsRescan):
        return store.backing_size()
    fd = _fd(store)
    if fd is None:
        return None
    st = os.fstat(fd)
    if stat.S_ISBLK(st.st_mode):
        return os.lseek(fd, 0, os.SEEK_END)
    return st.st_size


def prepare_resize(lu: LogicalUnit, params: dict[str, str]) -> Callable[[], bool] | None:
    """Check ``size=``/``rescan=`` (removed from ``params``); returns the change, which
    answers whether the size changed. Raises ValueError, having changed nothing."""
    size_text, rescan = params.pop("size", None), params.pop("rescan", None)
    if size_text is None and rescan is None:
        return None
    store = lu.store
    if store is None:
        raise ValueError("this logical unit has no backing store to resize")
    if rescan is not None and rescan.strip() not in ("1", "yes", "on", "true"):
        raise ValueError(f"bad value for rescan: {rescan!r} (1)")
    try:
        real = _real_size(store)
    except OSError as exc:
        raise ValueError(f"cannot read the backing store's size: {exc}") from None
    if size_text is None:
        if real is None:
            raise ValueError(f"{lu.bstype} stores have no size to rescan; use size=")
        new = real
    else:
        try:
            new = parse_size(size_text.strip())
        except StoreError as exc:
            raise ValueError(str(exc)) from None
        _check_size(lu, store, new, real)
    return lambda: _apply(lu, store, new, real)


def _check_size(lu: LogicalUnit, store: BackingStore, new: int, real: int | None) -> None:
    if new < lu.block_size or new % lu.block_size:
        raise ValueError(f"size {new} is not a positive multiple of the block size "
                         f"{lu.block_size}")
    if real is None or new <= real:
        return
    fd = _fd(store)
    if fd is None:  # an RBD image is grown by its own tools
        raise ValueError(f"size {new} is larger than the {lu.bstype} store ({real})")
    if stat.S_ISBLK(os.fstat(fd).st_mode):
        raise ValueError(f"size {new} is larger than the block device ({real})")


def _apply(lu: LogicalUnit, store: BackingStore, new: int, real: int | None) -> bool:
    if real is not None and new > real:
        os.ftruncate(_fd(store) or -1, new)  # sparse; OSError -> the request fails
    buf = getattr(store, "_buf", None)
    if isinstance(buf, bytearray) and new > len(buf):  # MemoryStore
        buf.extend(bytearray(new - len(buf)))  # MemoryError -> the request fails
    if new == store.size:
        return False
    old, store.size = store.size, new
    lu.ua_add_all(lu.nexus_keys, Asc.CAPACITY_DATA_HAS_CHANGED)
    log.info("target %s LUN %d: size %d -> %d bytes", lu.tid, lu.lun, old, new)
    return True
