"""An asyncio iSCSI initiator for tests and scripts, on pytgt's sans-I/O codec.

>>> async with await Initiator.login("127.0.0.1", port, target=iqn) as s:  # doctest: +SKIP
...     data = await s.read16(1, 0, 8)

:class:`InitiatorConnection` (``pytgt.initiator.core``) is the sans-I/O core;
:mod:`pytgt.initiator.client` is the asyncio adapter.
"""

from __future__ import annotations

from pytgt.initiator.client import Initiator, InitiatorSession
from pytgt.initiator.core import InitiatorConnection
from pytgt.initiator.errors import (
    CommandRejected,
    ConnectionLost,
    InitiatorError,
    LoginFailed,
    NegotiationError,
    ProtocolViolation,
    ScsiError,
    TargetFailure,
    UsageError,
)
from pytgt.initiator.login import Negotiated
from pytgt.initiator.options import InitiatorOptions
from pytgt.initiator.scsi import Capacity, Inquiry, ScsiResult

__all__ = [
    "Capacity", "CommandRejected", "ConnectionLost", "Initiator", "InitiatorConnection",
    "InitiatorError", "InitiatorOptions", "InitiatorSession", "Inquiry", "LoginFailed",
    "Negotiated", "NegotiationError", "ProtocolViolation", "ScsiError", "ScsiResult",
    "TargetFailure", "UsageError",
]
