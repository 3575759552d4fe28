"""A RAM-backed store (``--bstype memory``): a bytearray, for tests and scratch LUs.

Size from ``size=`` in bsopts (``64M``), the ``size`` argument, or a path that reads as a
size (``--backing-store 64M``). Reads return a private copy, so a later write cannot
change data that is still being sent.
"""

from __future__ import annotations

import errno
from typing import ClassVar

from pytgt.stores.base import (
    StoreCapability,
    StoreError,
    StoreIOError,
    check_range,
    parse_oflags,
    parse_options,
    parse_size,
)


class MemoryStore:
    """Volatile storage in a bytearray; every write is immediately "durable"."""

    name: ClassVar[str] = "memory"

    def __init__(self, size: int) -> None:
        if size < 0:
            raise StoreError(f"bad size: {size}")
        self.size = size
        self.capabilities = StoreCapability.FLUSH | StoreCapability.UNMAP
        self.path = ""
        self._buf = bytearray(size)

    @classmethod
    def open(cls, path: str, *, bsopts: str = "", bsoflags: str = "",
             size: int | None = None) -> MemoryStore:
        """Create a store; raises :class:`StoreError` without a usable size or on bad options."""
        opts = parse_options(bsopts)
        parse_oflags(bsoflags, frozenset())
        text = opts.pop("size", None)
        if opts:
            raise StoreError(f"unknown memory store option: {', '.join(sorted(opts))}")
        if text is not None:
            size = parse_size(text)
        elif size is None and path:
            try:
                size = parse_size(path)
            except StoreError:
                raise StoreError("memory store needs a size (bsopts size=64M)") from None
        if size is None:
            raise StoreError("memory store needs a size (bsopts size=64M)")
        store = cls(size)
        store.path = path
        return store

    async def read(self, offset: int, length: int) -> bytes:
        check_range(self.size, offset, length)
        return bytes(memoryview(self._buf)[offset:offset + length])

    async def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        n = len(data) if not isinstance(data, memoryview) else data.nbytes
        check_range(self.size, offset, n)
        self._buf[offset:offset + n] = data

    async def flush(self) -> None:
        return None

    async def resize(self, size: int) -> None:
        """Grow (zero-filled) or shrink the buffer (SupportsResize)."""
        if size < 0:
            raise StoreIOError(errno.EINVAL, f"bad size: {size}")
        if size < self.size:
            del self._buf[size:]
        else:
            self._buf.extend(bytes(size - self.size))
        self.size = size

    async def unmap(self, offset: int, length: int) -> None:
        check_range(self.size, offset, length)
        self._buf[offset:offset + length] = bytes(length)

    async def close(self) -> None:
        return None

    async def quiesce(self) -> None:
        return None  # every operation ends before its coroutine returns
