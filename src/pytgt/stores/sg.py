"""The sg store (``--bstype sg``, with ``--device-type pt``): a host SCSI device through
its Linux SCSI generic node ``/dev/sgN``, every command sent whole with the ``SG_IO``
ioctl (sg(4); ``struct sg_io_hdr``, interface ``'S'``, version 3).

``SG_IO`` blocks until the device answers, so each runs in this store's thread pool (at
most 16 at once: sg's per-descriptor queue, ``SG_MAX_QUEUE``); the event loop only
awaits. The header is packed and unpacked here (:func:`pack_header`,
:func:`unpack_header`); the buffers it points to are pinned with ``ctypes`` for the
call. What the answer means for the initiator (status, ``DID_*``, ``DRIVER_*``, errno)
is decided in :mod:`pytgt.scsi.passthrough`.

``bsopts``: ``timeout=SECONDS`` per command (default 30; 14000 for a tape or medium
changer, whose commands may rewind or move media for hours, as tgt's bs_sg).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import stat
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar

from pytgt.stores.base import (
    PassthroughResult,
    StoreCapability,
    StoreDeviceError,
    StoreError,
    StoreIOError,
    parse_oflags,
    parse_options,
)

log = logging.getLogger("pytgt.stores.sg")

SCSI_GENERIC_MAJOR = 21  # linux/major.h

# ioctl request numbers and constants of <scsi/sg.h>.
SG_IO = 0x2285
SG_SCSI_RESET = 0x2284
SG_GET_VERSION_NUM = 0x2282
SG_SET_RESERVED_SIZE = 0x2275
SG_DXFER_NONE, SG_DXFER_TO_DEV, SG_DXFER_FROM_DEV = -1, -2, -3
SG_FLAG_Q_AT_TAIL = 0x10  # sg queues at the head unless asked: keep the initiator's order
SG_SCSI_RESET_DEVICE = 1
SG_INFO_CHECK = 0x1  # status, host_status or driver_status is not zero
MAX_SENSE = 252  # SPC-4 4.5.1: the largest sense data
RESERVED_SIZE = 512 << 10  # sg's reserved buffer: one allocation for most commands
QUEUE_DEPTH = 16  # SG_MAX_QUEUE: commands sg accepts at once on one descriptor
DEFAULT_TIMEOUT = 30.0
LONG_TIMEOUT = 14000.0  # tape (01h) and medium changer (08h)

#: struct sg_io_hdr in the machine's own layout (LP64: 88 bytes). Fields in order:
#: interface_id, dxfer_direction, cmd_len, mx_sb_len, iovec_count, dxfer_len, dxferp,
#: cmdp, sbp, timeout, flags, pack_id, usr_ptr, status, masked_status, msg_status,
#: sb_len_wr, host_status, driver_status, resid, duration, info; "0P": the tail
#: padding C adds to a struct holding pointers.
SG_IO_HDR = struct.Struct("@iiBBHIPPPIIiPBBBBHHiII0P")

Ioctl = Callable[[int, int, bytearray], object]


@dataclass(frozen=True, slots=True)
class SgReply:
    """The output fields of a ``struct sg_io_hdr`` after ``SG_IO``."""

    status: int
    masked_status: int
    msg_status: int
    sb_len_wr: int
    host_status: int
    driver_status: int
    resid: int
    duration: int
    info: int


def pack_header(*, direction: int, cmd_len: int, dxfer_len: int, dxferp: int, cmdp: int,
                sbp: int, timeout_ms: int, flags: int, mx_sb_len: int = MAX_SENSE) -> bytes:
    """A ``struct sg_io_hdr`` asking for one command (interface_id ``'S'``, pack_id -1)."""
    return SG_IO_HDR.pack(ord("S"), direction, cmd_len, mx_sb_len, 0, dxfer_len, dxferp,
                          cmdp, sbp, timeout_ms, flags, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def unpack_header(raw: bytes | bytearray) -> SgReply:
    """The output fields of a header the kernel filled in; raises ValueError unless it
    is one whole ``struct sg_io_hdr`` with interface_id ``'S'``."""
    if len(raw) != SG_IO_HDR.size:
        raise ValueError(f"sg_io_hdr is {SG_IO_HDR.size} bytes, not {len(raw)}")
    f = SG_IO_HDR.unpack(raw)
    if f[0] != ord("S"):
        raise ValueError(f"sg_io_hdr interface_id {f[0]:#x}, not 'S'")
    return SgReply(*f[13:])


def _pinned(data: bytes | bytearray | memoryview) -> ctypes.Array[ctypes.c_char]:
    """A C view of ``data`` that stays put during the call (copied if read-only)."""
    n = len(data)
    kind = ctypes.c_char * max(n, 1)
    if isinstance(data, bytearray) or (isinstance(data, memoryview) and not data.readonly
                                       and data.contiguous and data.itemsize == 1):
        return kind.from_buffer(data) if n else kind()
    return kind.from_buffer_copy(bytes(data)) if n else kind()


def sg_io(fd: int, cdb: bytes, data_out: bytes | bytearray | memoryview,
          data_in_length: int, timeout_ms: int, flags: int,
          ioctl: Ioctl) -> PassthroughResult:
    """One ``SG_IO`` (blocking: call it from a pool thread). Raises OSError from the
    ioctl; the header's answer comes back whatever the device said."""
    if data_out:
        direction, buf, length = SG_DXFER_TO_DEV, _pinned(data_out), len(data_out)
        data_in = None
    elif data_in_length:
        data_in = bytearray(data_in_length)
        direction, buf, length = SG_DXFER_FROM_DEV, _pinned(data_in), data_in_length
    else:
        direction, buf, length, data_in = SG_DXFER_NONE, _pinned(b""), 0, None
    cmd = _pinned(cdb)
    sense = (ctypes.c_char * MAX_SENSE)()
    hdr = bytearray(pack_header(
        direction=direction, cmd_len=len(cdb), dxfer_len=length,
        dxferp=ctypes.addressof(buf) if length else 0, cmdp=ctypes.addressof(cmd),
        sbp=ctypes.addressof(sense), timeout_ms=timeout_ms, flags=flags))
    ioctl(fd, SG_IO, hdr)
    del buf  # the data_in bytearray may be resized again
    reply = unpack_header(hdr)
    resid = max(reply.resid, 0) if reply.resid <= length else 0  # more: an overflow
    data: bytes | bytearray | memoryview = b""
    if data_in is not None:
        moved = length - resid
        data = data_in if moved == length else memoryview(data_in)[:moved]
    return PassthroughResult(
        status=reply.status, host_status=reply.host_status,
        driver_status=reply.driver_status,
        sense=bytes(sense.raw[:min(reply.sb_len_wr, MAX_SENSE)]), data=data, resid=resid,
        overflow=reply.resid if reply.resid > length else 0)


