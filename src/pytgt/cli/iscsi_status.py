"""``pytgt-iscsi``'s exit statuses (errno values, as pytgtadm's 22 and 107) and the one
place an exception becomes a one-line message and a status."""

from __future__ import annotations

import errno

from pytgt.cli.iscsi_url import UrlError
from pytgt.initiator.errors import InitiatorError, LoginFailed, ScsiError
from pytgt.iscsi.constants import LoginStatus

EXIT_OK = 0
EXIT_FAILED = 1  # a command that ran and failed otherwise (data mismatch, protocol error)
EXIT_EIO = errno.EIO  # 5: a SCSI command ended with CHECK CONDITION or another status
EXIT_EACCES = errno.EACCES  # 13: login refused (authentication or authorization)
EXIT_ENODEV = errno.ENODEV  # 19: no such target or LUN
EXIT_EINVAL = errno.EINVAL  # 22: bad command line or URL
EXIT_ENOTCONN = errno.ENOTCONN  # 107: cannot connect to the portal
EXIT_ETIMEDOUT = errno.ETIMEDOUT  # 110: the target did not answer in time
EXIT_STATUSES = {
    EXIT_OK: "success", EXIT_FAILED: "the command failed",
    EXIT_EIO: "a SCSI command failed", EXIT_EACCES: "login refused",
    EXIT_ENODEV: "no such target or LUN", EXIT_EINVAL: "bad command line or URL",
    EXIT_ENOTCONN: "cannot connect to the portal", EXIT_ETIMEDOUT: "timed out",
}


class CommandError(Exception):
    """A one-line failure with its exit status."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


def failure(exc: BaseException) -> CommandError:
    """The one-line message and exit status of an exception a command raised."""
    if isinstance(exc, CommandError):
        return exc
    if isinstance(exc, UrlError):
        return CommandError(str(exc), EXIT_EINVAL)
    if isinstance(exc, LoginFailed):
        status = {0x0201: EXIT_EACCES, 0x0202: EXIT_EACCES, 0x0203: EXIT_ENODEV,
                  0x0204: EXIT_ENODEV}.get(exc.status, EXIT_FAILED)
        try:
            reason = LoginStatus(exc.status).name.lower().replace("_", " ")
        except ValueError:
            reason = "refused"
        return CommandError(f"login failed: {reason} (status {exc.status:#06x})", status)
    if isinstance(exc, ScsiError):
        return CommandError(str(exc), EXIT_EIO)
    if isinstance(exc, TimeoutError):
        return CommandError("timed out", EXIT_ETIMEDOUT)
    if isinstance(exc, InitiatorError):
        return CommandError(str(exc) or type(exc).__name__, EXIT_FAILED)
    if isinstance(exc, ConnectionError | OSError) and exc.filename is None:
        return CommandError(f"cannot connect: {exc.strerror or exc}", EXIT_ENOTCONN)
    if isinstance(exc, OSError):
        return CommandError(f"{exc.filename}: {exc.strerror}", EXIT_FAILED)
    raise exc
