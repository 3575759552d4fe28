"""The boundary between a transport (iSCSI) and the SCSI layer (SAM-5 terms).

A transport builds a :class:`ScsiTask` once all of the command's Data-Out has
arrived and hands it to ``ScsiTarget.submit(task, done)``, which calls
``done(task, status, data, sense)`` once, at once or when the command ends (or
``await ScsiTarget.execute(task)`` for a :class:`ScsiResult`). Allocation-length
truncation is done by the SCSI layer; truncation of Data-In to the transport's
expected length and residual counts are the transport's job.

Each I_T nexus carries a :class:`NexusPort`: what the SCSI layer asks of the
transport when task management reaches commands the transport still holds (SAM-5 7).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pytgt.eager import Stepper


class TaskAttribute(enum.IntEnum):
    """SAM-5 task attribute, as coded in the iSCSI SCSI Command ATTR field."""

    UNTAGGED = 0
    SIMPLE = 1
    ORDERED = 2
    HEAD_OF_QUEUE = 3
    ACA = 4


class Status(enum.IntEnum):
    """SAM-5 status codes."""

    GOOD = 0x00
    CHECK_CONDITION = 0x02
    CONDITION_MET = 0x04
    BUSY = 0x08
    RESERVATION_CONFLICT = 0x18
    TASK_SET_FULL = 0x28
    ACA_ACTIVE = 0x30
    TASK_ABORTED = 0x40


class NexusPort(Protocol):
    """The transport side of one I_T nexus, as task management needs it (SAM-5 7)."""

    def abort_pending(self, lun: int | None) -> None:
        """Abort the commands of this nexus for ``lun`` (None: every LUN) that the
        transport holds and has not handed to the SCSI layer yet (Data-Out still
        arriving), answering each with TASK ABORTED (TAS=1, SPC-4 7.5.8)."""

    def drop(self, reason: str) -> None:
        """End the nexus (after a TARGET COLD RESET: a power on, RFC 7143 11.5.1)."""


@dataclass(frozen=True, slots=True)
class ItNexus:
    """An I_T nexus: one initiator port talking to one target port.

    ``key`` is unique per nexus (for iSCSI: initiator name + ISID + TSIH).
    ``relative_port`` is the relative target port identifier (VPD 0x83). ``port``
    reaches the transport for task management (None: the transport holds nothing).
    """

    key: str
    initiator_name: str
    initiator_port: str = ""  # e.g. "iqn...,i,0x<isid>"
    relative_port: int = 1
    port_group: int = 1
    target_port: str = ""  # e.g. "iqn...,t,0x0001"
    port: NexusPort | None = field(default=None, compare=False, repr=False)


class ScsiTask:
    """One SCSI command with all its Data-Out already gathered.

    ``handle`` is the transport's own object for the command, untouched here.
    The SCSI layer fills in ``transfer_out`` (the Data-Out length the CDB asks for,
    None if unknown), ``done`` (how it answers, see ``ScsiTarget.submit``), and, while
    the command is in a task set, ``waiter`` (set while it is dormant, SAM-5 8.6) and
    ``runner`` (what steps its coroutine, if it had to wait: task management cancels
    it), and ``started`` (when it was submitted, on a target that measures latency).
    A plain slotted class: one is made per command.
    """

    __slots__ = ("nexus", "lun", "cdb", "tag", "attribute", "data_out", "expected_in",
                 "expected_out", "handle", "aborted", "transfer_out", "waiter", "runner",
                 "done", "started")

    def __init__(self, nexus: ItNexus, lun: int, cdb: bytes, tag: int = 0,
                 attribute: TaskAttribute = TaskAttribute.SIMPLE,
                 data_out: bytes | bytearray | memoryview = b"", expected_in: int = 0,
                 expected_out: int = 0, handle: Any = None) -> None:
        self.nexus = nexus
        self.lun = lun
        self.cdb = cdb
        self.tag = tag
        self.attribute = attribute
        self.data_out = data_out
        self.expected_in = expected_in  # transport's expected Data-In length (iSCSI EDTL)
        self.expected_out = expected_out  # transport's expected Data-Out length
        self.handle = handle
        self.aborted = False  # set by task management; the command reports TASK ABORTED
        self.transfer_out: int | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.runner: Stepper[ScsiResult] | None = None
        self.done: Completion | None = None
        self.started = 0  # perf_counter_ns() at submit on a timed target (lu_stats.py)

    def __repr__(self) -> str:
        return (f"ScsiTask(nexus={self.nexus.key!r}, lun={self.lun:#x}, tag={self.tag:#x}, "
                f"cdb={bytes(self.cdb[:1]).hex()}, attribute={self.attribute!r})")


@dataclass(slots=True)
class ScsiResult:
    """What the SCSI layer answers: status, Data-In (may be empty), sense data (may be empty)."""

    status: int = Status.GOOD
    data: bytes | bytearray | memoryview = b""
    sense: bytes = b""
    extra: dict[str, int] = field(default_factory=dict)


Data = bytes | bytearray | memoryview

#: ``done(task, status, data, sense)``: how the SCSI layer answers a submitted task.
Completion = Callable[[ScsiTask, int, Data, bytes], None]
