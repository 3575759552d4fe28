"""Big buffers used again once nothing else holds them (Data-Out gathering, reads).

Allocating, zeroing and faulting in a fresh 1 MiB buffer per command costs about as much
as moving the data. A buffer is free when the pool holds its only reference: whoever
received into it, the store writing it (a memoryview over it, even in a pool thread) or
the transport sending it keep it referenced until they are done. A reused buffer holds
old data: the caller overwrites every byte.
"""

from __future__ import annotations

import sys

_POOL_MIN = 64 * 1024  # smaller buffers are simply allocated
_POOL_BYTES = 32 << 20  # per pool
_POOL_SIZES = 4
_refs = sys.getrefcount


def _free_count() -> int:
    """What :meth:`BufferPool.get` sees for a buffer nobody else holds, measured in the
    same code shape (CPython versions count borrowed references differently)."""
    bufs = [bytearray(1)]
    for buf in bufs:
        return _refs(buf)
    raise AssertionError


_FREE = _free_count()


class BufferPool:
    """Buffers of at least ``_POOL_MIN`` bytes, at most ``_POOL_BYTES`` held, reused once
    unreferenced. One per connection (Data-Out: offsets are checked to be contiguous,
    DataPDUInOrder=Yes, so every byte is overwritten) and one per rdwr store (reads).
    ``clear()`` (idle connections) lets them go.
    """

    __slots__ = ("_free", "_bytes")

    def __init__(self) -> None:
        self._free: dict[int, list[bytearray]] = {}
        self._bytes = 0  # held by the pool, at most _POOL_BYTES

    def get(self, length: int) -> bytearray:
        """A buffer of ``length`` bytes, old contents (the caller overwrites all of it)."""
        if length < _POOL_MIN:
            return bytearray(length)
        bufs = self._free.get(length)
        if bufs is None:
            if len(self._free) >= _POOL_SIZES:
                self.clear()  # many sizes in turn: start over, let the rest go
            bufs = self._free[length] = []
        for buf in bufs:
            if _refs(buf) <= _FREE:  # this list and ``buf`` only
                return buf
        buf = bytearray(length)
        if self._bytes + length <= _POOL_BYTES:
            bufs.append(buf)
            self._bytes += length
        return buf

    def clear(self) -> None:
        self._free.clear()
        self._bytes = 0
