"""A session with two connections (MaxConnections=2, RFC 7143 5.3.4): data written on one
connection reads back on the other; the second login carries only per-connection keys
and the second connection works by the session's values of the session-wide ones."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

import pytgt
from pytgt.initiator import Initiator
from pytgt.iscsi.keys import SESSION_WIDE


def test_two_connections_one_session(tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(8 << 20)

    async def body(t: pytgt.testing.ServedTarget) -> None:
        isid = 0x23D000000042
        a = await Initiator.login(t.host, t.port, target=t.iqn, isid=isid, max_connections=2)
        try:
            assert a.params.max_connections == 2
            payload = os.urandom(64 << 10)
            await a.write16(1, 8, payload)
            # pytgt.initiator numbers commands per connection, so each connection is used
            # in turn: b starts from the session's ExpCmdSN given in its Login Response.
            b = await Initiator.login(t.host, t.port, target=t.iqn, isid=isid,
                                      tsih=a.conn.tsih, cid=1, session=a.params)
            assert await b.read16(1, 8, len(payload) // 512) == payload
            rc, out = t.admin({"mode": "target", "op": "show"})
            assert rc == 0 and out.count("Connection: ") == 2, out
            await b.logout()  # closes the session: both connections
            assert t.admin({"mode": "target", "op": "show"})[1].count("Connection: ") == 0
        finally:
            a.abort()

    with pytgt.serve(str(disk)) as t:
        rc, out = t.admin({"mode": "target", "op": "update", "tid": 1,
                           "params": "MaxConnections=2"})
        assert rc == 0, out
        asyncio.run(asyncio.wait_for(body(t), 30))


# target params, our proposals, the session values that result (RFC 7143 13.10-13.14)
SESSIONS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "no-immediate-data": (
        "ImmediateData=No,InitialR2T=Yes,MaxBurstLength=65536", {},
        {"immediate_data": False, "initial_r2t": True, "max_burst_length": 65536}),
    "small-first-burst": (
        "ImmediateData=Yes,InitialR2T=No,FirstBurstLength=8192,MaxBurstLength=65536",
        {"initial_r2t": False},
        {"immediate_data": True, "initial_r2t": False, "first_burst_length": 8192}),
}


@pytest.mark.parametrize("name", list(SESSIONS))
def test_second_connection_works_by_the_session_values(name: str) -> None:
    """The target negotiates session-wide values other than the RFC defaults; a second
    connection that assumed the defaults (e.g. ImmediateData=Yes when the session
    agreed No) would have its writes rejected. Writes and reads through it succeed."""
    params, options, expected = SESSIONS[name]

    async def body(t: pytgt.testing.ServedTarget) -> None:
        isid = 0x23D000000043
        a = await Initiator.login(t.host, t.port, target=t.iqn, isid=isid, max_connections=2,
                                  **options)
        b = None
        try:
            assert {k: getattr(a.params, k) for k in expected} == expected
            first = os.urandom(64 << 10)
            await a.write16(1, 0, first)
            b = await Initiator.login(t.host, t.port, target=t.iqn, isid=isid,
                                      tsih=a.conn.tsih, cid=1, session=a.params, **options)
            assert {k: getattr(b.params, k) for k in SESSION_WIDE} == {
                k: getattr(a.params, k) for k in SESSION_WIDE}
            assert await b.read16(1, 0, len(first) // 512) == first
            for lba, size in ((1024, 4096), (2048, 256 << 10)):  # one burst; several
                payload = os.urandom(size)
                await b.write16(1, lba, payload)
                assert await b.read16(1, lba, size // 512) == payload
            a.conn.cmd_sn = b.conn.cmd_sn  # back to a, next in the session's CmdSN order
            assert await a.read16(1, 2048, (256 << 10) // 512) == payload
            await a.logout()  # closes the session: both connections
        finally:
            a.abort()
            if b is not None:
                b.abort()

    with pytgt.serve(size=8 << 20) as t:
        rc, out = t.admin({"mode": "target", "op": "update", "tid": 1,
                           "params": f"MaxConnections=2,{params}"})
        assert rc == 0, out
        asyncio.run(asyncio.wait_for(body(t), 30))
