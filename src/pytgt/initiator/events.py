"""Events the initiator core hands to its adapter (h11-style small frozen classes).

Every answer to a request names the request's ITT, the handle returned by the
``send_*`` method that started it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytgt.initiator.scsi import ScsiResult
from pytgt.iscsi.keys import SessionParams


class Event:
    """Base class of initiator events."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class LoginComplete(Event):
    """Full feature phase reached; ``negotiated`` is in effect from now on."""

    negotiated: SessionParams
    tsih: int


@dataclass(frozen=True, slots=True)
class CommandComplete(Event):
    """A SCSI command finished (status received)."""

    itt: int
    result: ScsiResult


@dataclass(frozen=True, slots=True)
class RequestFailed(Event):
    """A request (login, command, TMF, NOP, text, logout) failed with ``error``."""

    itt: int
    error: Exception


@dataclass(frozen=True, slots=True)
class TaskManagementComplete(Event):
    itt: int
    response: int


@dataclass(frozen=True, slots=True)
class NopReply(Event):
    """The NOP-In answering our NOP-Out ping."""

    itt: int
    data: bytes


@dataclass(frozen=True, slots=True)
class TextComplete(Event):
    """A text exchange (e.g. SendTargets) finished; ``pairs`` as decoded."""

    itt: int
    pairs: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class LogoutComplete(Event):
    itt: int
    response: int
    time2wait: int
    time2retain: int


@dataclass(frozen=True, slots=True)
class AsyncEventReceived(Event):
    """An Asynchronous Message (11.9); for event 1 the core already sent a Logout."""

    message: Any
    logout_itt: int | None = None


@dataclass(frozen=True, slots=True)
class ConnectionClosed(Event):
    """Nothing more will happen on this connection; every open request has failed."""

    reason: str
