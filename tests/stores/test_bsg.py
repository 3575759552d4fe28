"""The bsg store without a device: struct sg_io_v4 as bytes, SG_IO through a fake ioctl
that reads the header's pointers as the kernel's scsi_bsg does, and the checks of ``-b``
(tests/guest/test_passthrough.py drives a real /dev/bsg/H:C:T:L)."""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import struct
from pathlib import Path

import pytest

from pytgt.scsi.passthrough import answer
from pytgt.scsi.task import ScsiResult
from pytgt.stores import available, open_store
from pytgt.stores.base import StoreDeviceError, StoreIOError
from pytgt.stores.bsg import (
    SG_IO,
    SG_IO_V4,
    BsgStore,
    bsg_io,
    check_bsg_device,
    pack_v4,
    unpack_v4,
)
from pytgt.stores.sg import SG_FLAG_Q_AT_TAIL, SG_GET_VERSION_NUM, init_device

# struct sg_io_v4 (160 bytes, <linux/bsg.h>) asking for a READ(10) of 512 bytes.
V4_IN = bytes.fromhex(
    "51000000" "00000000" "00000000" "0a000000"  # guard 'Q', protocol SCSI, cmd, 10 bytes
    "2222222222220000"                           # request (the CDB)
    "0000000000000000"                           # request_tag
    "00000000" "00000000" "00000000" "fc000000"  # attr, priority, extra, max_response_len
    "3333333333330000"                           # response (the sense buffer)
    "00000000" "00000000" "00000000" "00020000"  # dout iovecs, dout len, din iovecs, 512
    "0000000000000000" "1111111111110000"        # dout_xferp, din_xferp
    "30750000" "10000000"                        # timeout 30000 ms, BSG_FLAG_Q_AT_TAIL
    "0000000000000000"                           # usr_ptr
    + "00" * 40 + "0000000000000000" + "00" * 8)  # outputs, generated_tag, spare, padding
# ... and as the kernel returns it: CHECK CONDITION, DRIVER_SENSE, 18 bytes of sense,
# 412 bytes not moved, took 7 ms.
V4_OUT = (V4_IN[:108] + struct.pack("<IIIIIIIii", 0x08, 0, 0x02, 0, 1, 7, 18, 412, 0)
          + V4_IN[144:])


def test_v4_header_packs_as_linux_bsg_h_lays_it_out() -> None:
    assert SG_IO_V4.size == 160
    raw = pack_v4(cdb=0x222222222222, cdb_len=10, sense=0x333333333333, dout=0, dout_len=0,
                  din=0x111111111111, din_len=512, timeout_ms=30000, flags=SG_FLAG_Q_AT_TAIL)
    assert raw == V4_IN


def test_v4_outputs_unpack_and_bad_headers_are_refused() -> None:
    reply = unpack_v4(V4_OUT)
    assert (reply.driver_status, reply.transport_status, reply.device_status, reply.info,
            reply.duration, reply.response_len, reply.din_resid, reply.dout_resid) == \
        (0x08, 0, 0x02, 1, 7, 18, 412, 0)
    with pytest.raises(ValueError, match="160 bytes, not 159"):
        unpack_v4(V4_OUT[:-1])
    with pytest.raises(ValueError, match="guard 0x53"):
        unpack_v4(b"S" + V4_OUT[1:])


class FakeBsg:
    """scsi_bsg's side of SG_IO: checks the v4 request, copies data and sense through
    its pointers, fills in the outputs (transport_status is the host's DID_*)."""

    def __init__(self, data_in: bytes = b"", sense: bytes = b"", status: int = 0,
                 transport: int = 0, resid: int = 0, fail: int | None = None) -> None:
        self.data_in, self.sense, self.status, self.transport = data_in, sense, status, transport
        self.resid, self.fail = resid, fail
        self.requests: list[tuple[bytes, bytes, int, int]] = []  # cdb, data_out, din, flags

    def __call__(self, fd: int, request: int, buf: bytearray) -> int:
        if request == SG_GET_VERSION_NUM:
            buf[:] = struct.pack("@i", 30527)
            return 0
        if request != SG_IO:  # SG_SET_RESERVED_SIZE: accepted
            return 0
        if self.fail is not None:
            raise OSError(self.fail, os.strerror(self.fail))
        f = list(SG_IO_V4.unpack(buf))
        assert f[:3] == [ord("Q"), 0, 0] and not (f[12] and f[14])  # no bidi
        cdb = ctypes.string_at(f[4], f[3])
        out = ctypes.string_at(f[15], f[12]) if f[12] else b""
        self.requests.append((cdb, out, f[14], f[18]))
        if f[14]:
            ctypes.memmove(f[16], self.data_in, min(len(self.data_in), f[14]))
        sense = self.sense[:f[9]]
        ctypes.memmove(f[10], sense, len(sense))
        f[21:30] = [0x08 if self.status == 2 else 0, self.transport, self.status, 0,
                    1 if self.status or self.transport else 0, 1, len(sense),
                    self.resid if f[14] else 0, self.resid if f[12] else 0]
        buf[:] = SG_IO_V4.pack(*f)
        return 0


