"""The pt device type at the SCSI layer, on a fake device (SupportsPassthrough): what is
forwarded and how, what the target keeps, and how host errors become answers."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from pytgt.scsi import ItNexus, ScsiTarget, ScsiTask, Status, create_lu, tmf
from pytgt.scsi import passthrough as pt
from pytgt.scsi.passthrough import PassthroughUnit, cdb_length
from pytgt.scsi.sense import decode_sense
from pytgt.scsi.task import TaskAttribute
from pytgt.stores.base import PassthroughResult, StoreCapability, StoreIOError
from pytgt.stores.memory import MemoryStore

from .conftest import RAW_LUN1, Harness

HARDWARE, ABORTED, ILLEGAL, UNIT_ATTENTION = 0x04, 0x0B, 0x05, 0x06
DEVICE_SENSE = bytes.fromhex("7005000000000a000000002400000000")  # as the device sent it


@dataclass
class FakeDevice:
    """A SCSI device answering from ``reply(cdb, data_out, data_in_length)``."""

    reply: Callable[[bytes, bytes, int], PassthroughResult] = \
        lambda cdb, out, n: PassthroughResult(0, data=bytes(range(n % 256)) * (n // 256 or 1))
    calls: list[tuple[bytes, bytes, int, bool]] = field(default_factory=list)
    resets: int = 0
    path: str = "/dev/sg7"
    size: int = 0
    peripheral_type: int = 0x01
    capabilities: StoreCapability = StoreCapability.NONE

    async def passthrough(self, cdb: bytes, data_out: bytes | bytearray | memoryview,
                          data_in_length: int, *, head_of_queue: bool = False
                          ) -> PassthroughResult:
        self.calls.append((cdb, bytes(data_out), data_in_length, head_of_queue))
        return self.reply(cdb, bytes(data_out), data_in_length)

    async def reset_device(self) -> None:
        self.resets += 1

    async def close(self) -> None:
        pass


@pytest.fixture
def dev() -> FakeDevice:
    return FakeDevice()


@pytest.fixture
def h(dev: FakeDevice) -> Iterator[Harness]:
    loop = asyncio.new_event_loop()
    target = ScsiTarget("iqn.2024-01.test:pt", tid=1)
    lu = create_lu("pt", 1, dev, tid=1, path=dev.path, bstype="sg")  # type: ignore[arg-type]
    target.add_lu(lu)
    harness = Harness(target, lu, MemoryStore(0), ItNexus("n1", "iqn.2024-01.test:n1"), loop)
    nexus = ItNexus("n1", "iqn.2024-01.test:n1")
    target.add_nexus(nexus)
    harness.nexus = nexus
    yield harness
    loop.close()


def _task(h: Harness, cdb: bytes, data: bytes = b"", expected_in: int = 0,
          attribute: TaskAttribute = TaskAttribute.SIMPLE) -> ScsiTask:
    return ScsiTask(h.nexus, RAW_LUN1, cdb, data_out=data, expected_in=expected_in,
                    attribute=attribute)


def _run(h: Harness, task: ScsiTask):  # type: ignore[no-untyped-def]
    return h.loop.run_until_complete(h.target.execute(task))


def _consume_ua(h: Harness) -> None:
    assert h.sense_of(_run(h, _task(h, bytes(6)))) == (UNIT_ATTENTION, 0x29, 0x00)


def test_the_lu_is_a_passthrough_unit_with_the_device_s_type(h: Harness) -> None:
    assert isinstance(h.lu, PassthroughUnit)
    assert (h.lu.device_type, h.lu.peripheral_type, h.lu.size) == ("pt", 0x01, 0)


def test_a_pt_lu_needs_a_device() -> None:
    with pytest.raises(ValueError, match="device-type pt needs bstype sg or bsg, not memory"):
        create_lu("pt", 1, MemoryStore(512), tid=1, bstype="memory")
    with pytest.raises(ValueError, match="needs a backing store"):
        create_lu("pt", 1, None, tid=1, bstype="sg")


def test_inquiry_goes_to_the_device_unchanged_and_skips_the_target_s_ua(
        h: Harness, dev: FakeDevice) -> None:
    inquiry = b"\x01\x80\x06\x02" + bytes(4) + b"HP      Ultrium 5-SCSI  Z6ED"
    dev.reply = lambda cdb, out, n: PassthroughResult(0, data=inquiry, resid=n - len(inquiry))
    r = _run(h, _task(h, bytes((0x12, 0, 0, 0, 0xFF, 0)), expected_in=255))
    assert (r.status, bytes(r.data)) == (Status.GOOD, inquiry)
    assert dev.calls == [(bytes((0x12, 0, 0, 0, 0xFF, 0)), b"", 255, False)]


def test_the_target_keeps_report_luns_and_its_unit_attentions(h: Harness,
                                                              dev: FakeDevice) -> None:
    r = _run(h, _task(h, bytes((0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0)), expected_in=64))
    assert bytes(r.data)[:8] == bytes((0, 0, 0, 16, 0, 0, 0, 0))  # LUNs 0 and 1
    _consume_ua(h)  # POWER ON for the new nexus: the target's, the device never asked
    assert dev.calls == []
    _run(h, _task(h, bytes(6)))
    assert dev.calls == [(bytes(6), b"", 0, False)]


@pytest.mark.parametrize(("cdb", "length"), [
    (bytes(16), 6), (bytes((0x28,)) + bytes(15), 10), (bytes((0x88,)) + bytes(15), 16),
    (bytes((0xA8,)) + bytes(15), 12), (bytes((0x7F, 0, 0, 0, 0, 0, 0, 0x18)) + bytes(24), 32),
    (bytes((0xC0,)) + bytes(15), 16),
])
def test_the_cdb_goes_with_its_own_length(cdb: bytes, length: int) -> None:
    assert cdb_length(cdb) == length


def test_write_data_out_and_its_residual(h: Harness, dev: FakeDevice) -> None:
    _consume_ua(h)
    dev.reply = lambda cdb, out, n: PassthroughResult(0, resid=512)
    task = _task(h, bytes((0x2A,)) + bytes(9), data=b"w" * 1024)
    r = _run(h, task)
    assert r.status == Status.GOOD and task.transfer_out == 512
    assert dev.calls[-1][:3] == (bytes((0x2A,)) + bytes(9), b"w" * 1024, 0)


def test_an_overflow_the_host_reports_reaches_the_transport(h: Harness,
                                                            dev: FakeDevice) -> None:
    """RFC 7143 11.4.5.1: a READ of one block with room for 200 bytes, a WRITE of one
    block with 200 bytes, a READ with no room at all (the sg store saw the host's
    residual larger than the buffer: sg's only sign of an overflow)."""
    _consume_ua(h)
    dev.reply = lambda cdb, out, n: PassthroughResult(0, data=b"r" * n, overflow=312)
    r = _run(h, _task(h, bytes((0x28,)) + bytes(9), expected_in=200))
    assert bytes(r.data) == b"r" * 200 + bytes(312)  # 512 wanted: 312 beyond the buffer
    dev.reply = lambda cdb, out, n: PassthroughResult(0, overflow=312)
    task = _task(h, bytes((0x2A,)) + bytes(9), data=b"w" * 200)
    assert _run(h, task).status == Status.GOOD and task.transfer_out == 512
    dev.reply = lambda cdb, out, n: PassthroughResult(0, overflow=512)
    task = _task(h, bytes((0x28,)) + bytes(9))
    r = _run(h, task)
    assert (bytes(r.data), task.transfer_out) == (bytes(512), 512)


def test_the_device_s_status_and_sense_pass_unchanged_with_data_read(
        h: Harness, dev: FakeDevice) -> None:
    _consume_ua(h)
    dev.reply = lambda cdb, out, n: PassthroughResult(0x02, driver_status=0x08,
                                                      sense=DEVICE_SENSE, data=b"partial",
                                                      resid=n - 7)
    r = _run(h, _task(h, bytes((0x08, 0, 0, 0, 1, 0)), expected_in=512))
    assert (r.status, r.sense, bytes(r.data)) == (Status.CHECK_CONDITION, DEVICE_SENSE,
                                                   b"partial")
    for status in (Status.BUSY, Status.RESERVATION_CONFLICT, Status.TASK_SET_FULL):
        dev.reply = lambda cdb, out, n, s=status: PassthroughResult(s)
        assert _run(h, _task(h, bytes(6))).status == status


@pytest.mark.parametrize(("host", "driver", "status", "sense"), [
    (pt.DID_NO_CONNECT, 0, Status.CHECK_CONDITION, (HARDWARE, 0x08, 0x00)),
    (pt.DID_BAD_TARGET, 0, Status.CHECK_CONDITION, (HARDWARE, 0x08, 0x00)),
    (pt.DID_TRANSPORT_FAILFAST, 0, Status.CHECK_CONDITION, (HARDWARE, 0x08, 0x00)),
    (pt.DID_TRANSPORT_DISRUPTED, 0, Status.CHECK_CONDITION, (ABORTED, 0x08, 0x00)),
    (pt.DID_TIME_OUT, 0, Status.CHECK_CONDITION, (ABORTED, 0x08, 0x01)),
    (pt.DID_ABORT, 0, Status.CHECK_CONDITION, (ABORTED, 0x00, 0x00)),
    (pt.DID_PARITY, 0, Status.CHECK_CONDITION, (ABORTED, 0x47, 0x00)),
    (pt.DID_RESET, 0, Status.CHECK_CONDITION, (UNIT_ATTENTION, 0x29, 0x00)),
    (pt.DID_ERROR, 0, Status.CHECK_CONDITION, (HARDWARE, 0x44, 0x00)),
    (0x7F, 0, Status.CHECK_CONDITION, (HARDWARE, 0x44, 0x00)),  # one the kernel adds later
    (pt.DID_MEDIUM_ERROR, 0, Status.CHECK_CONDITION, (0x03, 0x11, 0x00)),
    (pt.DID_ALLOC_FAILURE, 0, Status.CHECK_CONDITION, (0x07, 0x27, 0x07)),
    (pt.DID_BUS_BUSY, 0, Status.BUSY, None),
    (pt.DID_REQUEUE, 0, Status.BUSY, None),
    (pt.DID_NEXUS_FAILURE, 0, Status.RESERVATION_CONFLICT, None),
    (0, pt.DRIVER_TIMEOUT, Status.CHECK_CONDITION, (ABORTED, 0x08, 0x01)),
    (0, pt.DRIVER_BUSY, Status.BUSY, None),
    (0, pt.DRIVER_ERROR, Status.CHECK_CONDITION, (HARDWARE, 0x44, 0x00)),
])
def test_host_errors_become_precise_answers(h: Harness, dev: FakeDevice, host: int,
                                            driver: int, status: int,
                                            sense: tuple[int, int, int] | None) -> None:
    _consume_ua(h)
    dev.reply = lambda cdb, out, n: PassthroughResult(0, host_status=host,
                                                      driver_status=driver)
    r = _run(h, _task(h, bytes((0x28,)) + bytes(9), expected_in=512))
    assert (r.status, decode_sense(r.sense) if r.sense else None) == (status, sense)
    assert bytes(r.data) == b""


@pytest.mark.parametrize(("err", "status", "sense"), [
    (errno.ENODEV, Status.CHECK_CONDITION, (HARDWARE, 0x08, 0x00)),
    (errno.EDOM, Status.TASK_SET_FULL, None),
    (errno.ENOMEM, Status.BUSY, None),
    (errno.EPERM, Status.CHECK_CONDITION, (ILLEGAL, 0x20, 0x00)),
    (errno.EINVAL, Status.CHECK_CONDITION, (ILLEGAL, 0x24, 0x00)),
    (errno.EIO, Status.CHECK_CONDITION, (HARDWARE, 0x44, 0x00)),
])
def test_ioctl_errors_become_precise_answers(h: Harness, dev: FakeDevice, err: int,
                                             status: int,
                                             sense: tuple[int, int, int] | None) -> None:
    _consume_ua(h)

    def fail(cdb: bytes, out: bytes, n: int) -> PassthroughResult:
        raise StoreIOError(err)
    dev.reply = fail
    task = _task(h, bytes((0x2A,)) + bytes(9), data=b"x" * 512)
    r = _run(h, task)
    assert (r.status, decode_sense(r.sense) if r.sense else None) == (status, sense)
    assert task.transfer_out == 0


def test_bidirectional_commands_are_refused(h: Harness, dev: FakeDevice) -> None:
    _consume_ua(h)
    r = _run(h, _task(h, bytes((0x53,)) + bytes(9), data=b"x" * 512, expected_in=512))
    assert h.sense_of(r) == (ILLEGAL, 0x24, 0x00) and dev.calls == []


def test_head_of_queue_reaches_the_host_queue_head(h: Harness, dev: FakeDevice) -> None:
    _consume_ua(h)
    _run(h, _task(h, bytes(6), attribute=TaskAttribute.HEAD_OF_QUEUE))
    assert dev.calls[-1][3] is True


def test_lu_reset_resets_the_device_too(h: Harness, dev: FakeDevice) -> None:
    assert h.tmf(tmf.Function.LOGICAL_UNIT_RESET) == tmf.ServiceResponse.FUNCTION_COMPLETE
    assert dev.resets == 1
    assert h.tmf(tmf.Function.TARGET_WARM_RESET) == tmf.ServiceResponse.FUNCTION_COMPLETE
    assert dev.resets == 2


def test_the_device_s_own_settings_are_refused_as_params(h: Harness) -> None:
    with pytest.raises(ValueError, match="readonly is the device's own"):
        h.lu.update_params({"readonly": "1"})
    h.lu.update_params({"scsi_sn": "abc"})
    assert h.lu.scsi_sn == "abc"
