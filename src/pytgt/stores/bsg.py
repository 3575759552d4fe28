"""The bsg store (``--bstype bsg``, tgt's ``-E bsg``, with ``--device-type pt``): a host
SCSI device through its block SCSI generic node ``/dev/bsg/H:C:T:L``, each command sent
whole with the ``SG_IO`` ioctl and a ``struct sg_io_v4`` (<linux/bsg.h>, guard ``'Q'``,
protocol 0 SCSI, subprotocol 0 SCSI command).

Everything but the header is the sg store's (:class:`pytgt.stores.sg.SgStore`): the
thread pool, the timeouts (14000 s for a tape or a medium changer), the answers of
:mod:`pytgt.scsi.passthrough`. bsg has no ``SG_SCSI_RESET``: a device reset goes through
the device's sg node when the host has one (``/sys/class/bsg/H:C:T:L/device/
scsi_generic``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import stat
import struct
from dataclasses import dataclass
from typing import ClassVar

from pytgt.stores.base import PassthroughResult, StoreDeviceError
from pytgt.stores.sg import (
    MAX_SENSE,
    SG_SCSI_RESET,
    SG_SCSI_RESET_DEVICE,
    Ioctl,
    SgStore,
    _pinned,
    log,
)

SG_IO = 0x2285  # the same request number as sg's, told apart by the guard
BSG_PROTOCOL_SCSI = 0
BSG_SUB_PROTOCOL_SCSI_CMD = 0
BSG_FLAG_Q_AT_TAIL = 0x10  # as sg's: queue at the tail, keep the initiator's order

#: struct sg_io_v4 (160 bytes, fixed-width fields, no padding on any ABI): guard,
#: protocol, subprotocol, request_len, request, request_tag, request_attr,
#: request_priority, request_extra, max_response_len, response, dout_iovec_count,
#: dout_xfer_len, din_iovec_count, din_xfer_len, dout_xferp, din_xferp, timeout, flags,
#: usr_ptr, spare_in, driver_status, transport_status, device_status, retry_delay, info,
#: duration, response_len, din_resid, dout_resid, generated_tag, spare_out, padding.
SG_IO_V4 = struct.Struct("=iIIIQQIIIIQIIIIQQIIQIIIIIIIIiiQII")


@dataclass(frozen=True, slots=True)
class BsgReply:
    """The output fields of a ``struct sg_io_v4`` after ``SG_IO``."""

    driver_status: int
    transport_status: int
    device_status: int
    retry_delay: int
    info: int
    duration: int
    response_len: int
    din_resid: int
    dout_resid: int


def pack_v4(*, cdb: int, cdb_len: int, sense: int, dout: int, dout_len: int, din: int,
            din_len: int, timeout_ms: int, flags: int, mx_sb_len: int = MAX_SENSE) -> bytes:
    """A ``struct sg_io_v4`` asking for one SCSI command (pointers as integers)."""
    return SG_IO_V4.pack(ord("Q"), BSG_PROTOCOL_SCSI, BSG_SUB_PROTOCOL_SCSI_CMD, cdb_len,
                         cdb, 0, 0, 0, 0, mx_sb_len, sense, 0, dout_len, 0, din_len, dout,
                         din, timeout_ms, flags, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def unpack_v4(raw: bytes | bytearray) -> BsgReply:
    """The output fields of a header the kernel filled in; raises ValueError unless it
    is one whole ``struct sg_io_v4`` with guard ``'Q'``."""
    if len(raw) != SG_IO_V4.size:
        raise ValueError(f"sg_io_v4 is {SG_IO_V4.size} bytes, not {len(raw)}")
    f = SG_IO_V4.unpack(raw)
    if f[0] != ord("Q"):
        raise ValueError(f"sg_io_v4 guard {f[0]:#x}, not 'Q'")
    return BsgReply(*f[21:30])


def bsg_io(fd: int, cdb: bytes, data_out: bytes | bytearray | memoryview,
           data_in_length: int, timeout_ms: int, flags: int,
           ioctl: Ioctl) -> PassthroughResult:
    """One ``SG_IO`` with a v4 header (blocking: call it from a pool thread). Raises
    OSError from the ioctl; the answer comes back whatever the device said."""
    out = _pinned(data_out) if data_out else None
    data_in = bytearray(data_in_length) if data_in_length and not data_out else None
    din = _pinned(data_in) if data_in is not None else None
    cmd = _pinned(cdb)
    sense = (ctypes.c_char * MAX_SENSE)()
    hdr = bytearray(pack_v4(
        cdb=ctypes.addressof(cmd), cdb_len=len(cdb), sense=ctypes.addressof(sense),
        dout=ctypes.addressof(out) if out is not None else 0,
        dout_len=len(data_out) if out is not None else 0,
        din=ctypes.addressof(din) if din is not None else 0,
        din_len=data_in_length if din is not None else 0, timeout_ms=timeout_ms,
        flags=flags))
    ioctl(fd, SG_IO, hdr)
    del din  # the data_in bytearray may be resized again
    reply = unpack_v4(hdr)
    data: bytes | bytearray | memoryview = b""
    if data_in is not None:
        raw, length = reply.din_resid, data_in_length
        resid = max(raw, 0) if raw <= length else 0  # more: an overflow
        moved = length - resid
        data = data_in if moved == length else memoryview(data_in)[:moved]
    else:  # a no-data command's residual is in din_resid (the kernel's REQ_OP_DRV_IN)
        raw, length = max(reply.dout_resid, reply.din_resid), len(data_out)
        resid = max(raw, 0) if raw <= length else 0
    # driver_status is sg's (DRIVER_SENSE set with sense); transport_status the DID_*
    return PassthroughResult(
        status=reply.device_status, host_status=reply.transport_status,
        driver_status=reply.driver_status,
        sense=bytes(sense.raw[:min(reply.response_len, MAX_SENSE)]), data=data, resid=resid,
        overflow=raw if raw > length else 0)


def check_bsg_device(path: str) -> os.stat_result:
    """``path``'s stat if it is a bsg node (a character device of the ``bsg`` class in
    sysfs); raises StoreDeviceError (one line)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise StoreDeviceError(f"{path}: {exc.strerror}") from None
    rdev = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    klass = ""
    if stat.S_ISCHR(st.st_mode):
        with contextlib.suppress(OSError):
            klass = os.path.basename(os.path.realpath(f"/sys/dev/char/{rdev}/subsystem"))
    if klass != "bsg":
        kind = f"character device {rdev}" if stat.S_ISCHR(st.st_mode) else _kind(st.st_mode)
        raise StoreDeviceError(
            f"{path}: not a bsg device (a {kind}; bstype bsg needs /dev/bsg/H:C:T:L)")
    return st


