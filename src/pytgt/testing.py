"""A real iSCSI target inside a test suite, in one line.

>>> with pytgt.testing.serve(size=64 << 20) as t:   # doctest: +SKIP
...     subprocess.run(["iscsi-inq", t.url])

:func:`serve` runs a :class:`~pytgt.daemon.server.Daemon` on its own event loop
in a background thread, listening on 127.0.0.1 on an ephemeral port, with one
target and one LUN, open to every initiator. Leaving the ``with`` block stops it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

DEFAULT_IQN = "iqn.2026-11.org.pytgt:test"


@dataclass
class ServedTarget:
    """What :func:`serve` yields: where the target listens and how to reach it."""

    host: str
    port: int
    iqn: str
    lun: int
    daemon: Any = field(repr=False)
    loop: asyncio.AbstractEventLoop = field(repr=False)

    @property
    def portal(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """A libiscsi/QEMU URL of the LUN: ``iscsi://127.0.0.1:PORT/IQN/LUN``."""
        return f"iscsi://{self.portal}/{self.iqn}/{self.lun}"

    def admin(self, request: dict[str, Any], timeout: float = 30.0) -> tuple[int, str]:
        """Run one management request (the dicts ``pytgtadm`` sends) on the target's loop."""
        fut = asyncio.run_coroutine_threadsafe(self.daemon.management.handle(request), self.loop)
        rc, out = fut.result(timeout)
        return int(rc), str(out)


@contextmanager
def serve(backing: str | None = None, *, size: int = 64 << 20, bstype: str = "memory",
          iqn: str = DEFAULT_IQN, lun: int = 1, host: str = "127.0.0.1",
          params: str = "", timeout: float = 30.0) -> Iterator[ServedTarget]:
    """Serve one LUN (a RAM disk of ``size`` bytes, or the file/device ``backing``).

    Raises RuntimeError if the target cannot be started or configured.
    """
    from pytgt.daemon.server import Daemon

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        daemon = Daemon([(host, 0)])
        stop = asyncio.Event()
        state["daemon"], state["stop"] = daemon, stop
        try:
            await daemon.start()
        except BaseException as exc:  # reported to the caller's thread
            state["error"] = exc
            ready.set()
            return
        ready.set()
        await stop.wait()
        await daemon.stop()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),),
                              name="pytgt-serve", daemon=True)
    thread.start()
    if not ready.wait(timeout) or "error" in state:
        raise RuntimeError(f"pytgt target did not start: {state.get('error')!r}")
    daemon = state["daemon"]
    bound_host, bound_port = daemon.portals[0]
    target = ServedTarget(bound_host, bound_port, iqn, lun, daemon, loop)
    try:
        lu: dict[str, Any] = {"mode": "logicalunit", "op": "new", "tid": 1, "lun": lun}
        if backing is None:
            lu.update(bstype=bstype, backing_store=f"{bstype}:{size}", bsopts=f"size={size}")
        else:
            lu.update(backing_store=backing, bstype="rdwr" if bstype == "memory" else bstype)
        if params:
            lu["params"] = params
        for request in ({"mode": "target", "op": "new", "tid": 1, "targetname": iqn}, lu,
                        {"mode": "target", "op": "bind", "tid": 1, "initiator_address": "ALL"}):
            rc, out = target.admin(request, timeout)
            if rc:
                raise RuntimeError(f"pytgt target setup failed: {out.strip()}")
        yield target
    finally:
        loop.call_soon_threadsafe(state["stop"].set)
        thread.join(timeout)
        loop.close()
