"""The sg store without a device: struct sg_io_hdr as bytes, SG_IO through a fake ioctl
that reads the header's pointers and answers as the kernel does, and the checks of
``-b`` (tests/guest/test_passthrough.py drives a real /dev/sgN)."""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from pytgt.stores import open_store
from pytgt.stores.base import StoreDeviceError, StoreError, StoreIOError
from pytgt.stores.sg import (
    LONG_TIMEOUT,
    SG_DXFER_FROM_DEV,
    SG_DXFER_NONE,
    SG_DXFER_TO_DEV,
    SG_FLAG_Q_AT_TAIL,
    SG_GET_VERSION_NUM,
    SG_IO,
    SG_IO_HDR,
    SG_SCSI_RESET,
    SG_SET_RESERVED_SIZE,
    SgStore,
    check_sg_device,
    init_device,
    pack_header,
    sg_io,
    unpack_header,
)

LP64 = pytest.mark.skipif(struct.calcsize("P") != 8, reason="the LP64 layout of sg_io_hdr")

# struct sg_io_hdr on x86-64 / arm64 (88 bytes), as <scsi/sg.h> lays it out.
HEADER_IN = bytes.fromhex(
    "53000000" "fdffffff"          # interface_id 'S', dxfer_direction SG_DXFER_FROM_DEV
    "0a" "fc" "0000" "00020000"    # cmd_len 10, mx_sb_len 252, iovec_count 0, dxfer_len 512
    "1111111111110000"             # dxferp
    "2222222222220000"             # cmdp
    "3333333333330000"             # sbp
    "30750000" "10000000"          # timeout 30000 ms, flags SG_FLAG_Q_AT_TAIL
    "ffffffff" "00000000"          # pack_id -1, padding
    "0000000000000000"             # usr_ptr
    "00000000" "00000000" "00000000" "00000000" "00000000" "00000000")  # outputs, tail
HEADER_OUT = (HEADER_IN[:64] + bytes((0x02, 0x01, 0x00, 18)) + struct.pack("<HHiII", 0, 0x08,
              100, 7, 1) + bytes(4))


@LP64
def test_header_packs_as_the_kernel_lays_it_out() -> None:
    assert SG_IO_HDR.size == 88
    raw = pack_header(direction=SG_DXFER_FROM_DEV, cmd_len=10, dxfer_len=512,
                      dxferp=0x111111111111, cmdp=0x222222222222, sbp=0x333333333333,
                      timeout_ms=30000, flags=SG_FLAG_Q_AT_TAIL)
    assert raw == HEADER_IN


@LP64
def test_header_outputs_unpack() -> None:
    reply = unpack_header(HEADER_OUT)
    assert (reply.status, reply.masked_status, reply.sb_len_wr, reply.host_status,
            reply.driver_status, reply.resid, reply.duration, reply.info) == \
        (0x02, 0x01, 18, 0, 0x08, 100, 7, 1)


def test_header_of_the_wrong_size_or_interface_is_refused() -> None:
    with pytest.raises(ValueError, match="88 bytes, not 87|bytes, not"):
        unpack_header(HEADER_OUT[:-1])
    with pytest.raises(ValueError, match="interface_id 0x51"):
        unpack_header(b"Q" + HEADER_OUT[1:])


class FakeSg:
    """The kernel's side of SG_IO: checks the request, copies data and sense through
    the header's pointers, fills in the outputs."""

    def __init__(self, data_in: bytes = b"", sense: bytes = b"", status: int = 0,
                 host: int = 0, driver: int = 0, resid: int = 0,
                 fail: int | None = None) -> None:
        self.data_in, self.sense, self.status = data_in, sense, status
        self.host, self.driver, self.resid, self.fail = host, driver, resid, fail
        self.requests: list[tuple[bytes, int, bytes, int]] = []  # cdb, dir, data_out, flags
        self.others: list[tuple[int, bytes]] = []  # other ioctls: request, argument

    def __call__(self, fd: int, request: int, buf: bytearray) -> int:
        if request != SG_IO:
            self.others.append((request, bytes(buf)))
            return 0
        if self.fail is not None:
            raise OSError(self.fail, os.strerror(self.fail))
        f = list(SG_IO_HDR.unpack(buf))
        direction, cmd_len, mx_sb, dxfer_len, dxferp, cmdp, sbp, flags = (
            f[1], f[2], f[3], f[5], f[6], f[7], f[8], f[10])
        cdb = ctypes.string_at(cmdp, cmd_len)
        out = ctypes.string_at(dxferp, dxfer_len) if direction == SG_DXFER_TO_DEV else b""
        self.requests.append((cdb, direction, out, flags))
        if direction == SG_DXFER_FROM_DEV:
            n = min(len(self.data_in), dxfer_len)
            ctypes.memmove(dxferp, self.data_in, n)
        sense = self.sense[:mx_sb]
        ctypes.memmove(sbp, sense, len(sense))
        f[13:22] = [self.status, self.status >> 1, 0, len(sense), self.host, self.driver,
                    self.resid, 1, 1 if self.status or self.host or self.driver else 0]
        buf[:] = SG_IO_HDR.pack(*f)
        return 0


