"""The rdwr store (``--bstype rdwr``, tgt's default): a regular file or a block device.

Every ``pwrite``/``fdatasync``/``fallocate`` runs in this store's thread pool
(``loop.run_in_executor``), so the event loop never waits for the disk. A read first
tries ``preadv(..., RWF_NOWAIT)`` on the loop thread: the kernel then copies from the
page cache or fails with ``EAGAIN`` instead of waiting for the disk, so cached reads skip
the thread hop (about 1 us instead of 100) and only cache misses go to the pool.

``bsoflags``: ``sync`` opens with ``O_SYNC``; ``direct`` opens with ``O_DIRECT``. Direct
I/O needs buffers, offsets and lengths aligned to the device's logical block size: reads
land in page-aligned ``mmap`` buffers and writes are staged through one; an I/O whose
offset or length is not a multiple of 4096 goes through a second, buffered descriptor.
A file that cannot be opened read-write (``EACCES``/``EROFS``) is opened read-only and the
store reports ``readonly = True``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import ctypes.util
import errno
import mmap
import os
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

from pytgt.bufpool import BufferPool
from pytgt.stores.base import (
    StoreCapability,
    StoreError,
    StoreIOError,
    check_range,
    parse_oflags,
    parse_options,
)

T = TypeVar("T")

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
DIRECT_ALIGN = 4096
_ZERO_CHUNK = 1 << 20
_OFLAGS = frozenset({"sync", "direct"})


def _libc_fallocate() -> Callable[[int, int, int, int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6", use_errno=True)
        fn = libc.fallocate
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fn.restype = ctypes.c_int
    return fn


_fallocate = _libc_fallocate()
_RWF_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)


class RdwrStore:
    """A file or block device accessed with positioned reads and writes."""

    name: ClassVar[str] = "rdwr"

    def __init__(self, path: str, fd: int, size: int, *, readonly: bool = False,
                 direct_fd: int | None = None, block_device: bool = False,
                 workers: int = 16, inline_writes: bool = True) -> None:
        self.path = path
        self.size = size
        self.readonly = readonly
        self.block_device = block_device
        caps = StoreCapability.FLUSH | StoreCapability.UNMAP
        self.capabilities = caps if block_device else caps | StoreCapability.THIN
        self._fd = fd  # buffered (or O_SYNC) descriptor
        self._direct_fd = direct_fd  # O_DIRECT descriptor, when asked for
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pytgt-rdwr")
        self._submitter = _Submitter(self._pool, workers)
        self._closed = False
        self._nowait = _RWF_NOWAIT is not None and direct_fd is None
        self._inline_writes = inline_writes and not block_device and direct_fd is None
        self._inline_after = 0.0  # no inline writes before this time (perf_counter)
        self._buffers = BufferPool()  # big reads' buffers, reused
        self._slow_since, self._slow_count = 0.0, 0

    @classmethod
    def open(cls, path: str, *, bsopts: str = "", bsoflags: str = "",
             size: int | None = None) -> RdwrStore:
        """Open ``path``; raises :class:`StoreError` ("No such file or directory", ...)."""
        opts = parse_options(bsopts)
        inline = opts.pop("inline_writes", "1").lower()
        if inline not in ("0", "1", "no", "yes", "off", "on"):
            raise StoreError(f"bad value for inline_writes: {inline!r} (0 or 1)")
        if opts:
            raise StoreError(f"unknown rdwr store option: {', '.join(sorted(opts))}")
        oflags = parse_oflags(bsoflags, _OFLAGS)
        if not path:
            raise StoreError("rdwr store needs a backing store path")
        # O_NOFOLLOW: the daemon resolved the path (pytgt.stores.paths); a link swapped in
        # since is refused by the kernel, never followed.
        base = os.O_CLOEXEC | os.O_NOFOLLOW | (os.O_SYNC if "sync" in oflags else 0)
        fd, readonly = _open(path, base)
        try:
            st = os.fstat(fd)
            if stat.S_ISBLK(st.st_mode):
                real_size, blk = os.lseek(fd, 0, os.SEEK_END), True
            elif stat.S_ISREG(st.st_mode):
                real_size, blk = st.st_size, False
            else:
                raise StoreError(f"{path}: not a regular file or block device")
            direct_fd = None
            if "direct" in oflags:
                direct_fd, _ = _open(path, base | os.O_DIRECT, readonly)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, real_size, readonly=readonly, direct_fd=direct_fd,
                   block_device=blk,
                   inline_writes="sync" not in oflags and inline in ("1", "yes", "on"))

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self._closed:
            raise StoreIOError(errno.EBADF, "store is closed")
        return await self._submitter.submit(asyncio.get_running_loop(), fn, args)

    async def read(self, offset: int, length: int) -> bytes | bytearray | memoryview:
        check_range(self.size, offset, length)
        if length == 0:
            return b""
        if self._nowait and not self._closed:
            buf = self._read_cached(offset, length)
            if buf is not None:
                return buf
        return await self._run(self._read_sync, offset, length)

    def read_nowait(self, offset: int, length: int) -> bytearray | None:
        """The data if the page cache holds all of it, read on the calling thread without
        waiting for the disk (``RWF_NOWAIT``); None when :meth:`read` must be awaited."""
        if not self._nowait or self._closed or length <= 0:
            return None
        if offset < 0 or offset + length > self.size:
            check_range(self.size, offset, length)  # raises
        # _read_cached, inline: the 4 KiB read's hot path
        buf = self._buffers.get(length)
        try:
            got = os.preadv(self._fd, [buf], offset, _RWF_NOWAIT)  # type: ignore[arg-type]
        except BlockingIOError:
            return None
        except OSError:
            return self._read_cached(offset, length)  # the error handling lives there
        return buf if got == length else None

    def _read_cached(self, offset: int, length: int) -> bytearray | None:
        """The data if the page cache holds all of it, without blocking; else None."""
        buf = self._buffers.get(length)
        try:
            got = os.preadv(self._fd, [buf], offset, _RWF_NOWAIT)  # type: ignore[arg-type]
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                self._nowait = False  # this kernel or file system cannot: use the pool
                return None
            raise StoreIOError(exc.errno or errno.EIO, str(exc)) from None
        return buf if got == length else None

    def write_nowait(self, offset: int, data: bytes | bytearray | memoryview) -> bool:
        """Write on the calling thread when that costs less than a pool round trip: at
        most ``_INLINE_MAX`` bytes into a regular file's page cache. False: await
        :meth:`write` instead (block devices, ``sync``/``direct``, big writes, or for a
        while after an inline write was slow: the kernel is throttling writers)."""
        if not self._inline_writes or self._closed or self.readonly:
            return False
        n = len(data)
        now = _clock()
        if n > _INLINE_MAX or now < self._inline_after:
            return False
        if offset < 0 or offset + n > self.size:
            check_range(self.size, offset, n)  # raises
        try:
            self._write_sync(offset, memoryview(data))
        finally:
            took = _clock() - now
            if took > _INLINE_SLOW:
                self._slow_write(now, took)
        return True

    def _slow_write(self, now: float, took: float) -> None:
        """An inline write was slow: one very slow one, or several slow ones within a
        second (not just the scheduler preempting us), send writes to the pool a while."""
        if now - self._slow_since > 1.0:
            self._slow_since, self._slow_count = now, 0
        self._slow_count += 1
        if took > _INLINE_BLOCKED or self._slow_count >= _INLINE_SLOW_COUNT:
            self._inline_after = _clock() + _INLINE_BACKOFF

    async def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        check_range(self.size, offset, view.nbytes)
        if self.readonly:
            raise StoreIOError(errno.EROFS, f"{self.path} is read-only")
        if view.nbytes:
            await self._run(self._write_sync, offset, view)

    async def resize(self, size: int) -> None:
        """Grow or shrink a regular file (SupportsResize): ftruncate in the pool."""
        if self.block_device or self.readonly:
            raise StoreIOError(errno.EROFS if self.readonly else errno.EINVAL,
                               f"{self.path}: cannot be resized")
        await self._run(self._resize_sync, size)
        self.size = size

    async def flush(self) -> None:
        await self._run(self._flush_sync)

    async def write_fua(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write then fdatasync, in one pool job."""
        view = memoryview(data).cast("B")
        check_range(self.size, offset, view.nbytes)
        if self.readonly:
            raise StoreIOError(errno.EROFS, f"{self.path} is read-only")
        await self._run(self._write_fua_sync, offset, view)

    async def unmap(self, offset: int, length: int) -> None:
        check_range(self.size, offset, length)
        if self.readonly:
            raise StoreIOError(errno.EROFS, f"{self.path} is read-only")
        if length:
            await self._run(self._unmap_sync, offset, length)

    async def allocation(self, offset: int, length: int) -> tuple[bool, int]:
        """(allocated, bytes) for the extent starting at ``offset`` (SEEK_DATA/SEEK_HOLE)."""
        check_range(self.size, offset, length)
        if self.block_device or not length:
            return True, length
        return await self._run(self._allocation_sync, offset, length)

    async def quiesce(self) -> None:
        """Wait until every pool job submitted so far has ended (cancelled callers too)."""
        await self._submitter.quiesce()

    def pool_stats(self) -> tuple[int, int]:
        """(jobs waiting for a pool thread, jobs not yet ended): metrics."""
        return self._submitter.depth()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=True)
        for fd in (self._fd, self._direct_fd):
            if fd is not None:
                os.close(fd)

    # Blocking halves, run in the pool.
    def _direct(self, offset: int, length: int) -> int | None:
        fd = self._direct_fd
        if fd is not None and not (offset | length) % DIRECT_ALIGN:
            return fd
        return None

    def _read_sync(self, offset: int, length: int) -> bytes | memoryview:
        try:
            fd = self._direct(offset, length)
            if fd is not None:
                buf = mmap.mmap(-1, length)
                got = os.preadv(fd, [buf], offset)
                view = memoryview(buf)
                if got < length:
                    view[got:] = bytes(length - got)
                return view
            data = os.pread(self._fd, length, offset)
            while len(data) < length:  # short read: keep going, zeros past EOF
                more = os.pread(self._fd, length - len(data), offset + len(data))
                if not more:
                    return data + bytes(length - len(data))
                data += more
            return data
        except OSError as exc:
            raise StoreIOError(exc.errno or errno.EIO, str(exc)) from None

    def _write_sync(self, offset: int, view: memoryview) -> None:
        try:
            fd = self._direct(offset, view.nbytes)
            if fd is not None:
                buf = mmap.mmap(-1, view.nbytes)
                buf[:] = view
                view, fd_ = memoryview(buf), fd
            else:
                fd_ = self._fd
            while view.nbytes:
                n = os.pwritev(fd_, [view], offset)
                if n <= 0:
                    raise StoreIOError(errno.EIO, "short write")
                view, offset = view[n:], offset + n
        except OSError as exc:
            raise StoreIOError(exc.errno or errno.EIO, str(exc)) from None

    def _allocation_sync(self, offset: int, length: int) -> tuple[bool, int]:
        end = offset + length
        try:
            data = os.lseek(self._fd, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # nothing but a hole up to the end of the file
                return False, length
            return True, length  # no SEEK_DATA support: report everything allocated
        if data > offset:
            return False, min(data, end) - offset
        hole = os.lseek(self._fd, offset, os.SEEK_HOLE)
        return True, min(hole, end) - offset

    def _write_fua_sync(self, offset: int, view: memoryview) -> None:
        if view.nbytes:
            self._write_sync(offset, view)
        self._flush_sync()

    def _resize_sync(self, size: int) -> None:
        try:
            os.ftruncate(self._fd, size)
        except OSError as exc:
            raise StoreIOError(exc.errno or errno.EIO, str(exc)) from None

    def _flush_sync(self) -> None:
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            raise StoreIOError(exc.errno or errno.EIO, str(exc)) from None

    def _unmap_sync(self, offset: int, length: int) -> None:
        if _fallocate is not None:
            mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
            if _fallocate(self._fd, mode, offset, length) == 0:
                return
            err = ctypes.get_errno()
            if err not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.ENODEV):
                raise StoreIOError(err, os.strerror(err))
        zeros = memoryview(bytes(min(length, _ZERO_CHUNK)))
        while length:
            n = min(length, zeros.nbytes)
            self._write_sync(offset, zeros[:n])
            offset, length = offset + n, length - n


