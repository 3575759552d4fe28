"""What the target core asks its owner: the policy hooks of login and discovery.

:class:`TargetPolicy` declares every hook the core calls; it is generic in the
policy's own target object (``pytgt.config.model.Target`` in pytgtd, anything in a
library user's policy), which the core only hands back. :class:`BasePolicy` answers
each hook neutrally (no targets, tgt's empty ACL refuses, no redirection, no
authentication, every login permitted, failures ignored); subclass it and override what you decide.
The hooks are plain calls, never awaited: the core is sans-I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeVar

from pytgt.iscsi.constants import LoginStatus

__all__ = ["BasePolicy", "LoginFailure", "TargetPolicy", "TargetT"]

TargetT = TypeVar("TargetT")  # the policy's target object, passed back to it as found


@dataclass(frozen=True, slots=True)
class LoginFailure:
    """What the policy's ``login_failed`` hook learns about a failed login: who (peer
    address, initiator and CHAP user names as sent), what for, and the status answered.
    Never a secret: ``reason`` is the LoginError's message, which names no secret or
    CHAP response. ``held_off`` marks a refusal by ``login_permitted``."""

    address: str
    initiator_name: str
    target_name: str
    session_type: str
    status: LoginStatus
    reason: str
    chap_user: str = ""
    held_off: bool = False


class TargetPolicy(Protocol[TargetT]):
    """The hooks login (:class:`pytgt.iscsi.login.TargetLogin`) and discovery
    (``SendTargets`` in :class:`pytgt.iscsi.connection.TargetConnection`) call.

    ``target`` is None for a Discovery session. Implemented by
    ``pytgt.daemon.policy.RegistryPolicy``; :class:`BasePolicy` has neutral defaults.
    """

    def find_target(self, name: str) -> TargetT | None:
        """The target named ``name`` (case as the initiator sent it), or None (6.3)."""
        ...

    def target_allows(self, target: TargetT, initiator_name: str, address: str) -> bool:
        """Whether the ACL of ``target`` admits this initiator from ``address``."""
        ...

    def target_redirect(self, target: TargetT) -> tuple[str, bool] | None:
        """Where logins to ``target`` are sent instead, as ``(TargetAddress, permanent)``
        (``"host:port[,tpgt]"``; 11.13.5 status 0101h or 0102h), or None to log in here."""
        ...

    def target_ready(self, target: TargetT | None) -> bool:
        """False while the daemon or the target is offline (SERVICE_UNAVAILABLE)."""
        ...

    def target_settings(self, target: TargetT | None) -> dict[str, str]:
        """Admin overrides of our declared/offered key values (keys.TARGET_DEFAULTS)."""
        ...

    def target_alias(self, target: TargetT | None) -> str:
        """The TargetAlias to declare (13.6), or ``""``."""
        ...

    def auth_required(self, target: TargetT | None) -> bool:
        """Whether the initiator must authenticate with CHAP before logging in (12.1)."""
        ...

    def chap_secret(self, target: TargetT | None, user: str) -> str | None:
        """The CHAP secret of ``user`` for ``target`` (incoming), or None."""
        ...

    def chap_mutual_account(self, target: TargetT | None) -> tuple[str, str] | None:
        """``(user, secret)`` with which the target answers mutual CHAP (12.1.3);
        None fails a login that asks for it."""
        ...

    def login_permitted(self, address: str, initiator_name: str) -> bool:
        """Asked on the first complete request, before the target is looked up: False
        refuses the login with SERVICE_UNAVAILABLE (the daemon's CHAP back-off)."""
        ...

    def login_failed(self, target: TargetT | None, failure: LoginFailure) -> None:
        """Told once per failed login (the core never logs failures itself)."""
        ...

    def send_targets(self, initiator_name: str, address: str, value: str,
                     session_type: str, local_address: str = "") -> list[tuple[str, str]]:
        """``TargetName``/``TargetAddress`` pairs answering ``SendTargets=value``
        (Appendix C); ``local_address`` is the portal the connection came in on."""
        ...


class BasePolicy(TargetPolicy[TargetT]):
    """Neutral answers to every hook: no targets, an ACL that refuses (as tgt's empty
    ACL does), no redirection, no overrides or alias, no CHAP, every login permitted,
    failures ignored, nothing to discover. Override the hooks you decide."""

    def find_target(self, name: str) -> TargetT | None:
        return None

    def target_allows(self, target: TargetT, initiator_name: str, address: str) -> bool:
        return False

    def target_redirect(self, target: TargetT) -> tuple[str, bool] | None:
        return None

    def target_ready(self, target: TargetT | None) -> bool:
        return True

    def target_settings(self, target: TargetT | None) -> dict[str, str]:
        return {}

    def target_alias(self, target: TargetT | None) -> str:
        return ""

    def auth_required(self, target: TargetT | None) -> bool:
        return False

    def chap_secret(self, target: TargetT | None, user: str) -> str | None:
        return None

    def chap_mutual_account(self, target: TargetT | None) -> tuple[str, str] | None:
        return None

    def login_permitted(self, address: str, initiator_name: str) -> bool:
        return True

    def login_failed(self, target: TargetT | None, failure: LoginFailure) -> None:
        return None

    def send_targets(self, initiator_name: str, address: str, value: str,
                     session_type: str, local_address: str = "") -> list[tuple[str, str]]:
        return []
