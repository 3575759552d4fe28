"""Backing-store plugin interface: bytes and offsets, no SCSI semantics.

A store is opened by :func:`pytgt.stores.open_store` from a registry filled by the
``pytgt.backing_stores`` entry-point group, so a third-party package adds a store by
declaring an entry point (tgt's ``bs_*.c`` modules, the Python way).

Every coroutine runs its blocking work off the event loop (a thread pool or a
native asynchronous API); a failed I/O raises :class:`StoreIOError` with the errno,
which the SCSI layer turns into MEDIUM ERROR / HARDWARE ERROR for that command only.
"""

from __future__ import annotations

import enum
from typing import ClassVar, Protocol, runtime_checkable


class StoreCapability(enum.Flag):
    """What a store can do beyond read/write."""

    NONE = 0
    FLUSH = enum.auto()  # flush() makes earlier writes durable
    UNMAP = enum.auto()  # unmap() deallocates (reads return zeros afterwards)
    THIN = enum.auto()  # storage is allocated on write (sparse)


class StoreError(Exception):
    """Opening or configuring a store failed (bad path, bad option); message is for the admin."""


class StoreIOError(Exception):
    """An I/O on an open store failed; ``errno`` tells which way."""

    def __init__(self, errno: int, message: str = "") -> None:
        super().__init__(message or f"backing store I/O error (errno {errno})")
        self.errno = errno


@runtime_checkable
class BackingStore(Protocol):
    """An open backing store.

    ``size`` is in bytes. ``read`` returns exactly ``length`` bytes (a ``bytes`` or
    ``bytearray``/``memoryview`` the caller may pass to the transport untouched).
    """

    name: ClassVar[str]
    size: int
    capabilities: StoreCapability

    async def read(self, offset: int, length: int) -> bytes | bytearray | memoryview: ...

    async def write(self, offset: int, data: bytes | bytearray | memoryview) -> None: ...

    async def flush(self) -> None: ...

    async def unmap(self, offset: int, length: int) -> None: ...

    async def close(self) -> None: ...