_Job = tuple[Callable[..., Any], tuple[object, ...], "asyncio.Future[Any]", "_Epoch"]
_Done = list[tuple["asyncio.Future[Any]", Any, BaseException | None, "_Epoch"]]
_BATCH = 8
_WAIT = 0.0002  # queueing delay (s) one drainer may add before another one starts
_clock = time.perf_counter
_INLINE_MAX = 128 * 1024  # bytes a write may have to be done on the loop thread
_INLINE_SLOW = 0.002  # inline writes slower than this (s), _INLINE_SLOW_COUNT in a second,
_INLINE_SLOW_COUNT = 8
_INLINE_BLOCKED = 0.02  # or one slower than this: the kernel throttles writers; then
_INLINE_BACKOFF = 1.0  # writes go to the pool for this long (s)


class _Epoch:
    """The pool jobs submitted between two :meth:`_Submitter.quiesce` calls."""

    __slots__ = ("jobs", "drained")

    def __init__(self) -> None:
        self.jobs = 0  # submitted and not yet ended (counted on the loop thread)
        self.drained: asyncio.Future[None] | None = None  # set when ``jobs`` drops to 0

    def job_ended(self) -> None:
        self.jobs -= 1
        if not self.jobs and self.drained is not None and not self.drained.done():
            self.drained.set_result(None)


