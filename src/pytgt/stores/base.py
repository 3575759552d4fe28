"""Backing-store plugin interface: bytes and offsets, no SCSI semantics.

A store is opened by :func:`pytgt.stores.open_store` from a registry filled by the
``pytgt.backing_stores`` entry-point group, so a third-party package adds a store by
declaring an entry point (tgt's ``bs_*.c`` modules, the Python way). A store class
provides ``open(path, *, bsopts, bsoflags, size)`` returning an open instance.

Every coroutine runs its blocking work off the event loop (a thread pool or a
native asynchronous API); a failed I/O raises :class:`StoreIOError` with the errno,
which the SCSI layer turns into MEDIUM ERROR / HARDWARE ERROR for that command only.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable


class StoreCapability(enum.Flag):
    """What a store can do beyond read/write."""

    NONE = 0
    FLUSH = enum.auto()  # flush() makes earlier writes durable
    UNMAP = enum.auto()  # unmap() deallocates (reads return zeros afterwards)
    THIN = enum.auto()  # storage is allocated on write (sparse)


class StoreError(Exception):
    """Opening or configuring a store failed (bad path, bad option); message is for the admin."""


class StoreUnavailable(StoreError):
    """The store type cannot work in this process (a missing library); the message says
    what to install and is shown to the admin as is."""


class StoreDeviceError(StoreError):
    """The backing-store path is not the kind of device the store type drives (``sg``:
    not a SCSI generic device); the message is one admin-readable line, shown as is."""


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

    async def quiesce(self) -> None:
        """Return once every operation started before this call has really ended, even
        one whose caller was cancelled (a ``pwrite`` in a pool thread cannot be stopped).
        Task management awaits it before answering, so an aborted write cannot land
        after the response. Operations started later are not waited for."""
        ...


async def quiesce(store: BackingStore) -> None:
    """``store.quiesce()``; a plugin written before it existed has nothing to wait for."""
    fn = getattr(store, "quiesce", None)
    if fn is not None:
        await fn()


@runtime_checkable
class SupportsAllocationStatus(Protocol):
    """Optional: a thin store that can tell allocated extents from holes (GET LBA STATUS)."""

    async def allocation(self, offset: int, length: int) -> tuple[bool, int]:
        """(allocated, bytes) for the extent that starts at ``offset``, at most ``length``."""
        ...


@runtime_checkable
class SupportsWriteFua(Protocol):
    """Optional: write and make durable in one step (one thread hop instead of two)."""

    async def write_fua(self, offset: int, data: bytes | bytearray | memoryview) -> None: ...


@runtime_checkable
class SupportsSharedState(Protocol):
    """Optional: a medium that several targets (gateways) serve at once, such as an RBD
    image. ``share`` returns the ``scsi.shared.SharedState`` that keeps the LU's
    reservations with the medium, started, for the gateway whose portal group tag is
    ``tpgt``; the store stops it when it closes."""

    async def share(self, lu: Any, tpgt: int) -> Any: ...


@runtime_checkable
class SupportsIdentity(Protocol):
    """Optional: a store whose backing object has an identity of its own (a Ceph image
    id), the LU's default SCSI ID and serial (SPC-4 7.8.6, 7.8.16): every gateway that
    opens the same object presents the same LU, across restarts."""

    def identity(self) -> str:
        """At most 40 printable ASCII characters, stable for the object's lifetime."""
        ...


def store_identity(store: object) -> str:
    """``store.identity()`` for a :class:`SupportsIdentity` store, else ``""``."""
    ident = store.identity() if isinstance(store, SupportsIdentity) else ""
    return ident if isinstance(ident, str) else ""


@runtime_checkable
class SupportsPoolStats(Protocol):
    """Optional: a store that runs blocking I/O in a thread pool (metrics)."""

    def pool_stats(self) -> tuple[int, int]:
        """(jobs waiting for a thread, jobs submitted and not yet ended)."""
        ...


@runtime_checkable
class SupportsRescan(Protocol):
    """Optional: a store that can read its backing object's size again (live resize)."""

    def backing_size(self) -> int:
        """The object's size in bytes now (it may have grown or shrunk since open)."""
        ...


@runtime_checkable
class SupportsResize(Protocol):
    """Optional: a store whose object can grow and shrink (a tape image in tgt's format
    holds only what was written, scsi/tape_media.py)."""

    async def resize(self, size: int) -> None:
        """Make the object ``size`` bytes long (zeros when it grows); ``size`` follows."""
        ...


