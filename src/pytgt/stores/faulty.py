"""A fault-injecting store (``--bstype faulty``) for robustness tests.

It wraps a ``memory`` or ``rdwr`` store and makes chosen operations fail or stall, so
the SCSI layer's error answers, task management during stuck I/O and recovery after
the fault clears can be tested without a broken disk.

``--bsopts`` (``,`` or ``;`` separated, as every store):

=============  ===============================================================
``inner``      ``memory`` (default when the path reads as a size or ``size=``
               is given) or ``rdwr`` (default otherwise)
``size``       the memory store's size (``64M``)
``fault``      ``none`` (default), ``eio``, ``enospc``, ``erofs``, ``slow``
               (only the delay), ``truncate`` (I/O reaching past ``at`` fails
               with ENXIO, as a device that shrank), ``short`` (a read returns
               fewer bytes than asked: a store bug the caller must survive),
               ``stuck`` (the delay, but cancelling the caller does not stop the
               operation: it completes later, as a pwrite in a thread would)
``ops``        which operations are hit: ``read``, ``write``, ``flush``,
               ``unmap`` joined by ``+`` (default: all)
``after``      let this many matching operations through first (default 0)
``count``      inject this many faults, then behave (default 0: no limit)
``delay``      seconds to stall each matching operation (``asyncio.sleep``)
``offset``     only I/O overlapping ``[offset, offset+length)`` matches
``length``     (bytes; default: the whole store)
``at``         the apparent end of the store for ``fault=truncate``
=============  ===============================================================

At run time: ``pytgtadm --op update --mode logicalunit --params fault=eio,ops=read``
(when the SCSI layer passes store parameters through, see :attr:`store_params`) or the
Python API :meth:`FaultyStore.set_fault` / :meth:`FaultyStore.clear`. Counters in
:attr:`FaultyStore.stats` tell tests what happened.
"""

from __future__ import annotations

import asyncio
import errno
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from pytgt.stores.base import (
    BackingStore,
    StoreCapability,
    StoreError,
    StoreIOError,
    parse_options,
    parse_size,
    quiesce,
)

STORE_OPS = frozenset({"read", "write", "flush", "unmap"})
FAULTS = {
    "none": None,
    "slow": None,
    "eio": errno.EIO,
    "enospc": errno.ENOSPC,
    "erofs": errno.EROFS,
    "truncate": errno.ENXIO,
    "short": None,
    "stuck": None,
}
PLAN_KEYS = frozenset({"fault", "ops", "after", "count", "delay", "offset", "length", "at"})


@dataclass(frozen=True)
class FaultPlan:
    """What to inject; ``FaultPlan()`` injects nothing."""

    fault: str = "none"
    ops: frozenset[str] = STORE_OPS
    after: int = 0
    count: int = 0
    delay: float = 0.0
    offset: int = 0
    length: int | None = None
    at: int | None = None

    def __post_init__(self) -> None:
        if self.fault not in FAULTS:
            raise StoreError(f"unknown fault {self.fault!r} (one of {', '.join(FAULTS)})")
        if not self.ops or not self.ops <= STORE_OPS:
            raise StoreError(f"bad ops {'+'.join(sorted(self.ops))!r} "
                             f"(any of {'+'.join(sorted(STORE_OPS))})")
        if self.after < 0 or self.count < 0 or self.delay < 0 or self.offset < 0:
            raise StoreError("after, count, delay and offset must not be negative")
        if self.fault == "truncate" and self.at is None:
            raise StoreError("fault=truncate needs at=BYTES")

    @classmethod
    def parse(cls, opts: dict[str, str], base: FaultPlan | None = None) -> FaultPlan:
        """``{"fault": "eio", "ops": "read"}`` -> plan (other fields from ``base``)."""
        changes: dict[str, Any] = {}
        try:
            for key, text in opts.items():
                if key == "fault":
                    changes[key] = text.strip().lower()
                elif key == "ops":
                    changes[key] = frozenset(o for o in text.replace("/", "+").split("+") if o)
                elif key in ("after", "count"):
                    changes[key] = int(text)
                elif key == "delay":
                    changes[key] = float(text)
                elif key in ("offset", "length", "at"):
                    changes[key] = parse_size(text)
                else:
                    raise StoreError(f"unknown faulty store option: {key}")
        except ValueError as exc:
            raise StoreError(f"bad faulty store option: {exc}") from None
        return replace(base or cls(), **changes)


