"""Asynchronous Messages the daemon sends sessions it wants gone (RFC 7143 11.9.1).

- A graceful stop asks each connection to log out (AsyncEvent 1, Parameter3 the
  seconds it has);
- removing a target with sessions (``--force``) and the end of a stop tell each session
  that the target drops its connections (AsyncEvent 3, Time2Wait
  :data:`DROP_TIME2WAIT`, Time2Retain 0), and close them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytgt.iscsi.constants import AsyncEvent

if TYPE_CHECKING:
    from pytgt.iscsi.connection import TargetConnection
    from pytgt.iscsi.session import Session

DROP_TIME2WAIT = 2


def request_logout(conns: list[TargetConnection], within: int) -> list[TargetConnection]:
    """Ask each full feature phase connection to log out within ``within`` seconds
    (AsyncEvent 1, Parameter3); returns the connections asked."""
    asked: list[TargetConnection] = []
    for conn in conns:
        if conn.closed or not conn.full_feature:
            continue
        conn.send_async(AsyncEvent.LOGOUT_REQUEST, p3=within)
        if conn.wakeup is not None:
            conn.wakeup()  # the adapter drains and transmits
        asked.append(conn)
    return asked


def end_sessions(sessions: list[Session], reason: str) -> None:
    """Tell each session the target drops its connections, then close them."""
    for session in sessions:
        conns: list[TargetConnection] = list(session.connections.values())
        for conn in conns:
            conn.send_async(AsyncEvent.SESSION_DROP, p2=DROP_TIME2WAIT, p3=0)
            conn.close(reason)