def test_read_moves_data_in_and_trims_the_residual() -> None:
    fake = FakeSg(data_in=b"A" * 96, resid=512 - 96)
    res = sg_io(0, bytes((0x12, 0, 0, 2, 0, 0)), b"", 512, 30000, SG_FLAG_Q_AT_TAIL, fake)
    assert fake.requests == [(bytes((0x12, 0, 0, 2, 0, 0)), SG_DXFER_FROM_DEV, b"",
                              SG_FLAG_Q_AT_TAIL)]
    assert (res.status, bytes(res.data), res.resid, res.sense) == (0, b"A" * 96, 416, b"")


def test_write_sends_data_out_from_bytes_and_from_a_writable_buffer() -> None:
    for payload in (b"xyz" * 100, bytearray(b"q" * 512), memoryview(bytearray(b"m" * 64))):
        fake = FakeSg()
        res = sg_io(0, bytes(10), payload, 0, 1000, 0, fake)
        assert fake.requests[0][1:3] == (SG_DXFER_TO_DEV, bytes(payload))
        assert (res.data, res.resid) == (b"", 0)


def test_no_data_command_and_the_device_s_sense_unchanged() -> None:
    sense = bytes.fromhex("72050000000000") + bytes(1)  # descriptor format, as sent
    fake = FakeSg(sense=sense, status=0x02, driver=0x08)
    res = sg_io(0, bytes(6), b"", 0, 1000, 0, fake)
    assert fake.requests[0][1] == SG_DXFER_NONE
    assert (res.status, res.sense, res.driver_status) == (0x02, sense, 0x08)


def test_a_negative_residual_is_none_and_a_larger_one_an_overflow() -> None:
    res = sg_io(0, bytes(6), b"", 16, 1000, 0, FakeSg(data_in=b"z" * 16, resid=-5))
    assert (bytes(res.data), res.resid, res.overflow) == (b"z" * 16, 0, 0)
    # a residual larger than the buffer: the buffer is full, the residual overflowed
    # (the Linux iSCSI initiator reports an overflow's count, RFC 7143 11.4.5.1)
    res = sg_io(0, bytes(6), b"", 16, 1000, 0, FakeSg(data_in=b"y" * 16, resid=99))
    assert (bytes(res.data), res.resid, res.overflow) == (b"y" * 16, 0, 99)
    res = sg_io(0, bytes(10), b"", 0, 1000, 0, FakeSg(resid=512))  # EDTL 0, READ(10)
    assert (res.data, res.resid, res.overflow) == (b"", 0, 512)
    res = sg_io(0, bytes(10), b"w" * 200, 0, 1000, 0, FakeSg(resid=312))
    assert (res.resid, res.overflow) == (0, 312)


def _store(fake: FakeSg, tmp_path: Path, **kw: object) -> SgStore:
    fd = os.open(os.devnull, os.O_RDWR)
    return SgStore(str(tmp_path / "sg9"), fd, ioctl=fake, **kw)  # type: ignore[arg-type]


def test_store_runs_sg_io_off_the_loop_and_maps_ioctl_errors(tmp_path: Path) -> None:
    loop_thread: list[int] = []
    seen: list[int] = []
    fake = FakeSg(data_in=b"D" * 8)

    def ioctl(fd: int, request: int, buf: bytearray) -> int:
        seen.append(threading.get_ident())
        return fake(fd, request, buf)

    async def main() -> None:
        loop_thread.append(threading.get_ident())
        store = _store(FakeSg(), tmp_path)
        store._ioctl = ioctl
        res = await store.passthrough(bytes((0x28,)) + bytes(9), b"", 8, head_of_queue=True)
        assert bytes(res.data) == b"D" * 8 and fake.requests[-1][3] == 0  # at the head
        await store.passthrough(bytes(6), b"", 0)
        assert fake.requests[-1][3] == SG_FLAG_Q_AT_TAIL
        fake.fail = errno.ENODEV
        with pytest.raises(StoreIOError) as info:
            await store.passthrough(bytes(6), b"", 0)
        assert info.value.errno == errno.ENODEV
        await store.close()
        with pytest.raises(StoreIOError):
            await store.passthrough(bytes(6), b"", 0)

    asyncio.run(main())
    assert seen and loop_thread[0] not in seen


