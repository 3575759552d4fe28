"""Wire errors carry their answer (RFC 7143); API-misuse errors are a separate family."""

from __future__ import annotations

from pytgt.iscsi.constants import LoginStatus, RejectReason


class IscsiError(Exception):
    """Base of errors the peer caused; each knows how it is answered on the wire."""


class LoginError(IscsiError):
    """Fail the login with this Status-Class/Status-Detail, then close (11.13.5)."""

    def __init__(self, status: LoginStatus, message: str = "", *,
                 keys: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message or status.name)
        self.status = status
        self.keys = keys  # text of the response: TargetAddress for a redirection (11.13.5)

    @property
    def status_class(self) -> int:
        return int(self.status) >> 8

    @property
    def status_detail(self) -> int:
        return int(self.status) & 0xFF


class ProtocolError(IscsiError):
    """Answer with a Reject PDU carrying ``reason`` and the offending header (11.17).

    ``fatal`` means the connection must be dropped after the Reject (e.g. a format error).
    """

    def __init__(self, reason: RejectReason, message: str = "", *, fatal: bool = False) -> None:
        super().__init__(message or reason.name)
        self.reason = reason
        self.fatal = fatal


class ConnectionDropped(IscsiError):
    """The connection must close without a reply (digest error on header, framing lost)."""


class UsageError(Exception):
    """The local program misused a sans-I/O core's API (not the peer's fault).

    Raised by the target and initiator cores alike (``pytgt.initiator`` re-exports it).
    """
