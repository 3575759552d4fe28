"""The "pt" device type (tgt's ``--device-type pt``): every command goes to a host SCSI
device (the ``sg`` store, Linux sg(4)) and its answer comes back unchanged.

What the target keeps (SAM-5 4.6, 5.14): REPORT LUNS (``ScsiTarget``: the LUN inventory
is the target's), the unit attentions it raises itself (a new I_T nexus, a LUN added or
removed, a task management reset) and the task set (SAM-5 8.6: task attributes order the
commands; HEAD OF QUEUE also reaches the host's queue head). Everything else, INQUIRY
and its VPD pages included, is the device's: the initiator sees its identity, its
capacity, its sense data, its reservations (which the device sees as one host's).

The host's answer becomes the initiator's here, in one place (:func:`answer`): the
device's status and sense pass unchanged, with the Data-In it sent (residuals by the
transport); a command the host could not deliver (``DID_*``, ``DRIVER_*``, an ioctl
errno) ends in a CHECK CONDITION that says so, or BUSY / TASK SET FULL / RESERVATION
CONFLICT where the host says the device would answer that.
"""

from __future__ import annotations

import errno

from pytgt.scsi.cdb import Command, OperationCode
from pytgt.scsi.lu import LogicalUnit
from pytgt.scsi.sense import Asc, CheckCondition, SenseKey
from pytgt.scsi.task import ScsiResult, ScsiTask, Status, TaskAttribute
from pytgt.stores.base import (
    BackingStore,
    PassthroughResult,
    StoreIOError,
    SupportsPassthrough,
)

# Additional sense codes of SPC-4 annex D not in sense.Asc.
LOGICAL_UNIT_COMMUNICATION_FAILURE = (0x08, 0x00)
LOGICAL_UNIT_COMMUNICATION_TIME_OUT = (0x08, 0x01)
SCSI_PARITY_ERROR = (0x47, 0x00)
#: The most overflow a pt command reports (the zeros that stand for it are allocated).
MAX_OVERFLOW = 16 << 20

# host_status values (linux/include/scsi/scsi_status.h, enum scsi_host_status).
DID_OK, DID_NO_CONNECT, DID_BUS_BUSY, DID_TIME_OUT, DID_BAD_TARGET = 0x00, 0x01, 0x02, 0x03, 0x04
DID_ABORT, DID_PARITY, DID_ERROR, DID_RESET, DID_BAD_INTR = 0x05, 0x06, 0x07, 0x08, 0x09
DID_PASSTHROUGH, DID_SOFT_ERROR, DID_IMM_RETRY, DID_REQUEUE = 0x0A, 0x0B, 0x0C, 0x0D
DID_TRANSPORT_DISRUPTED, DID_TRANSPORT_FAILFAST, DID_TARGET_FAILURE = 0x0E, 0x0F, 0x10
DID_NEXUS_FAILURE, DID_ALLOC_FAILURE, DID_MEDIUM_ERROR = 0x11, 0x12, 0x13
DID_TRANSPORT_MARGINAL = 0x14

# driver_status (sg(4)): a DRIVER_* code in the low bits, DRIVER_SENSE (08h) when the
# sense buffer holds the device's sense.
DRIVER_OK, DRIVER_BUSY, DRIVER_SOFT, DRIVER_MEDIA = 0x00, 0x01, 0x02, 0x03
DRIVER_ERROR, DRIVER_INVALID, DRIVER_TIMEOUT, DRIVER_HARD = 0x04, 0x05, 0x06, 0x07
DRIVER_SENSE = 0x08

_COMM_FAILURE = CheckCondition(SenseKey.HARDWARE_ERROR, LOGICAL_UNIT_COMMUNICATION_FAILURE)
_COMM_RETRY = CheckCondition(SenseKey.ABORTED_COMMAND, LOGICAL_UNIT_COMMUNICATION_FAILURE)
_TIMED_OUT = CheckCondition(SenseKey.ABORTED_COMMAND, LOGICAL_UNIT_COMMUNICATION_TIME_OUT)
_INTERNAL = CheckCondition(SenseKey.HARDWARE_ERROR, Asc.INTERNAL_TARGET_FAILURE)
_BUSY = ScsiResult(Status.BUSY)

