"""The null store (``--bstype null``): reads return zeros, writes are discarded.

Like tgt's ``bs_null``, it is a benchmark and test aid. The size comes from ``size=`` in
bsopts, the ``size`` argument, or defaults to 1 TiB (tgt's null device size). Reads
return slices of one preallocated zero buffer (no allocation per command).
"""

from __future__ import annotations

from typing import ClassVar

from pytgt.stores.base import (
    StoreCapability,
    StoreError,
    check_range,
    parse_oflags,
    parse_options,
    parse_size,
)

DEFAULT_SIZE = 1 << 40
_ZERO_CHUNK = 1 << 20


class NullStore:
    """Zeros in, nothing out."""

    name: ClassVar[str] = "null"

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self.capabilities = StoreCapability.FLUSH | StoreCapability.UNMAP | StoreCapability.THIN
        self.path = ""
        self._zeros = memoryview(bytes(_ZERO_CHUNK))

    @classmethod
    def open(cls, path: str, *, bsopts: str = "", bsoflags: str = "",
             size: int | None = None) -> NullStore:
        """Create a store; raises :class:`StoreError` on bad options."""
        opts = parse_options(bsopts)
        parse_oflags(bsoflags, frozenset())
        text = opts.pop("size", None)
        if opts:
            raise StoreError(f"unknown null store option: {', '.join(sorted(opts))}")
        if text is not None:
            size = parse_size(text)
        store = cls(DEFAULT_SIZE if size is None else size)
        store.path = path
        return store

    async def read(self, offset: int, length: int) -> bytes | memoryview:
        check_range(self.size, offset, length)
        if length <= _ZERO_CHUNK:
            return self._zeros[:length]
        return bytes(length)

    def read_nowait(self, offset: int, length: int) -> bytes | memoryview:
        """:meth:`read` without awaiting (zeros are always at hand)."""
        if offset < 0 or length < 0 or offset + length > self.size:
            check_range(self.size, offset, length)  # raises
        if length <= _ZERO_CHUNK:
            return self._zeros[:length]
        return bytes(length)

    async def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        check_range(self.size, offset, len(data))

    def write_nowait(self, offset: int, data: bytes | bytearray | memoryview) -> bool:
        """:meth:`write` without awaiting (nothing is kept)."""
        check_range(self.size, offset, len(data))
        return True

    async def flush(self) -> None:
        return None

    async def unmap(self, offset: int, length: int) -> None:
        check_range(self.size, offset, length)

    async def close(self) -> None:
        return None

    async def quiesce(self) -> None:
        return None  # every operation ends before its coroutine returns
