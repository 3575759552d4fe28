"""The Ceph RBD store (``--bstype rbd``, tgt's ``bs_rbd``): a RADOS block device image.

``-b POOL/IMAGE`` (``IMAGE`` alone: pool ``rbd``; ``POOL/IMAGE@SNAP``: a snapshot, read
only); ``--bsopts`` takes tgt's keys ``conf=`` (ceph.conf), ``id=`` (client name without
``client.``) and ``cluster=``. Uses Debian's ``python3-rados``/``python3-rbd`` (not on
PyPI); without them opening answers one line saying what to install.

Every read, write, flush and unmap is the binding's asynchronous call (``aio_*``); the
completion, run on a librbd thread, hands the result to the event loop with
``call_soon_threadsafe``, so a slow OSD never blocks the loop. Opening, closing, the
COMPARE AND WRITE lock and GET LBA STATUS (``diff_iterate``) block and run in threads.

One ``rados.Rados`` connection per (conf, id, cluster) serves every RBD store of the
process (reference counted). Its librbd cache is off: with several gateways exporting
one image, a gateway-side cache could serve data another gateway has overwritten.
UNMAP is ``aio_write_zeroes`` (whole objects are deallocated, partial ones zeroed), as
a plain discard skips ranges below ``rbd_discard_granularity_bytes`` and reads would
not return zeros (LBPRZ=1, SBC-3 4.7.3.6).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import errno
import os
import threading
import uuid
from collections.abc import Callable
from types import ModuleType
from typing import Any, ClassVar

from pytgt.stores.base import (
    StoreCapability,
    StoreError,
    StoreIOError,
    StoreUnavailable,
    check_range,
    parse_oflags,
    parse_options,
)
from pytgt.stores.rbd_shared import RadosSharedState

DEFAULT_POOL = "rbd"
CONNECT_TIMEOUT = 20  # seconds to reach the monitors (librados' default is 300)
OP_TIMEOUT = 30  # seconds an OSD or monitor operation may take before it fails
CAW_LOCK_SECONDS = 30  # a dead gateway's COMPARE AND WRITE lock expires after this
_CAW_LOCK = "pytgt.caw"
_LOCK_FLAG_MAY_RENEW = 1  # LIBRADOS_LOCK_FLAG_RENEW
_ALLOCATION_SPAN = 1 << 30  # bytes GET LBA STATUS looks at per call
_OPTIONS = frozenset({"conf", "id", "cluster"})
_MISSING = ("rbd backing store: the Ceph Python bindings are missing: install Debian's "
            "python3-rbd and python3-rados (in a virtualenv, create it with "
            "/usr/bin/python3 -m venv --system-site-packages)")


def bindings() -> tuple[ModuleType, ModuleType]:
    """The ``rados`` and ``rbd`` modules; raises :class:`StoreUnavailable` when missing."""
    try:
        import rados  # type: ignore[import-not-found,import-untyped,unused-ignore]
        import rbd  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        raise StoreUnavailable(_MISSING) from None
    return rados, rbd


def parse_image_path(path: str) -> tuple[str, str, str | None]:
    """``POOL/IMAGE[@SNAP]`` or ``IMAGE[@SNAP]`` -> (pool, image, snapshot or None)."""
    pool, sep, rest = path.strip().partition("/")
    if not sep:
        pool, rest = DEFAULT_POOL, pool
    image, at, snap = rest.partition("@")
    if not pool or not image or "/" in image or (at and not snap):
        raise StoreError(f"bad rbd image path: {path!r} (expected POOL/IMAGE or IMAGE)")
    return pool, image, snap if at else None


def _errno(exc: BaseException) -> int:
    err = getattr(exc, "errno", None)
    return abs(err) if isinstance(err, int) and err else errno.EIO


def _reason(exc: BaseException, enoent: str) -> str:
    err = _errno(exc)
    return enoent if err == errno.ENOENT else os.strerror(err)


class _Connection:
    """One connected ``rados.Rados``, shared; closed when its last user releases it."""

    _table: ClassVar[dict[tuple[str, str, str], _Connection]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, key: tuple[str, str, str], cluster: Any) -> None:
        self.key, self.cluster, self.users = key, cluster, 0

    @classmethod
    def acquire(cls, rados: ModuleType, conf: str, client: str, name: str) -> _Connection:
        """The process's connection for (conf, id, cluster), made on first use (blocks)."""
        key = (conf, client, name)
        with cls._lock:
            conn = cls._table.get(key)
            if conn is None:
                conn = cls(key, _connect(rados, conf, client, name))
                cls._table[key] = conn
            conn.users += 1
            return conn

    def release(self) -> None:
        """Drop one user; the last one shuts the connection down (blocks)."""
        with self._lock:
            self.users -= 1
            if self.users or self._table.get(self.key) is not self:
                return
            del self._table[self.key]
        self.cluster.shutdown()