#: What a host status other than DID_OK answers: a status, or a CHECK CONDITION.
HOST_ANSWERS: dict[int, ScsiResult | CheckCondition] = {
    DID_NO_CONNECT: _COMM_FAILURE,  # the device is gone
    DID_BAD_TARGET: _COMM_FAILURE,
    DID_TRANSPORT_FAILFAST: _COMM_FAILURE,  # the host gave up on the path
    DID_TARGET_FAILURE: _COMM_FAILURE,
    DID_BUS_BUSY: _BUSY,  # try again: the host says so
    DID_SOFT_ERROR: _BUSY,
    DID_IMM_RETRY: _BUSY,
    DID_REQUEUE: _BUSY,
    DID_TRANSPORT_DISRUPTED: _COMM_RETRY,  # the path is recovering
    DID_TRANSPORT_MARGINAL: _COMM_RETRY,
    DID_TIME_OUT: _TIMED_OUT,
    DID_ABORT: CheckCondition(SenseKey.ABORTED_COMMAND, Asc.NO_ADDITIONAL_SENSE),
    DID_PARITY: CheckCondition(SenseKey.ABORTED_COMMAND, SCSI_PARITY_ERROR),
    DID_RESET: CheckCondition(SenseKey.UNIT_ATTENTION,
                              Asc.POWER_ON_RESET_OR_BUS_DEVICE_RESET_OCCURRED),
    DID_NEXUS_FAILURE: ScsiResult(Status.RESERVATION_CONFLICT),
    DID_ALLOC_FAILURE: CheckCondition(SenseKey.DATA_PROTECT,
                                      Asc.SPACE_ALLOCATION_FAILED_WRITE_PROTECT),
}
#: What an ioctl errno answers (the command did not reach the device).
ERRNO_ANSWERS: dict[int, ScsiResult | CheckCondition] = {
    errno.ENODEV: _COMM_FAILURE,  # the device was removed
    errno.ENXIO: _COMM_FAILURE,
    errno.EBUSY: _BUSY,
    errno.EAGAIN: _BUSY,
    errno.ENOMEM: _BUSY,  # no kernel buffers now
    errno.EDOM: ScsiResult(Status.TASK_SET_FULL),  # sg's queue is full
    errno.EPERM: CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_COMMAND_OPERATION_CODE),
    errno.EACCES: CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_COMMAND_OPERATION_CODE),
    errno.EINVAL: CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB),
}


def cdb_length(cdb: bytes) -> int:
    """The CDB's own length (SPC-4 4.2.5.1): by GROUP CODE, 8 + ADDITIONAL CDB LENGTH
    for a variable-length CDB (7Fh), everything the transport carried for the vendor
    groups (6, 7)."""
    op = cdb[0]
    if op == 0x7F and len(cdb) >= 8:
        return min(8 + cdb[7], len(cdb))
    n = (6, 10, 10, 0, 16, 12, 0, 0)[op >> 5]
    return min(n, len(cdb)) if n else len(cdb)


def answer(result: PassthroughResult, writing: bool) -> ScsiResult | CheckCondition:
    """The initiator's answer to the host's: the device's own (status, sense, Data-In)
    when the host delivered the command, else what the host's error means."""
    host = result.host_status
    driver = result.driver_status & 0x07
    if host != DID_OK:
        if host == DID_MEDIUM_ERROR:
            asc = Asc.WRITE_ERROR if writing else Asc.UNRECOVERED_READ_ERROR
            return CheckCondition(SenseKey.MEDIUM_ERROR, asc)
        return HOST_ANSWERS.get(host, _INTERNAL)
    if driver == DRIVER_TIMEOUT:
        return _TIMED_OUT
    if driver == DRIVER_BUSY and not result.status:
        return _BUSY
    if driver not in (DRIVER_OK, DRIVER_BUSY) and not result.status:
        return _INTERNAL  # the driver failed the command, the device said nothing
    return ScsiResult(result.status, result.data, result.sense)