def _kind(mode: int) -> str:
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISDIR(mode):
        return "directory"
    return "regular file" if stat.S_ISREG(mode) else "special file"


class BsgStore(SgStore):
    """A SCSI device behind ``/dev/bsg/H:C:T:L``: the sg store with a v4 header."""

    name: ClassVar[str] = "bsg"

    @staticmethod
    def command(fd: int, cdb: bytes, data_out: bytes | bytearray | memoryview,
                data_in_length: int, timeout_ms: int, flags: int,
                ioctl: Ioctl) -> PassthroughResult:
        """One command on the open node (blocking): :func:`bsg_io`."""
        return bsg_io(fd, cdb, data_out, data_in_length, timeout_ms, flags, ioctl)

    @staticmethod
    def check_device(path: str) -> os.stat_result:
        """``path``'s stat if it is a bsg node; raises StoreDeviceError."""
        return check_bsg_device(path)

    def sg_node(self) -> str | None:
        """The device's sg node (``/dev/sgN``), if the host has one."""
        try:
            st = os.stat(self.path)
            base = f"/sys/dev/char/{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
            names = os.listdir(f"{base}/device/scsi_generic")
        except OSError:
            return None
        return f"/dev/{names[0]}" if names else None

    async def reset_device(self) -> None:
        """``SG_SCSI_RESET`` through the device's sg node (bsg has no reset ioctl)."""
        node = self.sg_node()
        if node is None:
            log.warning("%s: no sg node to reset the device through", self.path)
            return

        def reset() -> None:
            fd = os.open(node, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                self._ioctl(fd, SG_SCSI_RESET, bytearray(struct.pack("@i",
                                                                    SG_SCSI_RESET_DEVICE)))
            finally:
                os.close(fd)
        try:
            await asyncio.wrap_future(self._pool.submit(reset))
        except OSError as exc:
            log.warning("%s: SG_SCSI_RESET on %s failed: %s", self.path, node, exc.strerror)