def _ioctl(fd: int, request: int, buf: bytearray) -> object:
    """``fcntl.ioctl`` writing back into ``buf`` (it releases the GIL while it waits)."""
    return fcntl.ioctl(fd, request, buf, True)


def check_sg_device(path: str) -> os.stat_result:
    """``path``'s stat if it is a SCSI generic node; raises StoreDeviceError (one line)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise StoreDeviceError(f"{path}: {exc.strerror}") from None
    if not stat.S_ISCHR(st.st_mode) or os.major(st.st_rdev) != SCSI_GENERIC_MAJOR:
        kind = (f"character device of major {os.major(st.st_rdev)}"
                if stat.S_ISCHR(st.st_mode) else _kind(st.st_mode))
        raise StoreDeviceError(
            f"{path}: not a SCSI generic device (a {kind}; bstype sg needs /dev/sgN, "
            f"a character device of major {SCSI_GENERIC_MAJOR})")
    return st


def _kind(mode: int) -> str:
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISDIR(mode):
        return "directory"
    return "regular file" if stat.S_ISREG(mode) else "special file"


class SgStore:
    """A SCSI device behind ``/dev/sgN``: no byte interface, commands only
    (:class:`pytgt.stores.base.SupportsPassthrough`)."""

    name: ClassVar[str] = "sg"

    def __init__(self, path: str, fd: int, *, timeout: float | None = None,
                 ioctl: Ioctl = _ioctl, peripheral_type: int = 0x1F) -> None:
        self.path = path
        self.size = 0  # tgt's too: the device's capacity is its own business
        self.capabilities = StoreCapability.NONE
        self.peripheral_type = peripheral_type
        long_wait = peripheral_type in (0x01, 0x08)
        self.timeout = timeout or (LONG_TIMEOUT if long_wait else DEFAULT_TIMEOUT)
        self._fd = fd
        self._ioctl = ioctl
        self._pool = ThreadPoolExecutor(max_workers=QUEUE_DEPTH,
                                        thread_name_prefix="pytgt-sg")
        self._running: set[concurrent.futures.Future[object]] = set()
        self._closed = False

    @staticmethod
    def command(fd: int, cdb: bytes, data_out: bytes | bytearray | memoryview,
                data_in_length: int, timeout_ms: int, flags: int,
                ioctl: Ioctl) -> PassthroughResult:
        """One command on the open node (blocking): :func:`sg_io` here."""
        return sg_io(fd, cdb, data_out, data_in_length, timeout_ms, flags, ioctl)

    @staticmethod
    def check_device(path: str) -> os.stat_result:
        """``path``'s stat if the store drives that node; raises StoreDeviceError."""
        return check_sg_device(path)

    @classmethod
    def open(cls, path: str, *, bsopts: str = "", bsoflags: str = "",
             size: int | None = None) -> SgStore:
        """Open ``path`` (``/dev/sgN``); raises :class:`StoreDeviceError` when it is not
        a SCSI generic device, :class:`StoreError` for options or an open failure."""
        opts = parse_options(bsopts)
        timeout = _timeout(opts.pop("timeout", ""))
        if opts:
            raise StoreError(f"unknown {cls.name} store option: {', '.join(sorted(opts))}")
        parse_oflags(bsoflags, frozenset())
        if not path:
            raise StoreDeviceError("'backing-store' option is necessary")  # tgtadm's words
        st = cls.check_device(path)
        try:  # O_NONBLOCK: do not wait for another opener's O_EXCL (SG_IO still blocks)
            fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as exc:
            raise StoreDeviceError(f"{path}: {exc.strerror}") from None
        try:
            if os.fstat(fd).st_rdev != st.st_rdev:
                raise StoreDeviceError(f"{path}: replaced while being opened")
            ptype = init_device(path, fd, _ioctl, cls.command)
        except BaseException:
            os.close(fd)
            raise
        store = cls(path, fd, timeout=timeout, peripheral_type=ptype)
        log.info("%s: peripheral device type %02Xh, command timeout %g s", path, ptype,
                 store.timeout)
        return store

    def _submit(self, fn: Callable[[], PassthroughResult | object]
                ) -> asyncio.Future[PassthroughResult | object]:
        if self._closed:
            raise StoreIOError(errno.EBADF, "store is closed")
        fut = self._pool.submit(fn)
        self._running.add(fut)
        fut.add_done_callback(self._running.discard)
        return asyncio.wrap_future(fut)

    async def passthrough(self, cdb: bytes, data_out: bytes | bytearray | memoryview,
                          data_in_length: int, *, head_of_queue: bool = False
                          ) -> PassthroughResult:
        """Send one command (see :class:`~pytgt.stores.base.SupportsPassthrough`)."""
        flags = 0 if head_of_queue else SG_FLAG_Q_AT_TAIL
        timeout_ms = min(int(self.timeout * 1000), 0xFFFFFFFE)

        def call() -> PassthroughResult:
            return self.command(self._fd, cdb, data_out, data_in_length, timeout_ms,
                                flags, self._ioctl)
        try:
            result = await self._submit(call)
        except OSError as exc:
            raise StoreIOError(exc.errno or errno.EIO, f"{self.path}: SG_IO: {exc}") from None
        assert isinstance(result, PassthroughResult)
        return result

    async def reset_device(self) -> None:
        """``SG_SCSI_RESET`` of the device (a LU reset through the host's error handler)."""
        arg = bytearray(struct.pack("@i", SG_SCSI_RESET_DEVICE))
        try:
            await self._submit(lambda: self._ioctl(self._fd, SG_SCSI_RESET, arg))
        except OSError as exc:
            log.warning("%s: SG_SCSI_RESET failed: %s", self.path, exc.strerror)

    async def quiesce(self) -> None:
        """Wait for every SG_IO started before the call (they cannot be stopped)."""
        running = [asyncio.wrap_future(f) for f in list(self._running)]
        if running:
            await asyncio.wait(running)

    async def read(self, offset: int, length: int) -> bytes:
        raise StoreIOError(errno.EOPNOTSUPP, "the sg store takes whole SCSI commands")

    async def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        raise StoreIOError(errno.EOPNOTSUPP, "the sg store takes whole SCSI commands")

    async def flush(self) -> None:
        """Nothing is cached here (SYNCHRONIZE CACHE goes to the device)."""

    async def unmap(self, offset: int, length: int) -> None:
        raise StoreIOError(errno.EOPNOTSUPP, "the sg store takes whole SCSI commands")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.quiesce()
        self._pool.shutdown(wait=False)
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def pool_stats(self) -> tuple[int, int]:
        return 0, len(self._running)