def test_read_moves_data_in_and_trims_the_residual() -> None:
    fake = FakeBsg(data_in=b"A" * 96, resid=512 - 96)
    res = bsg_io(0, bytes((0x12, 0, 0, 2, 0, 0)), b"", 512, 30000, SG_FLAG_Q_AT_TAIL, fake)
    assert fake.requests == [(bytes((0x12, 0, 0, 2, 0, 0)), b"", 512, SG_FLAG_Q_AT_TAIL)]
    assert (res.status, bytes(res.data), res.resid, res.sense) == (0, b"A" * 96, 416, b"")
    # a residual larger than the buffer: the buffer is full, the residual overflowed
    res = bsg_io(0, bytes(10), b"", 16, 1000, 0, FakeBsg(data_in=b"y" * 16, resid=99))
    assert (bytes(res.data), res.resid, res.overflow) == (b"y" * 16, 0, 99)


def test_write_sends_data_out_and_reports_its_residual() -> None:
    for payload in (b"xyz" * 100, bytearray(b"q" * 512), memoryview(bytearray(b"m" * 64))):
        fake = FakeBsg(resid=4)
        res = bsg_io(0, bytes(10), payload, 0, 1000, 0, fake)
        assert fake.requests[0][1:3] == (bytes(payload), 0)
        assert (res.data, res.resid) == (b"", 4)


def test_the_device_s_sense_and_the_host_s_status_come_back() -> None:
    sense = bytes.fromhex("700005000000000a000000002400") + bytes(4)
    res = bsg_io(0, bytes(6), b"", 0, 1000, 0, FakeBsg(sense=sense, status=0x02))
    assert (res.status, res.sense, res.driver_status) == (0x02, sense, 0x08)
    assert answer(res, False) == ScsiResult(0x02, b"", sense)
    res = bsg_io(0, bytes(6), b"", 0, 1000, 0, FakeBsg(transport=0x01))  # DID_NO_CONNECT
    assert res.host_status == 0x01
    assert not isinstance(answer(res, False), ScsiResult)  # LU COMMUNICATION FAILURE


def test_store_sends_v4_headers_and_maps_ioctl_errors(tmp_path: Path) -> None:
    fake = FakeBsg(data_in=b"D" * 8)

    async def main() -> None:
        store = BsgStore(str(tmp_path / "bsg"), os.open(os.devnull, os.O_RDWR), ioctl=fake)
        res = await store.passthrough(bytes((0x28,)) + bytes(9), b"", 8, head_of_queue=True)
        assert bytes(res.data) == b"D" * 8 and fake.requests[-1][3] == 0  # at the head
        await store.passthrough(bytes(6), b"", 0)
        assert fake.requests[-1][3] == SG_FLAG_Q_AT_TAIL
        fake.fail = errno.ENODEV
        with pytest.raises(StoreIOError) as info:
            await store.passthrough(bytes(6), b"", 0)
        assert info.value.errno == errno.ENODEV
        assert store.sg_node() is None  # not a real bsg node: no sg node to reset through
        await store.reset_device()  # logged, not raised
        await store.close()

    asyncio.run(main())


def test_init_reads_the_peripheral_type_with_a_v4_inquiry() -> None:
    fake = FakeBsg(data_in=bytes((0x08,)) + bytes(35))  # a medium changer
    assert init_device("/dev/bsg/0:0:0:1", 0, fake, bsg_io) == 0x08
    assert fake.requests[0][0] == bytes((0x12, 0, 0, 0, 36, 0))


@pytest.mark.parametrize(("path", "message"), [
    ("/dev/null", "not a bsg device (a character device 1:3;"),
    ("{tmp}/f.img", "not a bsg device (a regular file;"),
    ("{tmp}", "not a bsg device (a directory;"),
    ("{tmp}/missing", "No such file or directory"),
])
def test_a_backing_store_that_is_no_bsg_device_is_refused(tmp_path: Path, path: str,
                                                           message: str) -> None:
    (tmp_path / "f.img").write_bytes(bytes(512))
    path = path.format(tmp=tmp_path)
    assert "bsg" in available()
    with pytest.raises(StoreDeviceError) as info:
        open_store("bsg", path)
    assert message in str(info.value) and str(info.value).startswith(path)
    assert "\n" not in str(info.value)
    with pytest.raises(StoreDeviceError):
        check_bsg_device(path)