def _connect(rados: ModuleType, conf: str, client: str, name: str) -> Any:
    try:
        cluster = rados.Rados(conffile=conf, rados_id=client or None, clustername=name or None)
        cluster.conf_set("rbd_cache", "false")  # coherent across gateways
        # An unreachable cluster fails commands (and TMFs can end) instead of hanging
        # them forever; 30 s is what ceph-iscsi gives tcmu-runner.
        cluster.conf_set("rados_osd_op_timeout", str(OP_TIMEOUT))
        cluster.conf_set("rados_mon_op_timeout", str(OP_TIMEOUT))
        cluster.conf_set("rbd_disable_zero_copy_writes", "true")  # buffers are reused
        cluster.connect(timeout=CONNECT_TIMEOUT)
    except rados.Error as exc:
        raise StoreError(f"rbd backing store: cannot connect to the Ceph cluster "
                         f"(conf={conf or 'default'}): {exc}") from None
    return cluster


_pinned = threading.local()  # .done: this thread's state is kept


def _pin_thread_state() -> None:
    """Keep this librbd thread's Python thread state for the thread's life.

    The binding's callbacks run on librbd threads Python did not start: each one makes
    a thread state on entry and frees it on exit, and CPython 3.11 maps and unmaps a
    frame stack with it, so every completion cost an mmap/munmap pair and a TLB
    shoot-down on every core. One extra ``PyGILState_Ensure``, never released, keeps it.
    """
    _pinned.done = True
    with contextlib.suppress(Exception):  # an optimisation: never fail a completion
        ctypes.pythonapi.PyGILState_Ensure()


def _as_buffer(data: bytes | bytearray | memoryview) -> bytes | bytearray:
    """What the binding's ``aio_write`` takes (bytes or bytearray), copying only if needed."""
    if isinstance(data, bytes | bytearray):
        return data
    obj = data.obj
    if isinstance(obj, bytes | bytearray) and data.nbytes == len(obj) and data.c_contiguous:
        return obj
    return data.tobytes()


def _first_difference(a: bytes, b: bytes | bytearray | memoryview) -> int | None:
    if a == b:
        return None
    return next((i for i, (x, y) in enumerate(zip(a, bytes(b), strict=False)) if x != y),
                min(len(a), len(b)))


