"""Refused logins and control requests: logged once, counted, and CHAP guessing slowed down.

The iSCSI core (``pytgt.iscsi.login``) never logs or reads a clock: it reports each failed
login as a :class:`~pytgt.iscsi.policy.LoginFailure` to the policy, and asks the policy
``login_permitted(address, initiator_name)`` before it looks at the target. This module is
the daemon's side of both: :class:`SecurityMonitor` logs one line per refusal on the
``pytgt.security`` logger (peer address, initiator name, target, CHAP user name; never a
secret or a CHAP response), keeps the counters shown by ``pytgtadm --op stat --mode
system`` and runs the per-source :class:`AuthBackoff`.

Back-off. After ``limit`` CHAP guesses that failed (0x0201 with a CHAP_N/CHAP_R checked
and found wrong; an initiator that offers no CHAP guesses nothing and is only counted)
from one source address, each without ``window`` seconds of quiet since the previous one,
that address is refused
for ``initial`` seconds, doubling with every further failure up to ``max_delay``. A source
is forgotten after ``window`` seconds without failures once its delay has run out. Other
addresses are not affected; a successful login does not reset the count (an attacker who
owns one account could otherwise keep guessing another's secret).

The refusal is Login Response status 0x0301 *Service Unavailable* (RFC 7143 11.13.5),
sent at once on the first Login Request, and the connection is closed: never held open.
Status-Class 3 (target error) tells the initiator it may retry the same request later,
which is true: the same credentials will be accepted once the delay is over. Class 2 (e.g.
0x0201 *Authentication Failure*) means "do not retry", so open-iscsi would give up for
good and an attacker sharing a NAT address with a host could lock that host out until an
admin intervened; 0x0300 *Target Error* would report a fault that does not exist.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pytgt.daemon.logfmt import fields
from pytgt.iscsi.constants import LoginStatus

if TYPE_CHECKING:
    from pytgt.iscsi.policy import LoginFailure

log = logging.getLogger("pytgt.security")

MAX_SOURCES = 4096  # addresses tracked at once; the oldest is dropped beyond that


def failure_reason(status: int) -> str:
    """A failed login's Status-Class/Detail as a lowercase name (``authentication_failure``)."""
    try:
        return LoginStatus(status).name.lower()
    except ValueError:
        return f"0x{status:04x}"


@dataclass
class BackoffSettings:
    """pytgtd ``--iscsi auth_fail_limit=N,auth_fail_window=S,auth_backoff_max=S``."""

    limit: int = 5  # authentication failures before a source is held off; 0: never
    window: float = 60.0  # seconds of quiet after which a source's failures are forgotten
    initial: float = 1.0  # the first delay, doubled with each further failure
    max_delay: float = 60.0

    def check(self) -> None:
        """Raises ValueError on a negative or inconsistent value."""
        if self.limit < 0 or self.window <= 0 or self.initial <= 0 or self.max_delay <= 0:
            raise ValueError("back-off limits must be positive (auth_fail_limit=0 disables)")
        if self.initial > self.max_delay:
            raise ValueError("the first back-off delay exceeds auth_backoff_max")


@dataclass
class _Source:
    failures: int = 0
    last_failure: float = 0.0
    blocked_until: float = 0.0


