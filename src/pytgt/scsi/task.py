"""The boundary between a transport (iSCSI) and the SCSI layer (SAM-5 terms).

A transport builds a :class:`ScsiTask` once all of the command's Data-Out has
arrived and awaits ``ScsiTarget.execute(task)``; it gets a :class:`ScsiResult`.
Allocation-length truncation is done by the SCSI layer; truncation of Data-In to the
transport's expected length and residual counts are the transport's job.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


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


@dataclass(frozen=True, slots=True)
class ItNexus:
    """An I_T nexus: one initiator port talking to one target port.

    ``key`` is unique per nexus (for iSCSI: initiator name + ISID + target portal group).
    ``relative_port`` is the relative target port identifier (VPD 0x83).
    """

    key: str
    initiator_name: str
    initiator_port: str = ""  # e.g. "iqn...,i,0x<isid>"
    relative_port: int = 1
    port_group: int = 1


@dataclass(slots=True)
class ScsiTask:
    """One SCSI command with all its Data-Out already gathered."""

    nexus: ItNexus
    lun: int
    cdb: bytes
    tag: int = 0
    attribute: TaskAttribute = TaskAttribute.SIMPLE
    data_out: bytes | bytearray | memoryview = b""
    expected_in: int = 0  # transport's expected Data-In length (iSCSI EDTL for reads)
    expected_out: int = 0  # transport's expected Data-Out length (iSCSI EDTL for writes)
    aborted: bool = False  # set by task management; execute() stops and reports TASK ABORTED


@dataclass(slots=True)
class ScsiResult:
    """What the SCSI layer answers: status, Data-In (may be empty), sense data (may be empty)."""

    status: int = Status.GOOD
    data: bytes | bytearray | memoryview = b""
    sense: bytes = b""
    extra: dict[str, int] = field(default_factory=dict)
