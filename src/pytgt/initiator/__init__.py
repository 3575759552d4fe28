"""An asyncio iSCSI initiator for tests and scripts, on pytgt's sans-I/O codec.

Discovery, then a normal session (every operation takes ``timeout=``)::

    async with Initiator("127.0.0.1", port, initiator_name=name) as ini:
        targets = await ini.discover()      # [(iqn, ["127.0.0.1:3260,1"]), ...]
    async with Initiator.login("127.0.0.1", port, target=iqn, immediate_data=True,
                               initial_r2t=False, header_digest=True,
                               chap=("user", "secret")) as s:
        r = await s.execute(1, cdb, data_out=b"", read_length=512)  # ScsiResult
        data = await s.read16(1, lba=0, blocks=8)                  # raises ScsiError
        await s.write16(1, 0, data)
        await s.task_management(TmfFunction.ABORT_TASK, lun=1, ref_itt=0x10)
        await s.nop(b"ping")
        s.negotiated                                                # dict

Login failures raise :class:`LoginFailed` (``.status`` e.g. 0x0203); transport
problems :class:`ConnectionLost`, :class:`CommandRejected`, :class:`ProtocolViolation`.
:class:`InitiatorConnection` (``pytgt.initiator.core``) is the sans-I/O core (bytes
in, events out); :mod:`pytgt.initiator.client` is the thin asyncio adapter.
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
from pytgt.initiator.options import InitiatorOptions
from pytgt.initiator.scsi import Capacity, Inquiry, ScsiResult
from pytgt.iscsi.keys import SessionParams

Negotiated = SessionParams  # the name of the parameter record before it was shared

__all__ = [
    "Capacity", "CommandRejected", "ConnectionLost", "Initiator", "InitiatorConnection",
    "InitiatorError", "InitiatorOptions", "InitiatorSession", "Inquiry", "LoginFailed",
    "Negotiated", "NegotiationError", "ProtocolViolation", "ScsiError", "ScsiResult",
    "SessionParams", "TargetFailure", "UsageError",
]