def _timeout(text: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 0xFFFFFFFE / 1000:
        raise StoreError(f"bad value for timeout: {text!r} (seconds, more than 0)")
    return value


def init_device(path: str, fd: int, ioctl: Ioctl,
                command: Callable[..., PassthroughResult] = sg_io) -> int:
    """Check the sg driver's version (3.x interface; bsg answers sg's), size its
    reserved buffer, and return the device's peripheral device type (standard INQUIRY
    byte 0), asked with ``command``."""
    version = bytearray(4)
    try:
        ioctl(fd, SG_GET_VERSION_NUM, version)
    except OSError as exc:
        raise StoreDeviceError(f"{path}: not a SCSI generic device ({exc.strerror})") from None
    if struct.unpack("@i", version)[0] < 30000:
        raise StoreDeviceError(f"{path}: sg driver older than version 3")
    with contextlib.suppress(OSError):
        ioctl(fd, SG_SET_RESERVED_SIZE, bytearray(struct.pack("@i", RESERVED_SIZE)))
    try:
        res = command(fd, bytes((0x12, 0, 0, 0, 36, 0)), b"", 36, 30000, SG_FLAG_Q_AT_TAIL,
                      ioctl)
    except OSError as exc:
        raise StoreDeviceError(f"{path}: INQUIRY failed: {exc.strerror}") from None
    if res.status or res.host_status or len(res.data) < 1:
        log.warning("%s: INQUIRY answered status %#x host %#x", path, res.status,
                    res.host_status)
        return 0x1F
    return res.data[0] & 0x1F
