"""Target-initiated traffic end to end: NOP-In pings, Async logout requests, dropped sessions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pytgt.initiator import ConnectionLost
from pytgt.iscsi.constants import AsyncEvent
from pytgt.net.portal import PortalOptions

from .util import clear_unit_attentions, login, run, target, target_connections


def test_target_nop_in_pings_are_answered(tmp_path: Path) -> None:
    """With nop_count=1 the target drops a connection that misses one ping."""

    async def body() -> None:
        opts = PortalOptions(nop_interval=0.2, nop_count=1)
        async with target(tmp_path, options=opts) as (d, port), await login(port) as s:
            await asyncio.sleep(1.5)  # ~7 pings, each answered by the initiator core
            assert not s.closed, s.closed_reason
            await clear_unit_attentions(s)
            assert await s.nop(b"still here") == b"still here"
    run(body)


def test_async_logout_request_makes_initiator_log_out(tmp_path: Path) -> None:
    async def body() -> None:
        async with target(tmp_path) as (d, port):
            s = await login(port)
            (proto,) = target_connections(d)
            proto.conn.send_async(AsyncEvent.LOGOUT_REQUEST, p3=5)
            proto._transmit()
            await asyncio.wait_for(s._closed.wait(), 5)
            assert [m.async_event for m in s.async_events] == [AsyncEvent.LOGOUT_REQUEST]
            assert target_connections(d) == [] or all(p.conn.closed
                                                        for p in target_connections(d))
            with pytest.raises(ConnectionLost):
                await s.nop()
    run(body)


def test_session_dropped_by_target_fails_fast(tmp_path: Path) -> None:
    async def body() -> None:
        async with target(tmp_path) as (d, port):
            s = await login(port)
            await clear_unit_attentions(s)
            pending = asyncio.ensure_future(s.nop(immediate=False, timeout=0.01))
            await asyncio.gather(pending, return_exceptions=True)
            for proto in target_connections(d):
                proto.conn.close("test drops the session")
            await asyncio.wait_for(s._closed.wait(), 5)
            with pytest.raises(ConnectionLost):
                await s.read16(1, 0, 1)
            await s.logout()  # idempotent, does not hang
    run(body)
