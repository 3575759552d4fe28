"""Initiator errors: what the target answered (wire) apart from API misuse."""

from __future__ import annotations

from typing import Any

from pytgt.iscsi.errors import UsageError as UsageError  # API misuse, one class for both cores


class InitiatorError(Exception):
    """Base of every error the initiator raises because of the target or the link."""


class LoginFailed(InitiatorError):
    """The target refused the login (RFC 7143 11.13.5 Status-Class / Status-Detail).

    ``status`` is ``status_class << 8 | status_detail`` (e.g. 0x0203 "not found");
    ``redirect`` holds the TargetAddress of a redirection (class 1), if any.
    """

    def __init__(self, status_class: int, status_detail: int, message: str = "",
                 redirect: str | None = None) -> None:
        self.status_class = status_class
        self.status_detail = status_detail
        self.redirect = redirect
        super().__init__(message or f"login failed: status {self.status:#06x}")

    @property
    def status(self) -> int:
        return self.status_class << 8 | self.status_detail


class NegotiationError(InitiatorError):
    """The target's login or text answer broke the negotiation rules (RFC 7143 6.2)."""


class ProtocolViolation(InitiatorError):
    """The target sent a PDU that makes no sense for the command it names."""


class CommandRejected(InitiatorError):
    """The target answered a request with a Reject PDU (11.17); ``reason`` is its code."""

    def __init__(self, reason: int, message: str = "") -> None:
        self.reason = reason
        super().__init__(message or f"rejected by target, reason {reason:#04x}")


class TargetFailure(InitiatorError):
    """A SCSI Response with Response != 0 (11.4.3): the target could not run the command."""

    def __init__(self, response: int) -> None:
        self.response = response
        super().__init__(f"target failure, response {response:#04x}")


class ConnectionLost(InitiatorError):
    """The connection closed before the request was answered."""


class ScsiError(InitiatorError):
    """A command ended with a status other than GOOD; ``result`` is the whole answer."""

    def __init__(self, result: Any) -> None:
        self.result = result
        self.status: int = result.status
        self.sense: bytes = result.sense
        self.sense_key: int | None = result.sense_key
        self.asc: int | None = result.asc
        self.ascq: int | None = result.ascq
        detail = ""
        if self.sense_key is not None:
            detail = f", sense {self.sense_key:#x}/{self.asc:#04x}/{self.ascq:#04x}"
        super().__init__(f"SCSI status {self.status:#04x}{detail}")
