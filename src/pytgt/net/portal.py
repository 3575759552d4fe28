"""The asyncio adapter: portal listeners feeding :class:`TargetConnection` objects.

One small class per connection does: receive into the core's buffer -> drain
events -> run SCSI commands as tasks -> transmit with ``writelines`` -> re-arm the
core's timer.

Back-pressure: when the socket's write buffer is full we stop reading. Commands already
received keep coming out of the core, so the Data-In a connection may have outstanding
(reads in progress plus data not yet written to the socket) is capped at
:attr:`PortalOptions.max_outstanding_data_in`: over it, commands are held in arrival
order (and reading stops) until the peer reads; a command bigger than the cap runs when
nothing else is outstanding. Other PDUs (NOP-Out, task management, logout) already
received are still answered.

Task management (SAM-5 7): the response is sent only once the aborted commands are
gone: their coroutines cancelled and awaited, and the store I/O they left behind in
threads ended (:meth:`BackingStore.quiesce`), so an aborted WRITE cannot land after the
initiator has moved on. That wait runs as a task (other I/O goes on), bounded by
:attr:`PortalOptions.tmf_wait_timeout`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pytgt.iscsi.command import Task
from pytgt.iscsi.connection import TargetConnection
from pytgt.iscsi.constants import TmfFunction, TmfResponse
from pytgt.iscsi.events import (
    CommandReady,
    ConnectionClosed,
    SessionEnded,
    SessionStarted,
    TaskManagement,
)
from pytgt.iscsi.session import Session, SessionTable
from pytgt.scsi import fastpath
from pytgt.scsi.task import ItNexus, ScsiTask, Status
from pytgt.stores.base import quiesce

log = logging.getLogger("pytgt.net")


@dataclass
class PortalOptions:
    """Per-portal settings, named as tgtd's ``--iscsi`` options."""

    nop_interval: float = 0.0
    nop_count: int = 0
    login_timeout: float = 15.0
    #: Data-In bytes one connection may have outstanding (reads in progress, data not
    #: yet written to the socket) before further commands wait for the peer to read.
    max_outstanding_data_in: int = 64 << 20
    #: Seconds a task management function waits for the commands it aborted (and their
    #: store I/O) to end; after that it is answered FUNCTION REJECTED.
    tmf_wait_timeout: float = 10.0


@dataclass
class IscsiService:
    """What the adapter needs from the daemon: login policy, sessions, TMF executor."""

    policy: Any
    sessions: SessionTable = field(default_factory=SessionTable)
    options: PortalOptions = field(default_factory=PortalOptions)
    portal_group_tag: int = 1
    connections: set[IscsiProtocol] = field(default_factory=set)
    idle_sweep: asyncio.TimerHandle | None = None  # see _sweep_idle