def errno_answer(err: int) -> ScsiResult | CheckCondition:
    """The answer to a command the host refused to send (the ioctl's errno)."""
    return ERRNO_ANSWERS.get(err, _INTERNAL)


async def forward(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    """Every command of a pt LU: to the device, and its answer back."""
    device = lu.store
    assert isinstance(device, SupportsPassthrough)
    cdb = bytes(task.cdb[:cdb_length(task.cdb)])
    data_out = task.data_out
    if data_out and task.expected_in:  # bidirectional: sg v3 moves one direction
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB, field=0)
    try:
        result = await device.passthrough(
            cdb, data_out, task.expected_in,
            head_of_queue=task.attribute == TaskAttribute.HEAD_OF_QUEUE)
    except StoreIOError as exc:
        task.transfer_out = 0
        out = errno_answer(exc.errno)
    else:
        task.transfer_out = len(data_out) - result.resid if data_out else 0
        out = answer(result, bool(data_out))
        if result.overflow and isinstance(out, ScsiResult):
            out = _overflowed(task, out, result.overflow, reading=not data_out)
    if isinstance(out, CheckCondition):
        raise out
    return out


def _overflowed(task: ScsiTask, out: ScsiResult, overflow: int, reading: bool) -> ScsiResult:
    """The device wanted ``overflow`` bytes more than the initiator's buffer held
    (RFC 7143 11.4.5.1, residual overflow): the transport counts it from the Data-In's
    length (zeros past the buffer, never sent) or the Data-Out length asked for."""
    overflow = min(overflow, MAX_OVERFLOW)
    task.transfer_out = len(task.data_out) + overflow
    if not reading:
        return out
    return ScsiResult(out.status, bytes(out.data) + bytes(overflow), out.sense, out.extra)


def _row(opcode: int) -> Command:
    """Every opcode's row: no target-side checks but the target's unit attentions."""
    try:
        name = OperationCode(opcode).name.replace("_", " ")
    except ValueError:
        name = f"OPERATION CODE {opcode:02X}h"
    skip_ua = opcode in (OperationCode.INQUIRY, OperationCode.REQUEST_SENSE,
                         OperationCode.REPORT_LUNS)
    return Command(opcode, name, forward, skip_ua=skip_ua, medium=False, conflicts=False,
                   pr_access=0)


PT_COMMANDS = [_row(op) for op in range(256)]


class PassthroughUnit(LogicalUnit):
    """A LU that is a host SCSI device: the device answers, the target orders."""

    def __init__(self, lun: int, store: BackingStore, *, tid: int, path: str = "",
                 bstype: str = "sg", bsoflags: str = "") -> None:
        if not isinstance(store, SupportsPassthrough):
            raise ValueError(f"device-type pt needs bstype sg or bsg, not {bstype}")
        super().__init__("pt", lun, store, tid=tid, path=path, bstype=bstype,
                         bsoflags=bsoflags)
        self.peripheral_type = int(getattr(store, "peripheral_type", 0x1F))
        self.product_id = "VIRTUAL-DISK"  # unused (INQUIRY is the device's): a default
        self.thin_provisioning = False
        self.commands.clear()
        self.service_actions.clear()
        self._install(PT_COMMANDS)

    def lookup(self, cdb: bytes) -> Command:
        """Every operation code has a row (the device decides what it supports)."""
        return self.commands[cdb[0]]

    def _check_param(self, key: str, value: str) -> object:
        if key in ("readonly", "swp", "thin_provisioning", "removable", "online",
                   "block_size"):
            raise ValueError(f"{key} is the device's own on a passthrough logical unit")
        return super()._check_param(key, value)

    async def reset_device(self) -> None:
        """A LOGICAL UNIT RESET reaches the device too (SG_SCSI_RESET)."""
        store = self.store
        if isinstance(store, SupportsPassthrough):
            await store.reset_device()