class RbdStore:
    """An open RBD image: asynchronous I/O through librbd's completions."""

    name: ClassVar[str] = "rbd"
    capabilities = StoreCapability.FLUSH | StoreCapability.UNMAP | StoreCapability.THIN

    def __init__(self, path: str, conn: _Connection, ioctx: Any, image: Any, *,
                 pool: str, image_name: str, readonly: bool) -> None:
        self.path, self.pool, self.image_name = path, pool, image_name
        self.cluster, self.ioctx, self.image = conn.cluster, ioctx, image
        self.image_id: str = image.id()
        self.size: int = image.size()
        self.readonly = readonly
        self._conn = conn
        self._identity = f"rbd.{conn.cluster.get_fsid()[:8]}.{ioctx.get_pool_id()}." \
                         f"{self.image_id}"[:40]
        self._caw_object = f"{_CAW_LOCK}.{self.image_id}"
        self._cookie = uuid.uuid4().hex
        self._closed = False
        self._shared: RadosSharedState | None = None
        self._next_op = 0
        self._in_flight: set[int] = set()
        self._done: collections.deque[tuple[int, asyncio.Future[Any], int, bytes | None]] = \
            collections.deque()  # completions on their way to the loop thread
        self._drain_pending = False
        self._waiters: list[tuple[set[int], asyncio.Future[None]]] = []

    @classmethod
    def open(cls, path: str, *, bsopts: str = "", bsoflags: str = "",
             size: int | None = None) -> RbdStore:
        """Connect (shared), open the image; blocks, so the daemon calls it in a thread.

        Raises :class:`StoreError` (one line) for missing bindings, a bad option, an
        unreachable cluster, a missing pool or image."""
        rados, rbd = bindings()
        opts = parse_options(bsopts)
        unknown = set(opts) - _OPTIONS
        if unknown:
            raise StoreError(f"unknown rbd store option: {', '.join(sorted(unknown))} "
                             f"(supported: {', '.join(sorted(_OPTIONS))})")
        parse_oflags(bsoflags, frozenset())
        pool, image_name, snap = parse_image_path(path)
        conn = _Connection.acquire(rados, opts.get("conf", ""), opts.get("id", ""),
                                   opts.get("cluster", ""))
        try:
            ioctx = conn.cluster.open_ioctx(pool)
        except rados.Error as exc:
            conn.release()
            raise StoreError(f"rbd backing store: pool {pool}: {_reason(exc, 'no such pool')}") \
                from None
        try:
            image = rbd.Image(ioctx, image_name, snapshot=snap, read_only=snap is not None)
        except rbd.Error as exc:
            ioctx.close()
            conn.release()
            raise StoreError(f"rbd backing store: {pool}/{image_name}"
                             f"{'@' + snap if snap else ''}: {_reason(exc, 'no such image')}") \
                from None
        return cls(path, conn, ioctx, image, pool=pool, image_name=image_name,
                   readonly=snap is not None)

    # The asynchronous calls and their completions.
    def _submit(self, start: Callable[[Callable[..., None]], object]) -> asyncio.Future[Any]:
        """Start one ``aio_*`` call; the future gets its result on the loop thread."""
        if self._closed:
            raise StoreIOError(errno.EBADF, "store is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        op = self._next_op = self._next_op + 1
        done = self._done

        def oncomplete(completion: Any, data: bytes | None = None) -> None:  # librbd thread
            if not getattr(_pinned, "done", False):
                _pin_thread_state()
            done.append((op, fut, completion.get_return_value(), data))
            if not self._drain_pending:  # one loop wake-up for a burst of completions
                self._drain_pending = True
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                    loop.call_soon_threadsafe(self._drain)

        self._in_flight.add(op)
        try:
            start(oncomplete)
        except Exception as exc:  # refused at submission (rbd.InvalidArgument, ...)
            self._in_flight.discard(op)
            raise StoreIOError(_errno(exc), f"rbd: {exc}") from None
        return fut

    def _drain(self) -> None:
        """Finish every completion queued so far (loop thread). The flag is cleared first:
        a completion queued after that schedules another drain."""
        self._drain_pending = False
        done, ended = self._done, self._ended
        while done:
            ended(*done.popleft())

    def _ended(self, op: int, fut: asyncio.Future[Any], ret: int,
               data: bytes | None) -> None:
        self._in_flight.discard(op)
        if self._waiters:
            self._wake(op)
        if fut.cancelled():
            return
        if ret < 0:
            fut.set_exception(StoreIOError(-ret, f"rbd: {os.strerror(-ret)}"))
        else:
            fut.set_result(data if data is not None else ret)

    def _wake(self, op: int) -> None:
        keep = []
        for ops, waiter in self._waiters:
            ops.discard(op)
            if ops:
                keep.append((ops, waiter))
            elif not waiter.done():
                waiter.set_result(None)
        self._waiters = keep

    def _writable(self, offset: int, length: int) -> None:
        check_range(self.size, offset, length)
        if self.readonly:
            raise StoreIOError(errno.EROFS, f"{self.path} is a snapshot (read-only)")

    # BackingStore.
    async def read(self, offset: int, length: int) -> bytes | bytearray | memoryview:
        check_range(self.size, offset, length)
        if not length:
            return b""
        image = self.image
        data: bytes = await self._submit(lambda cb: image.aio_read(offset, length, cb))
        if len(data) < length:  # the image shrank under us: zeros past its end
            data += bytes(length - len(data))
        return data

    async def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        n = len(data) if not isinstance(data, memoryview) else data.nbytes
        self._writable(offset, n)
        if n:
            buf, image = _as_buffer(data), self.image
            await self._submit(lambda cb: image.aio_write(buf, offset, cb))

    async def write_fua(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write, then flush (librbd has no FUA write)."""
        await self.write(offset, data)
        await self.flush()

    async def flush(self) -> None:
        image = self.image
        await self._submit(lambda cb: image.aio_flush(cb))

    async def unmap(self, offset: int, length: int) -> None:
        self._writable(offset, length)
        if length:
            image = self.image
            await self._submit(lambda cb: image.aio_write_zeroes(offset, length, cb))

    async def quiesce(self) -> None:
        """Wait until every asynchronous call started before this one has completed."""
        if not self._in_flight:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((set(self._in_flight), waiter))
        await waiter

    async def close(self) -> None:
        if self._closed:
            return
        if self._shared is not None:  # leave the gateway list first (not fenced)
            shared, self._shared = self._shared, None
            await shared.stop()
        await self.quiesce()
        self._closed = True
        await asyncio.to_thread(self._close_sync)

    def _close_sync(self) -> None:
        try:
            self.image.close()
            self.ioctx.close()
        finally:
            self._conn.release()

    # Optional protocols (stores/base.py).
    async def share(self, lu: Any, tpgt: int) -> RadosSharedState:
        """The LU's reservations, kept in RADOS with the image for every gateway
        (stores/rbd_shared.py), joined as the gateway of portal group ``tpgt``."""
        shared = RadosSharedState(self.cluster, self.pool, self.image_id, lu, tpgt)
        await shared.start()
        self._shared = shared
        return shared

    def identity(self) -> str:
        """``rbd.<fsid prefix>.<pool id>.<image id>``: the same on every gateway."""
        return self._identity

    def backing_size(self) -> int:
        """``image.size()``, re-read (an ``rbd resize`` elsewhere is seen here); raises
        OSError when the cluster cannot tell."""
        try:
            return int(self.image.size())
        except Exception as exc:  # rbd.Error
            raise OSError(_errno(exc), f"rbd: {exc}") from None

    async def allocation(self, offset: int, length: int) -> tuple[bool, int]:
        """(allocated, bytes) of the extent at ``offset`` (``diff_iterate`` from creation)."""
        check_range(self.size, offset, length)
        if not length:
            return True, 0
        span = min(length, _ALLOCATION_SPAN)
        extents = await asyncio.to_thread(self._extents, offset, span)
        return _extent_at(extents, offset, span)

    def _extents(self, offset: int, length: int) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []

        def found(start: int, n: int, exists: bool) -> int:
            if exists:
                out.append((start, n))
            return 0

        try:
            self.image.diff_iterate(offset, length, None, found)
        except Exception as exc:  # rbd.Error
            raise StoreIOError(_errno(exc), f"rbd: {exc}") from None
        return sorted(out)

    async def compare_and_write(self, offset: int, compare: bytes | bytearray | memoryview,
                                data: bytes | bytearray | memoryview) -> int | None:
        """Read, compare, write under a RADOS exclusive lock on ``pytgt.caw.<image id>``,
        so a COMPARE AND WRITE through another gateway cannot interleave (SBC-3 5.2)."""
        self._writable(offset, len(data))
        await self._lock_caw()
        try:
            current = await self.read(offset, len(compare))
            diff = _first_difference(bytes(current), compare)
            if diff is None:
                await self.write(offset, data)
            return diff
        finally:
            await asyncio.to_thread(self._unlock_caw)

    async def _lock_caw(self) -> None:
        delay = 0.0005
        while True:
            try:
                await asyncio.to_thread(
                    self.ioctx.lock_exclusive, self._caw_object, _CAW_LOCK, self._cookie,
                    "pytgt COMPARE AND WRITE", CAW_LOCK_SECONDS, _LOCK_FLAG_MAY_RENEW)
                return
            except Exception as exc:  # rados.ObjectBusy: another gateway holds it
                if _errno(exc) != errno.EBUSY:
                    raise StoreIOError(_errno(exc), f"rbd: COMPARE AND WRITE lock: {exc}") \
                        from None
            await asyncio.sleep(delay)  # back off: the holder is another process
            delay = min(delay * 2, 0.05)

    def _unlock_caw(self) -> None:
        with contextlib.suppress(Exception):  # expired or broken: nothing left to release
            self.ioctx.unlock(self._caw_object, _CAW_LOCK, self._cookie)


def _extent_at(extents: list[tuple[int, int]], offset: int, span: int) -> tuple[bool, int]:
    """(allocated, bytes from ``offset``) given the sorted allocated extents of the span."""
    end = offset + span
    for start, n in extents:
        if start + n <= offset:
            continue
        if start > offset:
            return False, min(start, end) - offset
        reach = start + n
        for s2, n2 in extents:  # merge what touches or overlaps
            if s2 <= reach < s2 + n2:
                reach = s2 + n2
        return True, min(reach, end) - offset
    return False, span