class IscsiProtocol(asyncio.BufferedProtocol):
    """One TCP connection on a portal."""

    def __init__(self, service: IscsiService) -> None:
        self.service = service
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.conn: TargetConnection | None = None
        self._timer: asyncio.TimerHandle | None = None
        # commands waiting on I/O -> the future they wait on, then the Task running them
        self._running: dict[Task, asyncio.Future[Any]] = {}
        self._pump_scheduled = False
        self._flush_scheduled = False
        self._in_pump = False
        self._scsi: Any = None  # the session's ScsiTarget, once a command arrived
        self._nexus_key = ""
        # Data-In back-pressure (see the module docstring)
        self._held: deque[Task] = deque()  # commands waiting for Data-In to drain
        self._reading = 0  # Data-In bytes of reads in progress (expected lengths)
        self._unsent = 0  # Data-In bytes completed since the last transmit
        self._data_in_cap = service.options.max_outstanding_data_in
        self._write_paused = False
        self._reading_paused = False
        self._tmfs: set[asyncio.Task[None]] = set()

    # -- asyncio callbacks -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport: no isinstance check.
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername") or ("?", 0)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        opts = self.service.options
        self.conn = TargetConnection(
            self.service.policy, self.service.sessions, str(peer[0]),
            portal_group_tag=self.service.portal_group_tag, nop_interval=opts.nop_interval,
            nop_count=opts.nop_count, login_timeout=opts.login_timeout, now=self.loop.time())
        local = transport.get_extra_info("sockname") or ("", 0)
        self.conn.local_address = _format_address(str(local[0]), int(local[1]))
        self.conn.wakeup = self._schedule_pump
        self.service.connections.add(self)
        if self.service.idle_sweep is None:
            _sweep_idle(self.service)
        self._arm_timer()

    def get_buffer(self, sizehint: int) -> memoryview:
        assert self.conn is not None
        return self.conn.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        assert self.conn is not None
        self.conn.buffer_updated(nbytes)
        self._pump()

    def eof_received(self) -> bool:
        assert self.conn is not None
        self.conn.eof_received()
        self._pump()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None and not self.conn.closed:
            self.conn.close("connection lost")
            self._pump()
        self._held.clear()
        self.service.connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()

    def running(self) -> list[asyncio.Future[Any]]:
        """The futures of this connection's commands waiting on I/O now (graceful stop)."""
        return list(self._running.values())

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()
        if self._held:
            self._schedule_pump()

    def _update_reading(self) -> None:
        """Read while the socket takes our output and no command is held."""
        t = self.transport
        if t is None or t.is_closing():
            return
        pause = self._write_paused or bool(self._held)
        if pause != self._reading_paused:
            self._reading_paused = pause
            if pause:
                t.pause_reading()
            else:
                t.resume_reading()

    # -- event handling ------------------------------------------------------------
    def _schedule_pump(self) -> None:
        if not self._pump_scheduled:
            self._pump_scheduled = True
            self.loop.call_soon(self._pump)

    def _pump(self) -> None:
        self._pump_scheduled = False
        conn = self.conn
        assert conn is not None
        now = self.loop.time()
        self._in_pump = True
        try:
            if self._held:
                self._release_held()
            while (event := conn.next_event(now)) is not None:
                handler = _EVENT_HANDLERS.get(type(event))
                if handler is not None:
                    handler(self, event)
        finally:
            self._in_pump = False
        self._transmit()
        self._arm_timer()

    def _transmit(self) -> None:
        assert self.conn is not None and self.transport is not None
        out = self.conn.data_to_send()
        if out and not self.transport.is_closing():
            self.transport.writelines(out)
        self._unsent = 0  # now in the transport's buffer: counted while writing is paused
        if self._held and not self._data_in_full():
            self._schedule_pump()

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        assert self.conn is not None
        when = self.conn.get_timer()
        if when is not None:
            self._timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        assert self.conn is not None
        self.conn.handle_timer(self.loop.time())
        self._pump()

    def _on_session_started(self, ev: SessionStarted) -> None:
        old = ev.reinstated
        if old is not None:
            for c in list(old.connections.values()):
                c.close("session reinstated")
            _end_session(old)
        if ev.replaced_connection is not None and ev.replaced_connection is not self.conn:
            ev.replaced_connection.close("connection reinstated")
        s = ev.session
        if ev.new_session and s.session_type == "Normal" and s.target is not None:
            s.nexus = ItNexus(
                key=f"{s.initiator_name},i,{s.isid:#014x},tsih={s.tsih}",
                initiator_name=s.initiator_name,
                initiator_port=f"{s.initiator_name},i,{s.isid:#014x}",
                relative_port=self.service.portal_group_tag,
                port_group=self.service.portal_group_tag)
            s.target.scsi.add_nexus(s.nexus)
        if s.target is not None:
            hook = getattr(self.service.policy, "session_started", None)
            if hook is not None:
                assert self.conn is not None
                hook(s, self.conn)

    def _on_command(self, ev: CommandReady) -> None:
        """Run the command, or hold it while Data-In is over the cap (or others are held)."""
        task = ev.task
        if self._held or (task.read and (self._reading + self._unsent >= self._data_in_cap
                                         or self._write_paused) and self._data_in_full()):
            self._held.append(task)  # in order: nothing overtakes a held command
            self._update_reading()
            return
        self._run_command(task)

    def _data_in_full(self) -> bool:
        """Outstanding Data-In at or over the cap (never when nothing is outstanding)."""
        n = self._reading + self._unsent
        if self._write_paused and self.transport is not None:
            n += self.transport.get_write_buffer_size()
        return n >= self._data_in_cap and n > 0

    def _release_held(self) -> None:
        """Run held commands, in order, while the Data-In cap allows."""
        held = self._held
        while held:
            task = held[0]
            if not task.aborted and task.read and self._data_in_full():
                break
            held.popleft()
            if not task.aborted:  # a TMF may have aborted it meanwhile
                self._run_command(task)
        self._update_reading()

    def _run_command(self, task: Task) -> None:
        """Run the command's first step now, without a Task: page-cache reads and most
        non-data commands finish right here. Only a command that really waits (disk I/O
        in the pool, a lock) becomes a Task, resumed right after the await it stopped at.

        Plain READ/WRITE(10/16) take :mod:`pytgt.scsi.fastpath` (same answers, no
        per-layer coroutines); anything else, or anything unusual, the generic path."""
        scsi = self._scsi
        if scsi is None:
            s = self.conn.session if self.conn is not None else None
            assert s is not None and s.target is not None
            scsi = self._scsi = s.target.scsi
            self._nexus_key = s.nexus.key
        coro: Any = None
        if task.read:
            if not task.write:
                data = fastpath.read(scsi, self._nexus_key, task.lun, task.cdb)
                if data is not None:
                    assert self.conn is not None
                    self.conn.complete_read(task, data)
                    self._unsent += len(data)
                    if not self._in_pump:
                        self._schedule_flush()
                    return
        elif task.write:
            data = task.data_out_buffer()
            pending = fastpath.write(scsi, self._nexus_key, task.lun, task.cdb, data)
            if pending is fastpath.GOOD:
                assert self.conn is not None
                self.conn.complete_command(task, 0, b"", b"", len(data))
                if not self._in_pump:
                    self._schedule_flush()
                return
            if pending is not None:
                coro = self._finish_write(task, pending, len(data))
        if coro is None:
            coro = self._execute(task)
        try:
            waiting_on = coro.send(None)
        except StopIteration:
            return
        except BaseException:  # _execute answers every error itself; this is a bug
            log.exception("SCSI command runner failed")
            return
        reserve = task.expected_length if task.read else 0
        self._reading += reserve
        if waiting_on is None:  # a bare yield (asyncio.sleep(0)): a Task resumes it
            self._resume(task, coro, reserve)
        else:  # an asyncio future, as a Task would see it
            waiting_on._asyncio_future_blocking = False
            self._running[task] = waiting_on
            waiting_on.add_done_callback(lambda _: self._resume(task, coro, reserve))

    def _resume(self, task: Task, coro: Any, reserve: int) -> None:
        """Go on with a command's coroutine in a Task (cancelled by task management)."""
        t = self.loop.create_task(coro)
        self._running[task] = t
        t.add_done_callback(lambda _: self._command_ended(task, reserve))

    def _command_ended(self, task: Task, reserve: int) -> None:
        self._running.pop(task, None)
        self._reading -= reserve
        if self._held:
            self._schedule_pump()

    async def _finish_write(self, task: Any, pending: Any, length: int) -> None:
        conn = self.conn
        assert conn is not None
        try:
            result = await pending
        except Exception:  # the SCSI layer answers errors itself; this is a bug
            log.exception("SCSI command %s failed", task.cdb[:1].hex())
            conn.complete_command(task, Status.CHECK_CONDITION, b"", _HARDWARE_ERROR)
        else:
            conn.complete_command(task, result.status, b"", result.sense, length)
        if not self._in_pump:
            self._schedule_flush()

    async def _execute(self, task: Any) -> None:
        conn = self.conn
        assert conn is not None and conn.session is not None
        s = conn.session
        scsi = s.target.scsi
        write_length = scsi.expected_data_out(task.lun, task.cdb) if task.write else None
        st = ScsiTask(s.nexus, task.lun, task.cdb, task.itt, data_out=task.data_out_buffer(),
                      expected_in=task.expected_length if task.read else 0,
                      expected_out=task.edtl)
        task.scsi_task = st
        try:
            result = await scsi.execute(st)
        except Exception:  # the SCSI layer answers errors itself; this is a bug
            log.exception("SCSI command %s failed", task.cdb[:1].hex())
            conn.complete_command(task, Status.CHECK_CONDITION, b"", _HARDWARE_ERROR)
        else:
            conn.complete_command(task, result.status, result.data, result.sense, write_length)
            self._unsent += len(result.data)
        if not self._in_pump:  # inside _pump the batch is sent when the pump ends
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        """Send everything completed in this loop iteration with one writev."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.transport is not None:
            self._transmit()

    def _on_tmf(self, ev: TaskManagement) -> None:
        """Abort (the core and the policy hook mark tasks), then answer once the aborted
        commands still running are gone (SAM-5 7.1): at once when none is."""
        conn = self.conn
        assert conn is not None and conn.session is not None
        for task in ev.aborted:
            st = getattr(task, "scsi_task", None)
            if st is not None:
                st.aborted = True
        hook = getattr(self.service.policy, "task_management", None)
        response = 0 if hook is None else hook(conn.session, ev, self.service)
        target = conn.session.target
        victims = _running_aborted(self.service, target)
        if not victims:
            self._answer_tmf(ev, response, target)
            return
        t = self.loop.create_task(self._answer_tmf_when_gone(ev, response, target, victims))
        self._tmfs.add(t)
        t.add_done_callback(self._tmfs.discard)

    async def _answer_tmf_when_gone(self, ev: TaskManagement, response: int, target: Any,
                                    victims: list[tuple[IscsiProtocol, Task]]) -> None:
        try:
            await asyncio.wait_for(_end_tasks(target, victims),
                                   self.service.options.tmf_wait_timeout)
        except TimeoutError:
            log.warning("task management function %#x: aborted I/O still running after "
                        "%.0f s, answering FUNCTION REJECTED", ev.function,
                        self.service.options.tmf_wait_timeout)
            response = TmfResponse.FUNCTION_REJECTED
        self._answer_tmf(ev, response, target)
        if not self._in_pump:
            self._schedule_flush()

    def _answer_tmf(self, ev: TaskManagement, response: int, target: Any) -> None:
        assert self.conn is not None
        self.conn.complete_tmf(ev.itt, response)
        if ev.function == TmfFunction.TARGET_COLD_RESET and response == 0:
            _drop_sessions(self.service, target)

    def _on_session_ended(self, ev: SessionEnded) -> None:
        _end_session(ev.session)

    def _on_closed(self, ev: ConnectionClosed) -> None:
        self._held.clear()  # never answered: the connection is gone
        s = self.conn.session if self.conn is not None else None
        hook = getattr(self.service.policy, "connection_closed", None)
        if hook is not None and s is not None and s.target is not None:
            hook(s, self.conn)  # e.g. one connection of a multi-connection session
        self._transmit()
        if self.transport is not None:
            self.transport.close()


def _running_aborted(service: IscsiService, target: Any) -> list[tuple[IscsiProtocol, Task]]:
    """Commands of ``target``'s sessions, on every connection, that were aborted while
    their coroutine waits (a TMF may abort other sessions' tasks too)."""
    out = []
    for proto in service.connections:
        s = proto.conn.session if proto.conn is not None else None
        if s is not None and s.target is target:
            out += [(proto, task) for task in proto._running if task.aborted]
    return out


async def _end_tasks(target: Any, victims: list[tuple[IscsiProtocol, Task]]) -> None:
    """Cancel the aborted commands' coroutines and wait until they are gone, then until
    the store I/O they started has ended (a pwrite in a thread cannot be cancelled)."""
    stores = _stores_touched(target, [task for _, task in victims])
    while victims:
        waiting = []
        for proto, task in victims:
            fut = proto._running.get(task)
            if fut is not None:
                fut.cancel()  # a future not yet resumed: its Task starts cancelled
                waiting.append(fut)
        if not waiting:
            break
        await asyncio.wait(waiting)
        victims = [(p, t) for p, t in victims if t in p._running]
    if stores:
        await asyncio.gather(*(quiesce(store) for store in stores))


def _stores_touched(target: Any, tasks: list[Task]) -> list[Any]:
    """The stores an aborted command may still be writing to (reads need no waiting)."""
    scsi = target.scsi
    stores: dict[int, Any] = {}
    for task in tasks:
        if task.read and not task.write:
            continue
        lus = scsi.luns.values() if task.cdb[:1] == b"\x83" else [scsi.lu(task.lun)]
        for lu in lus:  # EXTENDED COPY may write to any LU of the target
            store = getattr(lu, "store", None)
            if store is not None:
                stores[id(store)] = store
    return list(stores.values())


_IDLE_SWEEP_S = 2.0


def _sweep_idle(service: IscsiService) -> None:
    """Every few seconds: connections that received nothing since the last sweep give
    back their grown receive and Data-Out buffers (one timer per service, none per
    connection)."""
    service.idle_sweep = None
    if not service.connections:
        return
    for p in service.connections:
        if p.conn is not None:
            p.conn.trim()
    loop = asyncio.get_running_loop()
    service.idle_sweep = loop.call_later(_IDLE_SWEEP_S, _sweep_idle, service)


def _drop_sessions(service: IscsiService, target: Any) -> None:
    """After a TARGET COLD RESET response: close every connection to that target (RFC 7143
    11.5.1, a cold reset is a power on); the issuer's goes once its response is sent."""
    for s in list(service.sessions.sessions.values()):
        if s.target is target:
            for c in list(s.connections.values()):
                c.close("target cold reset")


def _end_session(s: Session) -> None:
    if getattr(s, "_ended", False):
        return
    s._ended = True  # type: ignore[attr-defined]
    if s.nexus is not None and s.target is not None:
        s.target.scsi.remove_nexus(s.nexus)
    nexuses = getattr(s.target, "nexuses", None)
    if isinstance(nexuses, dict):
        nexuses.pop(s.tsih, None)


_HARDWARE_ERROR = bytes([0x70, 0, 0x04, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x44, 0, 0, 0, 0, 0])

_EVENT_HANDLERS: dict[type, Any] = {
    SessionStarted: IscsiProtocol._on_session_started,
    CommandReady: IscsiProtocol._on_command,
    TaskManagement: IscsiProtocol._on_tmf,
    SessionEnded: IscsiProtocol._on_session_ended,
    ConnectionClosed: IscsiProtocol._on_closed,
}


def _format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_portal(text: str, default_port: int = 3260) -> tuple[str, int]:
    """``HOST[:PORT]`` / ``[V6]:PORT`` -> (host, port); raises ValueError."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else default_port
    elif text.count(":") == 1:
        host, p = text.split(":")
        port = int(p)
    else:
        host, port = text, default_port
    if not host or not 0 <= port <= 65535:
        raise ValueError(f"bad portal {text!r}")
    return host, port


async def listen(service: IscsiService, host: str, port: int) -> asyncio.AbstractServer:
    """Start accepting iSCSI connections on one portal (only that address)."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: IscsiProtocol(service), host, port,
                                    reuse_address=True, backlog=128)