class AuthBackoff:
    """Per-source-address authentication failure counts and delays (module docstring)."""

    def __init__(self, settings: BackoffSettings | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or BackoffSettings()
        self.clock = clock
        self._sources: OrderedDict[str, _Source] = OrderedDict()

    def delay_left(self, address: str) -> float:
        """Seconds until ``address`` may log in again (0.0: now)."""
        src = self._current(address)
        return 0.0 if src is None else max(0.0, src.blocked_until - self.clock())

    def failed(self, address: str) -> float:
        """Record an authentication failure; returns the delay it starts (0.0: none)."""
        s = self.settings
        if s.limit == 0:
            return 0.0
        now = self.clock()
        src = self._current(address) or _Source()
        self._sources[address] = src
        self._sources.move_to_end(address)
        src.failures += 1
        src.last_failure = now
        if len(self._sources) > MAX_SOURCES:
            self._sources.popitem(last=False)
        if src.failures < s.limit:
            return 0.0
        delay = min(s.max_delay, s.initial * 2.0 ** min(src.failures - s.limit, 32))
        src.blocked_until = now + delay
        return delay

    def held_off(self) -> int:
        """How many sources are refused right now."""
        now = self.clock()
        return sum(1 for src in self._sources.values() if src.blocked_until > now)

    def _current(self, address: str) -> _Source | None:
        src = self._sources.get(address)
        if src is None:
            return None
        quiet_since = max(src.last_failure, src.blocked_until)
        if self.clock() - quiet_since >= self.settings.window:
            del self._sources[address]
            return None
        return src


@dataclass
class SecurityCounters:
    """Daemon-wide counts shown by ``--op stat --mode system`` (after tgt's tables)."""

    auth_fail: int = 0
    acl_denied: int = 0
    backoff_refused: int = 0
    control_refused: int = 0
    backoffs: int = 0  # back-off delays started
    # every failed login by reason (status name, "backoff" for a held-off source)
    login_failures: dict[str, int] = field(default_factory=dict)


SECURITY_HEADER = "auth_fail acl_denied backoff_refused backoff_sources control_refused"


class SecurityMonitor:
    """The daemon's log, counters and back-off for refused logins and control requests."""

    def __init__(self, settings: BackoffSettings | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.backoff = AuthBackoff(settings, clock)
        self.counters = SecurityCounters()

    def login_permitted(self, address: str, initiator_name: str) -> bool:
        """False while ``address`` is held off (counted, logged at debug only: an attacker
        hammering the portal must not flood the log)."""
        left = self.backoff.delay_left(address)
        if left <= 0:
            return True
        self.counters.backoff_refused += 1
        self._count_failure("backoff")
        log.debug("login from %s (%s) refused: back-off, %.1f s left", address,
                  initiator_name or "?", left)
        return False

    def login_failed(self, failure: LoginFailure) -> None:
        """Log and count one failed login."""
        if failure.held_off:
            return  # counted by login_permitted
        status = int(failure.status)
        self._count_failure(failure_reason(status))
        if status == LoginStatus.AUTHENTICATION_FAILURE:
            self.counters.auth_fail += 1
            self._warn("authentication failure", failure)
            if not failure.chap_user:
                return  # no CHAP response was checked: nothing guessed, no back-off
            delay = self.backoff.failed(failure.address)
            if delay > 0:
                self.counters.backoffs += 1
                log.warning("back-off: logins from %s refused for %g s after %d "
                            "authentication failures", failure.address, delay,
                            self.backoff.settings.limit,
                            extra=fields("chap_backoff", address=failure.address,
                                         initiator=failure.initiator_name or None,
                                         reason="authentication_failure"))
        elif status == LoginStatus.AUTHORIZATION_FAILURE:
            self.counters.acl_denied += 1
            self._warn("ACL denial", failure)

    def _count_failure(self, reason: str) -> None:
        failures = self.counters.login_failures
        failures[reason] = failures.get(reason, 0) + 1

    def control_refused(self, uid: int | None, pid: int | None) -> None:
        self.counters.control_refused += 1
        log.warning("control socket: request from uid %s (pid %s) refused",
                    "?" if uid is None else uid, "?" if pid is None else pid,
                    extra=fields("control_refused"))

    def format(self) -> str:
        """The counters as the table appended to ``--op stat --mode system``."""
        c = self.counters
        return (f"{SECURITY_HEADER}\n{c.auth_fail:9d} {c.acl_denied:10d} "
                f"{c.backoff_refused:15d} {self.backoff.held_off():15d} "
                f"{c.control_refused:15d}\n")

    @staticmethod
    def _warn(what: str, f: LoginFailure) -> None:
        target = f.target_name or ("discovery" if f.session_type == "Discovery" else "?")
        user = f" user {f.chap_user!r}" if f.chap_user else ""
        log.warning("login refused (%s): %s initiator %s target %s%s: %s", what, f.address,
                    f.initiator_name or "?", target, user, f.reason or "-",
                    extra=fields("login_refused", target=target, address=f.address,
                                 initiator=f.initiator_name or None,
                                 reason=failure_reason(int(f.status)), user=f.chap_user or None))
