"""Login redirection and draining a gateway (RFC 7143 11.13.5 status 0101h/0102h, 11.9.1).

tgt's target parameters, set with ``pytgtadm --op update --mode target --tid N``::

    --name RedirectAddress --value HOST      # "" (or --value none) removes the redirection
    --name RedirectPort --value PORT         # default 3260
    --name RedirectReason --value Temporary  # or Permanent (0102h); default Temporary

While ``RedirectAddress`` is set, every new login to the target (even while it is
offline) is answered "target moved" with ``TargetAddress=HOST:PORT``; live sessions
stay. ``--name drain --value SECONDS`` then asks each of them to log out within SECONDS
(Asynchronous Message, AsyncEvent 1, Parameter3 = SECONDS): an initiator logs out and
logs in again, is redirected and goes to the other gateway. Sessions still there a
second after that are told the target drops them (AsyncEvent 3) and closed.

The parameters are kept with the target's other parameters (``Target.iscsi_params``),
so ``--persist`` saves them and ``pytgt-admin --dump`` writes them as targets.conf
directives (tgt-admin passes such directives on as ``--name/--value``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import TYPE_CHECKING

from pytgt.daemon.async_messages import end_sessions, request_logout

if TYPE_CHECKING:
    from pytgt.config.model import Target
    from pytgt.iscsi.connection import TargetConnection
    from pytgt.iscsi.session import Session

log = logging.getLogger("pytgt.daemon.redirect")

ADDRESS, PORT, REASON = "RedirectAddress", "RedirectPort", "RedirectReason"
PARAMS = {name.lower(): name for name in (ADDRESS, PORT, REASON)}
REASONS = {"temporary": "Temporary", "permanent": "Permanent"}
DEFAULT_PORT = "3260"
DRAIN = "drain"
MAX_DRAIN = 3600  # seconds: Parameter3 is 16 bits, an hour is plenty


def check(name: str, value: str) -> tuple[str, str] | None:
    """(canonical name, canonical value) of a redirect parameter; ``""`` clears it.
    None when ``value`` is not valid for ``name`` (or ``name`` is not ours)."""
    canonical = PARAMS.get(name.lower())
    value = value.strip()
    if canonical is None:
        return None
    if value == "" or value.lower() == "none":
        return canonical, ""
    if canonical == ADDRESS:
        return (canonical, value) if _valid_host(value) else None
    if canonical == PORT:
        ok = value.isdigit() and 1 <= int(value) <= 65535
        return (canonical, str(int(value))) if ok else None
    reason = REASONS.get(value.lower())
    return (canonical, reason) if reason else None


def _valid_host(host: str) -> bool:
    """An IP address (IPv6 with or without brackets) or a DNS name (13.8 domainname)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(
        0 < len(label) <= 63 and label.replace("-", "").isalnum()
        and not label.startswith("-") for label in labels)


def prune(params: dict[str, str]) -> None:
    """Drop cleared redirect parameters (set to ``""``) from a target's parameters."""
    for name in (ADDRESS, PORT, REASON):
        if params.get(name) == "":
            del params[name]


def target_address(target: Target) -> tuple[str, bool] | None:
    """``(TargetAddress, permanent)`` for logins to ``target``, or None (log in here)."""
    params = target.iscsi_params
    host = params.get(ADDRESS)
    if not host:
        return None
    host = host.strip("[]")
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{params.get(PORT, DEFAULT_PORT)}", params.get(REASON) == "Permanent"


def show_params(target: Target) -> str:
    """``key=value`` lines for ``--op show --mode target --tid N`` (none when unset)."""
    params = target.iscsi_params
    if not params.get(ADDRESS):
        return ""
    return (f"{ADDRESS}={params[ADDRESS]}\n{PORT}={params.get(PORT, DEFAULT_PORT)}\n"
            f"{REASON}={params.get(REASON, 'Temporary')}\n")


def drain_seconds(value: str) -> int | None:
    """The SECONDS of ``--name drain --value SECONDS`` (0..MAX_DRAIN), or None."""
    value = value.strip()
    if not value.isdigit() or int(value) > MAX_DRAIN:
        return None
    return int(value)


def drain(sessions: list[Session], within: int) -> int:
    """Ask every connection of ``sessions`` to log out within ``within`` seconds; those
    still open a second later are dropped. Returns the number of connections asked."""
    conns: list[TargetConnection] = [c for s in sessions for c in s.connections.values()]
    asked = request_logout(conns, within)
    if asked:
        log.info("draining: %d connection(s) asked to log out within %d s", len(asked), within)
        asyncio.get_running_loop().call_later(within + 1.0, _drop_left, sessions)
    return len(asked)


def _drop_left(sessions: list[Session]) -> None:
    left = [s for s in sessions if any(not c.closed for c in s.connections.values())]
    if left:
        log.info("draining: %d session(s) did not log out in time; dropped", len(left))
        end_sessions(left, "drained")
