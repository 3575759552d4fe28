"""Graceful stop (pytgtd on SIGTERM): no acknowledged write is lost, nothing waits forever.

Order, every step bounded:

1. the portals stop accepting (the daemon closes its servers before calling us);
2. commands already running get up to ``drain`` seconds to finish and be answered;
3. every connection in full feature phase gets an Asynchronous Message *target requests
   Logout* (AsyncEvent 1, RFC 7143 11.9.1) with Parameter3 = ``logout`` seconds, the time
   the initiator has to log out; commands it sends meanwhile are still served;
4. we wait up to ``logout`` + 1 seconds for those connections to close (their Logout
   Responses are sent by the core as usual);
5. whoever is left is told the target drops the session (AsyncEvent 3) and closed;
   their unanswered commands are not acknowledged, but the store operations they
   started get up to ``drain`` seconds to end. The daemon then flushes (fdatasync)
   and closes every store.

A write is acknowledged only once its SCSI Response is sent, which happens after the
store took the data (and after fdatasync for FUA or SYNCHRONIZE CACHE), so the final
flush makes every acknowledged write durable, FUA or not.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytgt.daemon.async_messages import end_sessions, request_logout
from pytgt.daemon.policy import RegistryPolicy

if TYPE_CHECKING:
    from pytgt.iscsi.connection import TargetConnection
    from pytgt.net.portal import IscsiService

log = logging.getLogger("pytgt.daemon.shutdown")
POLL = 0.02  # seconds between checks whether the asked connections have closed


@dataclass
class ShutdownSettings:
    """Bounds of a graceful stop (see the module docstring)."""

    drain: float = 5.0  # seconds running commands get, before and after the logouts
    logout: int = 2  # Parameter3 of the logout request, in seconds


async def graceful(service: IscsiService, settings: ShutdownSettings) -> None:
    """Drain, ask for logouts, wait, drain, drop the rest (steps 2-5 above)."""
    await _wait_running(service, settings.drain)
    conns = [p.conn for p in list(service.connections) if p.conn is not None]
    asked = request_logout(conns, settings.logout)
    if asked:
        log.info("asked %d connection(s) to log out within %d s", len(asked), settings.logout)
        left = await _wait_closed(asked, settings.logout + 1.0)
        if left:
            log.info("%d connection(s) did not log out in time", left)
    end_sessions(list(service.sessions.sessions.values()), "target shutting down")
    for proto in list(service.connections):
        if proto.conn is not None:
            proto.conn.close("target shutting down")
    await _wait_running(service, settings.drain)  # no store is closed under an operation


def _running(service: IscsiService) -> set[asyncio.Future[None]]:
    """Commands waiting on I/O in the task sets of every target."""
    policy = service.policy
    assert isinstance(policy, RegistryPolicy)
    return {asyncio.ensure_future(t.runner.wait()) for target in policy.registry.targets.values()
            for t in target.scsi.running() if t.runner is not None and not t.runner.ended}


async def _wait_running(service: IscsiService, timeout: float) -> None:
    """Wait for the commands running now (not those arriving later) to finish."""
    pending = _running(service)
    if pending:
        _done, still = await asyncio.wait(pending, timeout=timeout)
        if still:
            log.warning("%d command(s) still running after %g s", len(still), timeout)


async def _wait_closed(conns: list[TargetConnection], timeout: float) -> int:
    """Wait until every connection in ``conns`` closed; returns how many did not."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (left := sum(1 for c in conns if not c.closed)) and loop.time() < deadline:
        await asyncio.sleep(POLL)
    return left