def test_quiesce_waits_for_a_running_sg_io_and_reset_asks_for_a_device_reset(
        tmp_path: Path) -> None:
    release = threading.Event()
    started = threading.Event()
    fake = FakeSg()

    def slow(fd: int, request: int, buf: bytearray) -> int:
        if request == SG_IO:
            started.set()
            release.wait(10)
        return fake(fd, request, buf)

    async def main() -> None:
        store = _store(fake, tmp_path)
        store._ioctl = slow
        cmd = asyncio.ensure_future(store.passthrough(bytes(6), b"", 0))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
        cmd.cancel()  # an aborted command: its SG_IO goes on in its thread
        quiet = asyncio.ensure_future(store.quiesce())
        await asyncio.sleep(0)
        assert not quiet.done()
        release.set()
        await asyncio.wait_for(quiet, 10)
        await store.reset_device()
        await store.close()

    asyncio.run(main())
    assert fake.others == [(SG_SCSI_RESET, struct.pack("@i", 1))]


def test_init_checks_the_driver_and_reads_the_peripheral_type() -> None:
    inquiry = bytes((0x01,)) + bytes(35)  # a tape drive

    def ioctl(version: int) -> Callable[[int, int, bytearray], int]:
        fake = FakeSg(data_in=inquiry)

        def call(fd: int, request: int, buf: bytearray) -> int:
            if request == SG_GET_VERSION_NUM:
                buf[:] = struct.pack("@i", version)
                return 0
            return fake(fd, request, buf)
        return call

    assert init_device("/dev/sg9", 0, ioctl(30536)) == 0x01
    with pytest.raises(StoreDeviceError, match="older than version 3"):
        init_device("/dev/sg9", 0, ioctl(20000))
    store = SgStore("/dev/sg9", os.open(os.devnull, os.O_RDWR), peripheral_type=0x01)
    assert store.timeout == LONG_TIMEOUT
    asyncio.run(store.close())
    assert SG_SET_RESERVED_SIZE  # asked for, failures ignored


@pytest.mark.parametrize(("path", "message"), [
    ("/dev/null", "not a SCSI generic device (a character device of major 1;"),
    ("{tmp}/f.img", "not a SCSI generic device (a regular file;"),
    ("{tmp}", "not a SCSI generic device (a directory;"),
    ("{tmp}/missing", "No such file or directory"),
])
def test_a_backing_store_that_is_no_sg_device_is_refused(tmp_path: Path, path: str,
                                                          message: str) -> None:
    (tmp_path / "f.img").write_bytes(bytes(512))
    path = path.format(tmp=tmp_path)
    with pytest.raises(StoreDeviceError) as info:
        open_store("sg", path)
    assert str(info.value) == f"{path}: {message}" or message in str(info.value)
    assert "\n" not in str(info.value)


def test_an_sg_node_without_a_device_and_bad_options(tmp_path: Path) -> None:
    node = tmp_path / "sg0"
    try:
        os.mknod(node, 0o600 | 0o020000, os.makedev(21, 200))
    except PermissionError:
        pytest.skip("mknod needs CAP_MKNOD")
    assert check_sg_device(str(node)).st_rdev == os.makedev(21, 200)
    with pytest.raises(StoreDeviceError, match=r"sg0: No such device or address"):
        open_store("sg", str(node))
    with pytest.raises(StoreDeviceError, match="'backing-store' option is necessary"):
        open_store("sg", "")
    with pytest.raises(StoreError, match="bad value for timeout"):
        open_store("sg", str(node), bsopts="timeout=-1")
    with pytest.raises(StoreError, match="unknown sg store option: depth"):
        open_store("sg", str(node), bsopts="depth=4")
    with pytest.raises(StoreError, match="unsupported bsoflags: direct"):
        open_store("sg", str(node), bsoflags="direct")
