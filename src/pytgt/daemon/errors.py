"""tgtadm's error codes and their one-line messages (tgt ``usr/tgtadm_error.h`` as data).

A management handler raises :class:`MgmtError` with a :class:`TgtadmError`; the
control plane turns it into ``(exit_status, message)`` in one place and the CLI
prints ``<prog>: <message>``. Every message below was checked against tgtadm 1.0.85
for the same mistake (``verified``); the rest keep tgt's wording family.

Exit statuses, as tgtadm's: 22 (EINVAL) for every error the daemon reports and for
most command-line mistakes, 1 for an unknown ``--op``/``--mode`` word, 107
(ENOTCONN) when the daemon cannot be reached.
"""

from __future__ import annotations

import enum

EXIT_OK = 0
EXIT_USAGE = 1  # unknown operation / unknown mode
EXIT_EINVAL = 22  # every daemon-reported error, bad option values
EXIT_ENOTCONN = 107  # daemon not running

# What tgtadm prints when it cannot reach tgtd (verified: missing and stale socket).
NOT_CONNECTED = "failed to send request hdr to tgt daemon, Transport endpoint is not connected"


class TgtadmError(enum.IntEnum):
    """tgtadm error codes, named as tgt's ``TGTADM_*`` constants."""

    SUCCESS = 0
    UNKNOWN_ERR = 1
    NOMEM = 2
    NO_DRIVER = 3
    NO_TARGET = 4
    NO_LUN = 5
    NO_SESSION = 6
    NO_CONNECTION = 7
    NO_BINDING = 8
    TARGET_EXIST = 9
    BINDING_EXIST = 10
    LUN_EXIST = 11
    ACL_EXIST = 12
    ACL_NOEXIST = 13
    USER_EXIST = 14
    NO_USER = 15
    TOO_MANY_USER = 16
    INVALID_REQUEST = 17
    OUTACCOUNT_EXIST = 18
    TARGET_ACTIVE = 19
    LUN_ACTIVE = 20
    DRIVER_ACTIVE = 21
    UNSUPPORTED_OPERATION = 22
    UNKNOWN_PARAM = 23
    PREVENT_REMOVAL = 24


MESSAGES: dict[TgtadmError, str] = {
    TgtadmError.SUCCESS: "success",
    TgtadmError.UNKNOWN_ERR: "unknown error",
    TgtadmError.NOMEM: "out of memory",
    TgtadmError.NO_DRIVER: "can't find the driver",  # verified
    TgtadmError.NO_TARGET: "can't find the target",  # verified
    TgtadmError.NO_LUN: "can't find the logical unit",  # verified
    TgtadmError.NO_SESSION: "can't find the session",  # verified
    TgtadmError.NO_CONNECTION: "can't find the connection",
    TgtadmError.NO_BINDING: "can't find the binding",
    TgtadmError.TARGET_EXIST: "this target already exists",  # verified
    TgtadmError.BINDING_EXIST: "this binding already exists",
    TgtadmError.LUN_EXIST: "this logical unit number already exists",  # verified
    TgtadmError.ACL_EXIST: "this access control rule already exists",  # verified
    TgtadmError.ACL_NOEXIST: "this access control rule does not exist",  # verified
    TgtadmError.USER_EXIST: "this account already exists",  # verified
    TgtadmError.NO_USER: "can't find the account",  # verified
    TgtadmError.TOO_MANY_USER: "too many accounts",
    TgtadmError.INVALID_REQUEST: "invalid request",  # verified
    TgtadmError.OUTACCOUNT_EXIST: "this target already has an outgoing account",  # verified
    TgtadmError.TARGET_ACTIVE: "this target is still active",  # verified
    TgtadmError.LUN_ACTIVE: "this logical unit is still active",
    TgtadmError.DRIVER_ACTIVE: "this driver is busy",  # verified
    TgtadmError.UNSUPPORTED_OPERATION: "this operation isn't supported",
    TgtadmError.UNKNOWN_PARAM: "unknown parameter",
    TgtadmError.PREVENT_REMOVAL: "this device has Prevent Removal set",
}


class MgmtError(Exception):
    """A management request failed; ``message`` is the one line tgtadm would print."""

    def __init__(self, code: TgtadmError, message: str | None = None,
                 exit_status: int = EXIT_EINVAL) -> None:
        self.code = code
        self.message = message or MESSAGES[code]
        self.exit_status = exit_status
        super().__init__(self.message)


def message(code: TgtadmError) -> str:
    """The one-line message for ``code``."""
    return MESSAGES[code]
