"""A session with two connections (MaxConnections=2, RFC 7143 5.3.4): data written on one
connection reads back on the other; the second login carries only per-connection keys."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytgt
from pytgt.initiator import Initiator


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
                                      tsih=a.conn.tsih, cid=1)
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
