"""One RBD image's reservations and gateways, kept in RADOS (``scsi.shared.SharedState``).

Every pytgtd that serves the image (a *gateway*, one portal group tag each) keeps
the same state in one RADOS object beside the image, ``pytgt.lu.<image id>``:

- the persistent reservations (SPC-4 5.9, ``scsi.pr_state``) and the SPC-2 RESERVE
  holder (an I_T nexus key, which names the gateway's portal group);
- the gateways: portal group tag, RADOS client address (for fencing) and instance id.

A change is a read-modify-write guarded by the object's version (``assert_version``:
another gateway's change in between makes this one read and run again), so changes
through different gateways are serialized by the OSD. Once stored, the new state and
the unit attentions it raised go to each other gateway as a RADOS notify on that
gateway's own object (``pytgt.lu.<id>.gw<tpgt>``), and the command completes only
when each has applied it (acknowledged) or has been *fenced*: a gateway that does not
answer within ``notify_timeout`` (10 s: killed, frozen, cut off) is blocklisted
by its RADOS address, so it can no longer touch the image, and removed from the list.
A PREEMPT through gateway B therefore fences a registrant on gateway A before B
answers GOOD.

ALUA (SPC-4 5.16): each gateway is one target port group; the gateway with the lowest
portal group tag among those listed is active/optimized, the others
active/non-optimized (see ARCHITECTURE.md, "Several gateways"). A gateway that nobody
asks anything of would never be found dead, so each gateway also pings those that
outrank it (lower tags) every ``heartbeat`` seconds: one that does not answer is fenced
and dropped like any other, and the next tag takes over as active/optimized while the
hosts' I/O goes on through the survivors.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pytgt.scsi import pr_state
from pytgt.scsi.alua import (
    ASYMMETRIC_ACCESS_STATE_CHANGED,
    AccessState,
    PortGroup,
    StatusCode,
    TargetPortGroups,
)
from pytgt.scsi.pr import PersistentReservations, notify_registrant
from pytgt.scsi.sense import Asc

if TYPE_CHECKING:
    from pytgt.scsi.lu import LogicalUnit

log = logging.getLogger("pytgt.stores.rbd")
T = TypeVar("T")
_CAS_RETRIES = 64
_BLOCKLIST_SECONDS = 24 * 3600
# How long the OSD keeps a watch whose client stopped pinging. Liveness is decided by
# notify acknowledgements, not by this: it only spares a busy gateway its watch.
_WATCH_SECONDS = 30
# What a notify to another gateway came to (RadosSharedState._notify_outcome).
_ACKED, _SILENT, _NOBODY, _FAILED = "acked", "silent", "nobody", "failed"


def _empty_state() -> dict[str, Any]:
    return {"pr": pr_state.to_dict(PersistentReservations()), "spc2": None, "gateways": [],
            "alua": {}}


@dataclass(frozen=True)
class Gateway:
    """One pytgtd serving the image."""

    tpgt: int
    addr: str  # RADOS client address, what blocklisting fences
    instance: int  # RADOS global id (diagnostics)

    def as_dict(self) -> dict[str, Any]:
        return {"tpgt": self.tpgt, "addr": self.addr, "instance": self.instance}


def _gateways(state: dict[str, Any]) -> list[Gateway]:
    return [Gateway(int(g["tpgt"]), str(g["addr"]), int(g["instance"]))
            for g in state.get("gateways", [])]


class RadosSharedState:
    """``lu.shared`` for a LU on an RBD image: see the module docstring.

    ``cluster`` is the store's ``rados.Rados`` (so blocklisting this gateway also stops
    its image I/O), ``pool`` the image's pool, ``image_id`` its id. Call :meth:`start`
    once the LU is in its target, :meth:`stop` before its store closes.
    """

    def __init__(self, cluster: Any, pool: str, image_id: str, lu: LogicalUnit, tpgt: int,
                 notify_timeout: float = 10.0, heartbeat: float = 5.0) -> None:
        self.cluster = cluster
        self.pool = pool
        self.lu = lu
        self.tpgt = tpgt
        self.notify_timeout = notify_timeout
        self.heartbeat = heartbeat  # seconds between pings of the outranking gateways
        self.object = f"pytgt.lu.{image_id}"
        self.loop = asyncio.get_running_loop()
        self.version = -1  # of the state last loaded
        self.gateways: list[Gateway] = []
        self.alua = TargetPortGroups(None, tpgt)
        self.alua.groups.clear()  # every group, this one too, comes from the shared list
        self._ioctx: Any = None
        self._watch: Any = None
        self._io = threading.Lock()  # get_last_version is per-ioctx: one op at a time
        self._lock = asyncio.Lock()  # this gateway's updates, one at a time
        self._background: set[asyncio.Task[Any]] = set()
        self._me: Gateway | None = None
        self._closed = False
        self._watchdog: asyncio.Task[None] | None = None

    def gateway_object(self, tpgt: int) -> str:
        return f"{self.object}.gw{tpgt}"

    # Life cycle.
    async def start(self) -> None:
        """Watch this gateway's object, join the gateway list, and fence listed gateways
        that no longer answer. If no other gateway is alive and the last REGISTER had
        APTPL=0, the reservations are dropped (the LU powers on, SPC-4 5.9.5)."""
        await asyncio.to_thread(self._open)
        me = self._me
        assert me is not None
        self.lu.alua = self.alua
        listed = _gateways(await self._read_state())
        peers = [g for g in listed if g.tpgt != self.tpgt]
        answers = await asyncio.gather(*(self._alive(g) for g in peers))
        dead = [g for g, ok in zip(peers, answers, strict=True) if not ok]
        # An earlier run of this gateway (same tag, crashed) must never come back.
        earlier = [g for g in listed if g.tpgt == self.tpgt and g.addr != me.addr]
        await self._fence(dead + earlier)
        alone = len(dead) == len(peers)

        def join() -> None:
            pass

        def change(state: dict[str, Any]) -> None:
            gws = [g for g in _gateways(state) if g.tpgt != self.tpgt and g not in dead]
            state["gateways"] = [g.as_dict() for g in sorted([*gws, me],
                                                             key=lambda g: g.tpgt)]
            state["alua"] = {}  # the failover rule decides again
            if alone and not state["pr"].get("aptpl", False):
                state["pr"] = pr_state.to_dict(PersistentReservations())
                state["spc2"] = None

        await self._update(join, change)
        self.lu.pr.saver = _kept_in_rados  # PTPL_C=1: the state outlives every gateway
        if self.heartbeat > 0:
            self._watchdog = asyncio.ensure_future(self._watch_outranking())

    def _open(self) -> None:
        self._ioctx = self.cluster.open_ioctx(self.pool)
        addr = str(self.cluster.get_addrs()).strip("[]'\" ")
        self._me = Gateway(self.tpgt, addr, int(self.cluster.get_instance_id()))
        own = self.gateway_object(self.tpgt)
        self._ioctx.write_full(own, b"")
        self._watch = self._ioctx.watch(own, self._on_notify, self._on_watch_error,
                                        _WATCH_SECONDS)

    async def stop(self) -> None:
        """Leave the gateway list and stop watching (a clean shutdown: not fenced)."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        for task in list(self._background):
            await asyncio.wait({task}, timeout=self.notify_timeout * 2)

        def leave(state: dict[str, Any]) -> None:
            state["gateways"] = [g.as_dict() for g in _gateways(state) if g.tpgt != self.tpgt]
            state["alua"] = {}  # the failover rule decides again

        try:
            await self._update(lambda: None, leave)
        except Exception as exc:  # the cluster is gone: nothing to tell it
            log.warning("%s: leaving the gateway list failed: %s", self.object, exc)
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        self._closed = True  # the watchdog fences nobody from now on
        if self._watch is not None:
            with contextlib.suppress(Exception):
                self._watch.close()
            self._watch = None
        if self._ioctx is not None:
            self._ioctx.close()
            self._ioctx = None

    # scsi.shared.SharedState.
    async def update(self, change: Callable[[], T]) -> T:
        return await self._update(change, None)

    async def refresh(self) -> None:
        async with self._lock:
            state, version = await asyncio.to_thread(self._read)
            self._load(state, version)

    def forget(self, change: Callable[[], object]) -> None:
        task = asyncio.ensure_future(self._forget(change))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def reset(self) -> None:
        message = json.dumps({"reset": True})
        peers = [g for g in self.gateways if g.tpgt != self.tpgt]
        answers = await asyncio.gather(*(self._notify(g, message) for g in peers))
        dead = [g for g, ok in zip(peers, answers, strict=True) if not ok]
        if dead:
            async with self._lock:
                await self._fence(dead)
                await self._drop(dead)

    async def _forget(self, change: Callable[[], object]) -> None:
        try:
            await self._update(change, None)
        except Exception as exc:
            log.warning("%s: %s", self.object, exc)

    # The read-modify-write.
    async def _update(self, change: Callable[[], T],
                      edit: Callable[[dict[str, Any]], None] | None) -> T:
        async with self._lock:
            await self._check_watch()
            for _ in range(_CAS_RETRIES):
                state, version = await asyncio.to_thread(self._read)
                self._load(state, version)
                before = self._dump(state)
                pr = self.lu.pr
                pr.outbox = []
                try:
                    result = change()
                finally:
                    outbox, pr.outbox = pr.outbox, None
                after = self._dump(state)
                if edit is not None:
                    edit(after)
                if after == before and not outbox:
                    return result
                new_version = await asyncio.to_thread(self._write, after, version)
                if new_version is None:
                    continue  # another gateway changed it first: run again on its state
                self._load(after, new_version)
                for rid, asc, ascq in outbox:
                    notify_registrant(self.lu, rid, (asc, ascq))
                await self._announce(after, new_version, outbox)
                return result
            raise OSError(errno.EBUSY, f"{self.object}: too many concurrent changes")

    def _read(self) -> tuple[dict[str, Any], int]:
        import rados

        with self._io:
            try:
                data = self._ioctx.read(self.object, 1 << 22)
            except rados.ObjectNotFound:
                return _empty_state(), 0
            version = int(self._ioctx.get_last_version())
        return (json.loads(data) if data else _empty_state()), version

    async def _read_state(self) -> dict[str, Any]:
        return (await asyncio.to_thread(self._read))[0]

    def _write(self, state: dict[str, Any], version: int) -> int | None:
        """Store ``state`` if the object is still at ``version``; the new version, or
        None if it changed meanwhile."""
        import rados

        data = json.dumps(state, sort_keys=True).encode()
        with self._io:
            op = self._ioctx.create_write_op()
            try:
                if version == 0:
                    op.new(rados.LIBRADOS_CREATE_EXCLUSIVE)
                else:
                    op.assert_version(version)
                op.write_full(data)
                try:
                    self._ioctx.operate_write_op(op, self.object)
                except rados.Error as exc:
                    if getattr(exc, "errno", None) in (errno.EOVERFLOW, errno.ERANGE,
                                                       errno.EEXIST):
                        return None
                    raise
                return int(self._ioctx.get_last_version())
            finally:
                self._ioctx.release_write_op(op)

    def _dump(self, state: dict[str, Any]) -> dict[str, Any]:
        """``state`` with this LU's current reservations in it."""
        out = dict(state)
        out["pr"] = pr_state.to_dict(self.lu.pr)
        out["spc2"] = self.lu.reservation
        out["alua"] = {str(g.group_id): int(g.state) for g in self.alua.groups.values()
                       if g.status == StatusCode.ALTERED_BY_SET_TARGET_PORT_GROUPS}
        return out

    def _load(self, state: dict[str, Any], version: int) -> None:
        """Make ``state`` this LU's (unless an newer one is loaded already)."""
        if version < self.version:
            return
        self.version = version
        pr_state.load_into(self.lu.pr, state["pr"])
        self.lu.reservation = state.get("spc2")
        self._set_gateways(_gateways(state), state.get("alua", {}))

    def _set_gateways(self, gateways: list[Gateway], explicit: dict[str, int]) -> None:
        """One target port group per gateway; the lowest tag is active/optimized, the
        others active/non-optimized, unless SET TARGET PORT GROUPS chose (``explicit``).
        A group made active/optimized that way is the owner: the groups it did not name
        become active/non-optimized, so hosts keep to one gateway. (Linux's scsi_dh_alua
        sends such an STPG through a non-optimized path when dm-multipath fails over to
        it; without this, the old owner would also stay optimized, and once its path
        came back the host would spread its I/O over both gateways.)"""
        self.gateways = gateways
        tags = sorted({g.tpgt for g in gateways} | {self.tpgt})
        chosen = sorted(int(t) for t, s in explicit.items()
                        if s == AccessState.ACTIVE_OPTIMIZED and int(t) in tags)
        owner = chosen[0] if chosen else tags[0]
        changed = False
        groups = self.alua.groups
        for tag in tags:
            status = StatusCode.ALTERED_BY_IMPLICIT_BEHAVIOR
            state = (AccessState.ACTIVE_OPTIMIZED if tag == owner
                     else AccessState.ACTIVE_NON_OPTIMIZED)
            if str(tag) in explicit:
                state = AccessState(explicit[str(tag)])
                status = StatusCode.ALTERED_BY_SET_TARGET_PORT_GROUPS
            group = groups.get(tag)
            if group is None:
                group = groups[tag] = PortGroup(tag, {tag}, state)
            elif group.state != state:
                group.state, group.status = state, status
                changed = True
            if str(tag) in explicit:
                group.status = status
            elif group.status == StatusCode.ALTERED_BY_SET_TARGET_PORT_GROUPS:
                group.status = StatusCode.ALTERED_BY_IMPLICIT_BEHAVIOR
            group.preferred = tag == owner
        for tag in [t for t in groups if t not in tags]:
            del groups[tag]
        self.alua.restricted = any(g.state not in (AccessState.ACTIVE_OPTIMIZED,
                                                   AccessState.ACTIVE_NON_OPTIMIZED)
                                   for g in groups.values())
        if changed:  # SPC-4 5.16.2.8: every I_T nexus is told
            self.lu.ua_add_all(self.lu.nexus_keys, ASYMMETRIC_ACCESS_STATE_CHANGED)

    # Telling the other gateways, and fencing those that do not answer.
    async def _announce(self, state: dict[str, Any], version: int,
                        outbox: list[tuple[str, int, int]]) -> None:
        message = json.dumps({"version": version, "state": state, "ua": outbox})
        peers = [g for g in _gateways(state) if g.tpgt != self.tpgt]
        answers = await asyncio.gather(*(self._notify(g, message) for g in peers))
        dead = [g for g, ok in zip(peers, answers, strict=True) if not ok]
        if dead:
            await self._fence(dead)
            await self._drop(dead)

    async def _drop(self, dead: list[Gateway]) -> None:
        """Take fenced gateways off the list (the caller holds ``_lock``)."""
        for _ in range(_CAS_RETRIES):
            current, version = await asyncio.to_thread(self._read)
            current["gateways"] = [g.as_dict() for g in _gateways(current) if g not in dead]
            current["alua"] = {}  # the failover rule decides again
            new_version = await asyncio.to_thread(self._write, current, version)
            if new_version is not None:
                self._load(current, new_version)
                return

    async def _alive(self, gateway: Gateway) -> bool:
        return await self._notify(gateway, json.dumps({"ping": True}))

    async def _notify(self, gateway: Gateway, message: str) -> bool:
        """Notify one gateway; True once it acknowledged (it has applied the message)."""
        return await self._notify_outcome(gateway, message) == _ACKED

    async def _notify_outcome(self, gateway: Gateway, message: str) -> str:
        """Notify one gateway: :data:`_ACKED`, :data:`_SILENT` (it did not answer in
        time, or nobody watches its object) or :data:`_FAILED` (the notify itself
        failed here: this gateway's trouble, which says nothing about the other).

        A gateway whose watch has lapsed (a loaded machine can miss the OSD's watch
        timeout) watches again within moments: nobody watching is retried for up to
        ``notify_timeout`` before the gateway counts as gone."""
        deadline = self.loop.time() + self.notify_timeout
        while True:
            outcome = await self._notify_once(gateway, message)
            if outcome != _NOBODY:
                return outcome
            if self.loop.time() >= deadline:
                return _SILENT
            await asyncio.sleep(0.2)  # back off: the gateway may be watching again

    async def _notify_once(self, gateway: Gateway, message: str) -> str:
        """One notify: :data:`_ACKED`, :data:`_SILENT` (not acknowledged in time),
        :data:`_NOBODY` (nobody watches its object) or :data:`_FAILED`."""
        done: asyncio.Future[str] = self.loop.create_future()

        def complete(_completion: Any, ret: int, acks: Any, _timeouts: Any) -> None:
            if ret == 0:
                outcome = _ACKED if acks else _NOBODY
            elif ret == -errno.ETIMEDOUT:
                outcome = _SILENT
            elif ret == -errno.ENOENT:
                outcome = _NOBODY  # its object is gone
            else:
                outcome = _FAILED
            if outcome != _ACKED:
                log.debug("%s: notify to gateway %d: %s", self.object, gateway.tpgt,
                          "nobody watching" if outcome == _NOBODY else os.strerror(-ret))

            def settle() -> None:
                if not done.done():
                    done.set_result(outcome)

            self.loop.call_soon_threadsafe(settle)

        def send() -> None:
            with self._io:
                self._ioctx.aio_notify(self.gateway_object(gateway.tpgt), complete,
                                       msg=message,
                                       timeout_ms=int(self.notify_timeout * 1000))

        try:
            await asyncio.to_thread(send)
            return await asyncio.wait_for(done, self.notify_timeout * 2)
        except (TimeoutError, OSError):
            return _FAILED
        except Exception as exc:  # rados.Error
            log.warning("%s: notify to gateway %d: %s", self.object, gateway.tpgt, exc)
            return _FAILED

    async def _watch_outranking(self) -> None:
        """Every ``heartbeat`` seconds, ping the listed gateways with lower tags (one of
        them is active/optimized); fence and drop those that do not answer, so that the
        next tag takes over (and the hosts are told) although nothing else would have
        asked the dead one anything. A ping that fails here (this gateway cut off or
        fenced itself) fences nobody."""
        message = json.dumps({"ping": True})
        while not self._closed:
            await asyncio.sleep(self.heartbeat)  # a period, not a synchronisation
            outranking = [g for g in self.gateways if g.tpgt < self.tpgt]
            if not outranking or self._closed:
                continue
            outcomes = await asyncio.gather(*(self._notify_outcome(g, message)
                                              for g in outranking))
            dead = [g for g, o in zip(outranking, outcomes, strict=True) if o == _SILENT]
            if not dead or self._closed:
                continue
            try:
                async with self._lock:
                    listed = set(self.gateways)
                    dead = [g for g in dead if g in listed]  # not dropped meanwhile
                    if dead and not self._closed:
                        await self._fence(dead)
                        await self._drop(dead)
            except Exception as exc:  # the cluster is unreachable: try again later
                log.warning("%s: %s", self.object, exc)

    async def _fence(self, dead: list[Gateway]) -> None:
        """Blocklist gateways that stopped answering: they cannot touch the image again."""
        for gateway in dead:
            log.warning("%s: gateway tpgt=%d (%s) does not answer: fencing it",
                        self.object, gateway.tpgt, gateway.addr)
            try:
                await asyncio.to_thread(self.cluster.blocklist_add, gateway.addr,
                                        _BLOCKLIST_SECONDS)
            except Exception as exc:
                log.error("%s: blocklisting %s failed: %s", self.object, gateway.addr, exc)

    # Notifications from other gateways (a librados thread).
    def _on_notify(self, _notify_id: int, _notifier: int, _watch_id: int, data: bytes) -> None:
        applied = threading.Event()

        def apply() -> None:
            try:
                self._receive(data)
            except Exception:
                log.exception("%s: a notification could not be applied", self.object)
            finally:
                applied.set()

        try:
            self.loop.call_soon_threadsafe(apply)
        except RuntimeError:  # the loop is closed: no answer, so the sender fences us
            return
        # The ack (return) says "applied"; a gateway that cannot apply in time is fenced
        # by the sender anyway, so there is nothing to gain by answering earlier.
        applied.wait(self.notify_timeout * 2)

    def _receive(self, data: bytes) -> None:
        message = json.loads(data)
        if message.get("reset"):  # a LU reset through another gateway (SAM-5 6.3.3)
            self.lu.reset()
            self.lu.ua_add_all(self.lu.nexus_keys, Asc.BUS_DEVICE_RESET_FUNCTION_OCCURRED)
            return
        if "state" not in message:
            return  # a ping
        self._load(message["state"], int(message["version"]))
        for rid, asc, ascq in message.get("ua", []):
            notify_registrant(self.lu, str(rid), (int(asc), int(ascq)))

    def _on_watch_error(self, _watch_id: int, err: int) -> None:
        """The watch broke (the cluster was unreachable for a while): the state may have
        changed unseen. Watch again and reload it; if this gateway was fenced, that
        fails, as does its I/O."""
        log.warning("%s: watch error %d: reloading the reservation state", self.object, err)

        def again() -> None:
            task = asyncio.ensure_future(self._rewatch())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(again)

    async def _check_watch(self) -> None:
        """Watch again if the watch broke unnoticed (its error callback is a hint only)."""
        def broken() -> bool:
            try:
                return self._watch is None or int(self._watch.check()) < 0
            except Exception:
                return True

        if self._ioctx is not None and await asyncio.to_thread(broken):
            log.warning("%s: the watch was lost: watching again", self.object)
            await self._rewatch(refresh=False)

    async def _rewatch(self, refresh: bool = True) -> None:
        def rewatch() -> None:
            with self._io:
                if self._watch is not None:
                    with contextlib.suppress(Exception):
                        self._watch.close()
                self._watch = self._ioctx.watch(self.gateway_object(self.tpgt),
                                                self._on_notify, self._on_watch_error,
                                                _WATCH_SECONDS)

        try:
            await asyncio.to_thread(rewatch)
            if refresh:
                await self.refresh()
        except Exception as exc:
            log.error("%s: cannot watch again: %s", self.object, exc)


async def _kept_in_rados(_pr: PersistentReservations, /) -> None:
    """APTPL saver of a shared LU: the state is in RADOS already (PTPL_C=1)."""
