"""An in-process target for end-to-end tests of the initiator (127.0.0.1, ephemeral port)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pytgt.initiator import Initiator, InitiatorSession, ScsiError

IQN = "iqn.2026-11.org.pytgt:e2e"
INITIATOR = "iqn.2026-11.org.pytgt:test"
SIZE = 64 << 20
TIMEOUT = 60.0


def run(body: Callable[[], Awaitable[Any]], timeout: float = TIMEOUT) -> Any:
    """Run one test body on a fresh loop, bounded by ``timeout``."""

    async def bounded() -> Any:
        return await asyncio.wait_for(body(), timeout)

    return asyncio.run(bounded())


async def admin(daemon: Any, request: dict[str, Any]) -> None:
    rc, out = await asyncio.wait_for(daemon.management.handle(request), 10)
    assert rc == 0, f"{request} -> {rc}: {out}"


@asynccontextmanager
async def target(tmp_path: Path, *, bstype: str = "rdwr", size: int = SIZE,
                 params: dict[str, str] | None = None,
                 acl: str = "ALL", options: Any = None) -> AsyncIterator[tuple[Any, int]]:
    """A Daemon with target tid 1 (IQN) and LUN 1; yields (daemon, port).

    ``options`` is a :class:`pytgt.net.portal.PortalOptions` (NOP-In interval...).
    """
    from pytgt.daemon.server import Daemon

    async with Daemon([("127.0.0.1", 0)], options=options) as d:
        await admin(d, {"mode": "target", "op": "new", "tid": 1, "targetname": IQN})
        lu: dict[str, Any] = {"mode": "logicalunit", "op": "new", "tid": 1, "lun": 1}
        if bstype == "rdwr":
            path = tmp_path / "disk.img"
            with open(path, "wb") as f:
                f.truncate(size)
            lu["backing_store"] = str(path)
        else:
            lu.update(bstype=bstype, backing_store=f"{bstype}:{size}", bsopts=f"size={size}")
        await admin(d, lu)
        for key, value in (params or {}).items():
            await admin(d, {"mode": "target", "op": "update", "tid": 1, "name": key,
                            "value": value})
        await admin(d, {"mode": "target", "op": "bind", "tid": 1, "initiator_address": acl})
        yield d, d.portals[0][1]


async def login(port: int, **kw: Any) -> InitiatorSession:
    kw.setdefault("target", IQN)
    kw.setdefault("initiator_name", INITIATOR)
    kw.setdefault("timeout", 10.0)
    return await Initiator.login("127.0.0.1", port, **kw)


async def clear_unit_attentions(s: InitiatorSession, lun: int = 1) -> None:
    """TEST UNIT READY until GOOD: the first command after login reports POWER ON/RESET."""
    for _ in range(4):
        try:
            await s.test_unit_ready(lun)
            return
        except ScsiError as exc:
            if exc.sense_key != 6:  # UNIT ATTENTION
                raise
    await s.test_unit_ready(lun)


def target_connections(daemon: Any) -> list[Any]:
    """The target-side protocol objects of every open connection."""
    return [p for p in daemon.service.connections if p.conn is not None]