class _Submitter:
    """Runs blocking jobs in the pool, several per thread wake-up when work queues up.

    Each pool thread ("drainer") takes jobs from one queue until it is empty and reports
    results to the loop in batches: one ``call_soon_threadsafe`` per batch instead of
    one thread wake-up and one loop wake-up per job (the cost of ``run_in_executor``).

    How many drainers run follows how long jobs take: page-cache writes (a few us each)
    are best done one after another by one thread, disk I/O (ms each) by many at once.
    A new drainer starts when the queue holds more work than the running ones finish
    within ``_WAIT`` (by the moving average of job times), up to ``max_drainers``.

    Jobs are counted per epoch until they end in their thread, whether or not anyone
    still awaits them: :meth:`quiesce` closes the current epoch and waits for it and for
    older ones, never for jobs submitted after it (bounded under a steady load). A job
    whose future was cancelled before a thread took it is skipped.
    """

    def __init__(self, pool: ThreadPoolExecutor, max_drainers: int) -> None:
        self._pool = pool
        self._queue: collections.deque[_Job] = collections.deque()
        self._lock = threading.Lock()
        self._drainers = 0
        self._max = max_drainers
        self._cost = _WAIT  # moving average of a job's duration (s); starts pessimistic
        self._epoch = _Epoch()
        self._closed_epochs: list[_Epoch] = []  # older epochs with jobs left

    def submit(self, loop: asyncio.AbstractEventLoop, fn: Callable[..., T],
               args: tuple[object, ...]) -> asyncio.Future[T]:
        fut: asyncio.Future[T] = loop.create_future()
        queue = self._queue
        epoch = self._epoch
        epoch.jobs += 1
        queue.append((fn, args, fut, epoch))
        want = 1 + int(len(queue) * self._cost / _WAIT)
        with self._lock:  # after the append: a drainer about to stop re-checks under it
            start = self._drainers < want and self._drainers < self._max
            if start:
                self._drainers += 1
        if start:
            self._pool.submit(self._drain)
        return fut

    def depth(self) -> tuple[int, int]:
        """(jobs waiting for a thread, jobs submitted and not yet ended)."""
        pending = self._epoch.jobs + sum(e.jobs for e in self._closed_epochs)
        return len(self._queue), pending

    async def quiesce(self) -> None:
        """Return once every job submitted before this call has ended in its thread."""
        current = self._epoch
        if current.jobs:
            self._epoch = _Epoch()
            self._closed_epochs.append(current)
        self._closed_epochs = [e for e in self._closed_epochs if e.jobs]
        if not self._closed_epochs:
            return
        loop = asyncio.get_running_loop()
        waits = []
        for e in self._closed_epochs:
            if e.drained is None:
                e.drained = loop.create_future()
            waits.append(e.drained)
        await asyncio.wait(waits)

    def _drain(self) -> None:
        done: _Done = []
        queue = self._queue
        while True:
            try:
                fn, args, fut, epoch = queue.popleft()
            except IndexError:
                with self._lock:
                    if not queue:
                        self._drainers -= 1
                        break
                continue
            if fut.cancelled():  # its caller is gone (an aborted command): do not start it
                done.append((fut, None, None, epoch))
                continue
            t0 = _clock()
            try:
                done.append((fut, fn(*args), None, epoch))
            except BaseException as exc:  # handed to the awaiting coroutine
                done.append((fut, None, exc, epoch))
            self._cost += (_clock() - t0 - self._cost) * 0.125  # racy on purpose: a hint
            if len(done) >= _BATCH or not queue:
                _post(done)
                done = []
        if done:
            _post(done)


def _post(done: _Done) -> None:
    """Hand results to the loops their futures belong to (one call per loop)."""
    by_loop: dict[asyncio.AbstractEventLoop, _Done] = {}
    for item in done:
        by_loop.setdefault(item[0].get_loop(), []).append(item)
    for loop, items in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
            loop.call_soon_threadsafe(_complete, items)


def _complete(done: _Done) -> None:
    for fut, result, exc, epoch in done:
        epoch.job_ended()
        if fut.cancelled():
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)


def _open(path: str, flags: int, readonly: bool = False) -> tuple[int, bool]:
    """os.open read-write, falling back to read-only on EACCES/EROFS."""
    try:
        if not readonly:
            try:
                return os.open(path, flags | os.O_RDWR), False
            except PermissionError:
                pass
            except OSError as exc:
                if exc.errno != errno.EROFS:
                    raise
        return os.open(path, flags | os.O_RDONLY), True
    except FileNotFoundError:
        raise StoreError(f"{path}: No such file or directory") from None
    except OSError as exc:
        raise StoreError(f"{path}: {exc.strerror or exc}") from None