@dataclass
class FaultStats:
    """What the store saw: operations by kind, faults injected, operations stalled."""

    ops: dict[str, int] = field(default_factory=lambda: dict.fromkeys(sorted(STORE_OPS), 0))
    faults: int = 0
    delayed: int = 0
    in_flight: int = 0


class FaultyStore:
    """A store that forwards to ``inner`` and injects the faults of its :class:`FaultPlan`."""

    name: ClassVar[str] = "faulty"
    #: ``--op update --params`` keys this store takes (the rest belong to the LU).
    store_params: ClassVar[frozenset[str]] = PLAN_KEYS

    def __init__(self, inner: BackingStore, plan: FaultPlan | None = None) -> None:
        self.inner = inner
        self.path = getattr(inner, "path", "")
        self.readonly = bool(getattr(inner, "readonly", False))
        self.stats = FaultStats()
        self._plan = plan or FaultPlan()
        self._matched = 0  # matching operations seen under the current plan
        self._injected = 0  # faults injected under the current plan
        self._stuck = 0.0  # the delay of the stuck operation about to start
        self._detached: set[asyncio.Future[Any]] = set()  # stuck operations still running

    @classmethod
    def open(cls, path: str, *, bsopts: str = "", bsoflags: str = "",
             size: int | None = None) -> FaultyStore:
        """Open the inner store and parse the fault options; raises :class:`StoreError`."""
        opts = parse_options(bsopts)
        inner_type = opts.pop("inner", None)
        inner_opts = {k: opts.pop(k) for k in ("size",) if k in opts}
        plan = FaultPlan.parse(opts)
        if inner_type is None:
            inner_type = "memory" if "size" in inner_opts or _is_size(path) else "rdwr"
        if inner_type == "memory":
            from pytgt.stores.memory import MemoryStore

            opts_text = ",".join(f"{k}={v}" for k, v in inner_opts.items())
            inner: BackingStore = MemoryStore.open(path, bsopts=opts_text, bsoflags=bsoflags,
                                                   size=size)
        elif inner_type == "rdwr":
            if inner_opts:
                raise StoreError("size= applies to inner=memory only")
            from pytgt.stores.rdwr import RdwrStore

            inner = RdwrStore.open(path, bsoflags=bsoflags)
        else:
            raise StoreError(f"faulty store: inner must be memory or rdwr, not {inner_type!r}")
        return cls(inner, plan)

    # -- control ----------------------------------------------------------------------
    @property
    def plan(self) -> FaultPlan:
        return self._plan

    def set_fault(self, fault: str = "eio", *, ops: str | set[str] | frozenset[str] = STORE_OPS,
                  after: int = 0, count: int = 0, delay: float = 0.0, offset: int = 0,
                  length: int | None = None, at: int | None = None) -> None:
        """Replace the plan (counters for ``after``/``count`` restart); raises StoreError."""
        op_set = frozenset(ops.split("+")) if isinstance(ops, str) else frozenset(ops)
        self._install(FaultPlan(fault, op_set, after, count, delay, offset, length, at))

    def clear(self) -> None:
        """Stop injecting: the store behaves like its inner store from now on."""
        self._install(FaultPlan())

    def update_params(self, params: dict[str, str]) -> None:
        """``--op update --params fault=...``: change the plan.

        Raises ValueError, changing nothing.
        """
        try:
            plan = FaultPlan.parse(params, self._plan)
        except StoreError as exc:
            raise ValueError(str(exc)) from None
        self._install(plan)

    def _install(self, plan: FaultPlan) -> None:
        self._plan, self._matched, self._injected = plan, 0, 0

    # -- the store interface ------------------------------------------------------------
    @property
    def size(self) -> int:
        return self.inner.size

    @property
    def capabilities(self) -> StoreCapability:
        return self.inner.capabilities

    async def read(self, offset: int, length: int) -> bytes | bytearray | memoryview:
        short = await self._enter("read", offset, length)
        try:
            data = await self._io(self.inner.read(offset, length))
        finally:
            self.stats.in_flight -= 1
        return memoryview(data)[: length // 2] if short else data

    async def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        await self._enter("write", offset, memoryview(data).nbytes)
        try:
            await self._io(self.inner.write(offset, data))
        finally:
            self.stats.in_flight -= 1

    async def flush(self) -> None:
        await self._enter("flush", 0, 0)
        try:
            await self._io(self.inner.flush())
        finally:
            self.stats.in_flight -= 1

    async def unmap(self, offset: int, length: int) -> None:
        await self._enter("unmap", offset, length)
        try:
            await self._io(self.inner.unmap(offset, length))
        finally:
            self.stats.in_flight -= 1

    async def allocation(self, offset: int, length: int) -> tuple[bool, int]:
        fn = getattr(self.inner, "allocation", None)
        if fn is None:
            return True, length
        result: tuple[bool, int] = await fn(offset, length)
        return result

    async def close(self) -> None:
        await self.inner.close()

    async def quiesce(self) -> None:
        """Wait for the ``stuck`` operations that outlived their callers, then the inner store."""
        if self._detached:
            await asyncio.wait(set(self._detached))
        await quiesce(self.inner)

    # -- injection ----------------------------------------------------------------------
    async def _io(self, coro: Any) -> Any:
        """Run one inner operation; a ``stuck`` one runs to its end even if we are cancelled."""
        delay, self._stuck = self._stuck, 0.0
        if not delay:
            return await coro
        self.stats.delayed += 1

        async def late() -> Any:
            try:
                await asyncio.sleep(delay)
                return await coro
            finally:
                self.stats.in_flight -= 1

        self.stats.in_flight += 1  # until the shielded operation really ends
        op = asyncio.ensure_future(late())
        self._detached.add(op)
        op.add_done_callback(self._detached.discard)
        return await asyncio.shield(op)

    async def _enter(self, op: str, offset: int, length: int) -> bool:
        """Count, stall and fail as planned; True when a read must come back short.

        On return the operation counts as in flight (the caller decrements).
        """
        self.stats.ops[op] += 1
        plan = self._plan
        if not self._matches(plan, op, offset, length):
            self.stats.in_flight += 1
            return False
        self._matched += 1
        if self._matched <= plan.after or (plan.count and self._injected >= plan.count):
            self.stats.in_flight += 1
            return False
        self._injected += 1
        if plan.fault == "stuck":
            self._stuck = plan.delay  # taken by _io right after this returns
            self.stats.in_flight += 1
            return False
        self.stats.in_flight += 1  # a stalled operation is in flight while it waits
        try:
            if plan.delay:
                self.stats.delayed += 1
                await asyncio.sleep(plan.delay)
            err = FAULTS[plan.fault]
            if err is not None:
                self.stats.faults += 1
                raise StoreIOError(err, f"injected {plan.fault} on {op} at {offset}+{length}")
        except BaseException:
            self.stats.in_flight -= 1
            raise
        short = plan.fault == "short" and op == "read" and length > 0
        if short:
            self.stats.faults += 1
        return short

    def _matches(self, plan: FaultPlan, op: str, offset: int, length: int) -> bool:
        if plan.fault == "none" and not plan.delay:
            return False
        if op not in plan.ops:
            return False
        if plan.fault == "truncate":
            return op != "flush" and offset + length > (plan.at or 0)
        if op == "flush" or (plan.offset == 0 and plan.length is None):
            return True
        end = plan.offset + plan.length if plan.length is not None else self.size
        return offset < end and offset + max(length, 1) > plan.offset


def _is_size(text: str) -> bool:
    try:
        parse_size(text)
    except StoreError:
        return False
    return True