@runtime_checkable
class SupportsCompareAndWrite(Protocol):
    """Optional: COMPARE AND WRITE (SBC-3 5.2) atomic beyond this process (a store shared
    by several gateways); the SCSI layer still serialises it within the LU."""

    async def compare_and_write(self, offset: int, compare: bytes | bytearray | memoryview,
                                data: bytes | bytearray | memoryview) -> int | None:
        """Write ``data`` at ``offset`` if the medium there equals ``compare`` (same
        length); else write nothing and return the offset of the first differing byte."""
        ...


@dataclass(frozen=True, slots=True)
class PassthroughResult:
    """How a command sent to a SCSI device ended, as the host's SCSI stack reports it
    (Linux sg(4), ``struct sg_io_hdr``): the device's ``status`` byte (SAM-5) and sense
    as it sent them, ``host_status`` (``DID_*``) and ``driver_status`` (``DRIVER_*``)
    from the host, the Data-In received and ``resid`` (bytes asked for and not moved,
    either direction); ``overflow``: bytes the device would have moved beyond the
    buffer, when the host's residual is larger than the buffer (an iSCSI or SAS
    overflow; sg has no other way to tell it from an underflow)."""

    status: int
    host_status: int = 0
    driver_status: int = 0
    sense: bytes = b""
    data: bytes | bytearray | memoryview = b""
    resid: int = 0
    overflow: int = 0


@runtime_checkable
class SupportsPassthrough(Protocol):
    """Optional: a store that is a SCSI device (``sg``): commands go to it whole."""

    async def passthrough(self, cdb: bytes, data_out: bytes | bytearray | memoryview,
                          data_in_length: int, *, head_of_queue: bool = False
                          ) -> PassthroughResult:
        """Send ``cdb`` with its Data-Out (or room for ``data_in_length`` bytes of
        Data-In); raises :class:`StoreIOError` when the host could not send it."""
        ...

    async def reset_device(self) -> None:
        """Ask the host to reset the device (a LOGICAL UNIT RESET reaching it)."""
        ...


async def write_durable(store: BackingStore, offset: int,
                        data: bytes | bytearray | memoryview) -> None:
    """``write`` then ``flush`` (FUA, write-through caching), fused when the store can."""
    if isinstance(store, SupportsWriteFua):
        await store.write_fua(offset, data)
    else:
        await store.write(offset, data)
        await store.flush()


_SIZE = re.compile(r"^\s*(\d+)\s*([kmgtpe]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 0, "k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}


def parse_size(text: str) -> int:
    """``"64M"``, ``"1G"``, ``"4096"``, ``"2TiB"`` -> bytes (binary units, as tgtadm).

    Raises :class:`StoreError` for anything else.
    """
    m = _SIZE.match(text)
    if m is None:
        raise StoreError(f"bad size: {text!r}")
    return int(m.group(1)) << _UNITS[m.group(2).lower()]


def parse_options(bsopts: str) -> dict[str, str]:
    """tgt's ``--bsopts "a=1;b=2"`` (``;`` or ``,`` separated) -> dict."""
    out: dict[str, str] = {}
    for item in re.split(r"[;,]", bsopts):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise StoreError(f"bad backing store option: {item!r} (expected key=value)")
        out[key.strip()] = value.strip()
    return out


def parse_oflags(bsoflags: str, allowed: frozenset[str]) -> set[str]:
    """tgt's ``--bsoflags sync,direct`` (``,`` or ``:`` separated) -> set; rejects unknown."""
    flags = {f.strip() for f in re.split(r"[,:]", bsoflags) if f.strip()}
    bad = flags - allowed
    if bad:
        raise StoreError(f"unsupported bsoflags: {', '.join(sorted(bad))} "
                         f"(supported: {', '.join(sorted(allowed)) or 'none'})")
    return flags


def check_range(size: int, offset: int, length: int) -> None:
    """Raise ``StoreIOError(EINVAL)`` unless ``[offset, offset+length)`` lies inside the store."""
    if offset < 0 or length < 0 or offset + length > size:
        import errno

        raise StoreIOError(errno.EINVAL, f"I/O beyond end of store ({offset}+{length} > {size})")
