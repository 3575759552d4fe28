"""A real iSCSI target inside a test suite, in one line.

>>> with pytgt.testing.serve(size=64 << 20) as t:   # doctest: +SKIP
...     subprocess.run(["iscsi-inq", t.url])

:func:`serve` runs a :class:`~pytgt.daemon.server.Daemon` on its own event loop
in a background thread, listening on 127.0.0.1 on an ephemeral port, with one
target and one or more LUNs, open to every initiator (or to CHAP users only). Leaving
the ``with`` block stops it. With ``faults=True`` every LU's store is wrapped in the
fault-injecting store (:mod:`pytgt.stores.faulty`): ``t.faults(lun)`` makes chosen LBA
ranges slow or fail, ``t.drop_connections()`` cuts the initiators off. The pytest
plugin (:mod:`pytgt.pytest_plugin`) hands out such targets as the ``iscsi_target``
fixture.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pytgt.stores.faulty import FaultStats, FaultyStore

DEFAULT_IQN = "iqn.2026-11.org.pytgt:test"
T = TypeVar("T")


@dataclass
class Faults:
    """Fault injection on one LU, in blocks (see :class:`~pytgt.stores.faulty.FaultPlan`).

    Each call replaces the previous plan; ``lba``/``blocks`` choose the range (default:
    the whole LU), ``ops`` the operations (``read``, ``write``, ``flush``, ``unmap``
    joined by ``+``), ``count`` how many faults before behaving again (0: no limit),
    ``after`` how many matching operations pass first.
    """

    target: ServedTarget
    store: FaultyStore
    block_size: int

    def eio(self, lba: int = 0, blocks: int | None = None, *, ops: str = "read+write",
            count: int = 0, after: int = 0) -> None:
        """Matching I/O fails: MEDIUM ERROR (unrecovered read error / write error)."""
        self._set("eio", lba, blocks, ops, count, after)

    def enospc(self, lba: int = 0, blocks: int | None = None, *, ops: str = "write",
               count: int = 0, after: int = 0) -> None:
        """Matching writes fail as a full thin pool: SPACE ALLOCATION FAILED."""
        self._set("enospc", lba, blocks, ops, count, after)

    def slow(self, delay: float, lba: int = 0, blocks: int | None = None, *,
             ops: str = "read+write", count: int = 0, after: int = 0) -> None:
        """Matching I/O waits ``delay`` seconds first (without blocking other I/O)."""
        self._set("slow", lba, blocks, ops, count, after, delay)

    def clear(self) -> None:
        """Stop injecting."""
        self.target.call(self.store.clear)

    @property
    def stats(self) -> FaultStats:
        """Operations seen, faults injected, operations delayed (live counters)."""
        return self.store.stats

    def _set(self, fault: str, lba: int, blocks: int | None, ops: str, count: int,
             after: int, delay: float = 0.0) -> None:
        bs = self.block_size
        length = None if blocks is None else blocks * bs
        self.target.call(lambda: self.store.set_fault(
            fault, ops=ops, count=count, after=after, delay=delay, offset=lba * bs,
            length=length))


@dataclass
class ServedTarget:
    """What :func:`serve` yields: where the target listens and how to reach it."""

    host: str
    port: int
    iqn: str
    lun: int
    daemon: Any = field(repr=False)
    loop: asyncio.AbstractEventLoop = field(repr=False)
    luns: list[int] = field(default_factory=list)
    chap: tuple[str, str] | None = None
    block_size: int = 512

    @property
    def portal(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """A libiscsi/QEMU URL of the (first) LUN: ``iscsi://127.0.0.1:PORT/IQN/LUN``,
        with ``user%secret@`` when the target asks for CHAP."""
        return self.url_for(self.lun)

    @property
    def urls(self) -> list[str]:
        """The URL of every LUN, in LUN order."""
        return [self.url_for(lun) for lun in self.luns or [self.lun]]

    def url_for(self, lun: int) -> str:
        cred = f"{self.chap[0]}%{self.chap[1]}@" if self.chap else ""
        return f"iscsi://{cred}{self.portal}/{self.iqn}/{lun}"

    def admin(self, request: dict[str, Any], timeout: float = 30.0) -> tuple[int, str]:
        """Run one management request (the dicts ``pytgtadm`` sends) on the target's loop."""
        rc, out = self.run(self.daemon.management.handle(request), timeout)
        return int(rc), str(out)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run a coroutine on the target's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Any, timeout: float = 30.0) -> Any:
        """Call ``fn()`` on the target's loop (where its objects live); returns its result."""
        async def body() -> Any:
            return fn()
        return self.run(body(), timeout)

    def store(self, lun: int | None = None) -> Any:
        """The backing store of a LU (the first by default)."""
        target = self.daemon.registry.by_name(self.iqn)
        return target.scsi.luns[self.lun if lun is None else lun].store

    def faults(self, lun: int | None = None) -> Faults:
        """The fault-injection handle of a LU; raises RuntimeError without ``faults=True``."""
        store = self.store(lun)
        if not isinstance(store, FaultyStore):
            raise RuntimeError("serve(..., faults=True) for fault injection")
        return Faults(self, store, self.block_size)

    def drop_connections(self) -> int:
        """Close every connection logged in to the target (as a network cut); returns how
        many. The initiators see the TCP connection end and may log in again."""
        def drop() -> int:
            mgmt = self.daemon.management
            conns = [c for s in mgmt.sessions_of(mgmt.registry.by_name(self.iqn))
                     for c in list(s.connections.values())]
            for conn in conns:
                conn.close("dropped by the test")
            return len(conns)
        return int(self.call(drop))


