"""Events the target connection hands to its transport adapter (h11-style)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytgt.iscsi.command import Task
from pytgt.iscsi.session import Session


@dataclass(frozen=True, slots=True)
class SessionStarted:
    """Login completed. ``reinstated`` is an older session of the same initiator port
    (same ISID) that the adapter must now close (6.3.5); ``new_session`` is False when
    this connection joined an existing session."""

    session: Session
    new_session: bool
    reinstated: Session | None = None
    replaced_connection: Any = None  # older connection with the same CID (reinstatement)


@dataclass(frozen=True, slots=True)
class CommandReady:
    """A SCSI command whose Data-Out is complete, delivered in CmdSN order.

    Execute it and answer with ``TargetConnection.complete_command(task, result, ...)``.
    """

    task: Task


@dataclass(frozen=True, slots=True)
class TaskManagement:
    """A task management request (11.5). ``aborted`` lists this session's tasks the
    core already marked aborted (no response will be sent for them). Answer with
    ``TargetConnection.complete_tmf(itt, response)``."""

    itt: int
    function: int
    lun: int
    referenced_task_tag: int
    aborted: tuple[Task, ...]


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The session is over (logout, reinstatement or last connection lost)."""

    session: Session


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """Flush ``data_to_send()`` and close the transport; nothing more will be produced."""

    reason: str


#: Anything :meth:`TargetConnection.next_event` returns.
Event = SessionStarted | CommandReady | TaskManagement | SessionEnded | ConnectionClosed