@contextmanager
def serve(backing: str | None = None, *, size: int = 64 << 20, bstype: str = "memory",
          iqn: str = DEFAULT_IQN, lun: int = 1, host: str = "127.0.0.1",
          params: str = "", timeout: float = 30.0, luns: int = 1,
          block_size: int = 512, chap: tuple[str, str] | None = None,
          thin: bool | None = None, faults: bool = False) -> Iterator[ServedTarget]:
    """Serve LUNs ``lun`` .. ``lun + luns - 1``: RAM disks of ``size`` bytes (``bstype``
    ``memory``; ``null`` discards writes), or the file/device ``backing`` (one LUN).

    ``block_size`` is the logical block size; ``chap=(user, secret)`` admits only that
    CHAP user (the URLs carry it); ``thin`` True/False sets ``thin_provisioning`` (default:
    the store's own); ``faults`` wraps each store for :meth:`ServedTarget.faults`.
    Raises RuntimeError if the target cannot be started or configured.
    """
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        from pytgt.daemon.server import Daemon

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
    numbers = list(range(lun, lun + luns))
    target = ServedTarget(bound_host, bound_port, iqn, lun, daemon, loop, numbers, chap,
                          block_size)
    try:
        lu_params = ",".join(filter(None, [params, _thin(thin)]))
        requests = [{"mode": "target", "op": "new", "tid": 1, "targetname": iqn}]
        requests += [_lu_request(n, backing, size, bstype, block_size, lu_params, faults)
                     for n in numbers]
        requests += _access(chap)
        for request in requests:
            rc, out = target.admin(request, timeout)
            if rc:
                raise RuntimeError(f"pytgt target setup failed: {out.strip()}")
        yield target
    finally:
        loop.call_soon_threadsafe(state["stop"].set)
        thread.join(timeout)
        loop.close()


def _thin(thin: bool | None) -> str:
    return "" if thin is None else f"thin_provisioning={int(thin)}"


def _lu_request(n: int, backing: str | None, size: int, bstype: str, block_size: int,
                params: str, faults: bool) -> dict[str, Any]:
    lu: dict[str, Any] = {"mode": "logicalunit", "op": "new", "tid": 1, "lun": n}
    if block_size != 512:
        lu["blocksize"] = block_size
    if faults:
        inner = "memory" if backing is None else "rdwr"
        lu.update(bstype="faulty", backing_store=backing or str(size),
                  bsopts=f"inner={inner}" + (f",size={size}" if backing is None else ""))
    elif backing is None:
        lu.update(bstype=bstype, backing_store=f"{bstype}:{size}", bsopts=f"size={size}")
    else:
        lu.update(backing_store=backing, bstype="rdwr" if bstype == "memory" else bstype)
    if params:
        lu["params"] = params
    return lu


def _access(chap: tuple[str, str] | None) -> list[dict[str, Any]]:
    bind: list[dict[str, Any]] = [
        {"mode": "target", "op": "bind", "tid": 1, "initiator_address": "ALL"}]
    if chap is None:
        return bind
    return [{"mode": "account", "op": "new", "user": chap[0], "password": chap[1]},
            {"mode": "account", "op": "bind", "tid": 1, "user": chap[0]}, *bind]
