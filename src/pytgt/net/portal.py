"""The asyncio adapter: portal listeners feeding :class:`TargetConnection` objects.

One small class per connection does: receive into the core's buffer -> drain
events -> hand commands and task management to the SCSI layer
(``ScsiTarget.submit``, ``scsi.tmf.execute``) -> transmit their answers with
``writelines`` -> re-arm the core's timer. What a command's life needs beyond
bytes (task set, aborts, waits, resets) is the SCSI layer's; ``net/mapping.py``
translates between the two layers' objects.

Back-pressure: when the socket's write buffer is full we stop reading. Commands already
received keep coming out of the core, so the Data-In a connection may have outstanding
(reads in progress plus data not yet written to the socket) is capped at
:attr:`PortalOptions.max_outstanding_data_in`: over it, commands are held in arrival
order (and reading stops) until the peer reads; a command bigger than the cap runs when
nothing else is outstanding. Other PDUs (NOP-Out, task management, logout) already
received are still answered.

Task management (SAM-5 7) runs in ``scsi/tmf.py``, which answers once the aborted
commands are gone, within :attr:`PortalOptions.tmf_wait_timeout`; other I/O goes on
meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pytgt import eager
from pytgt.iscsi.command import Task
from pytgt.iscsi.connection import Data, TargetConnection
from pytgt.iscsi.constants import TmfFunction
from pytgt.iscsi.events import (
    CommandReady,
    ConnectionClosed,
    Event,
    SessionEnded,
    SessionStarted,
    TaskManagement,
)
from pytgt.iscsi.policy import TargetPolicy
from pytgt.iscsi.session import Session, SessionTable
from pytgt.net import mapping
from pytgt.scsi import tmf
from pytgt.scsi.target import ScsiTarget
from pytgt.scsi.task import ItNexus, ScsiTask

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
    #: The portal group tag of every portal of this daemon, which is also its target
    #: port group and relative target port identifier (scsi/alua.py). Gateways that
    #: serve one shared LU each take their own (``--iscsi tpgt=N``).
    tpgt: int = 1


class PortalPolicy(TargetPolicy[Any], Protocol):
    """The login policy plus the session bookkeeping the adapter reports to."""

    def session_started(self, session: Session, conn: TargetConnection) -> None:
        """A connection completed login into a Normal session (new or joined)."""

    def connection_closed(self, session: Session, conn: TargetConnection) -> None:
        """One connection of a Normal session closed."""

    def session_ended(self, session: Session) -> None:
        """A Normal session is over (logout, reinstatement, last connection lost)."""


@dataclass
class IscsiService:
    """What the adapter needs from the daemon: policy, sessions, options."""

    policy: PortalPolicy
    sessions: SessionTable = field(default_factory=SessionTable)
    options: PortalOptions = field(default_factory=PortalOptions)
    portal_group_tag: int = 1
    connections: set[IscsiProtocol] = field(default_factory=set)
    idle_sweep: asyncio.TimerHandle | None = None  # see _sweep_idle
    data_in_holds: int = 0  # commands held for Data-In back-pressure (metrics)


class IscsiProtocol(asyncio.BufferedProtocol):
    """One TCP connection on a portal."""

    def __init__(self, service: IscsiService) -> None:
        self.service = service
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.conn: TargetConnection | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._pending = 0  # commands handed to the SCSI layer and not answered yet
        self._pump_scheduled = False
        self._flush_scheduled = False
        self._in_pump = False
        self._scsi: ScsiTarget | None = None  # the session's, once a command arrived
        self._nexus: ItNexus | None = None
        self._done = self._answer  # one bound method, not one per command
        # Data-In back-pressure (see the module docstring)
        self._held: deque[Task] = deque()  # commands waiting for Data-In to drain
        self._reading = 0  # Data-In bytes of reads in progress (expected lengths)
        self._unsent = 0  # Data-In bytes completed since the last transmit
        self._data_in_cap = service.options.max_outstanding_data_in
        self._write_paused = False
        self._reading_paused = False

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

    @property
    def busy(self) -> bool:
        """Commands of this connection are with the SCSI layer or held."""
        return bool(self._pending or self._held)

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
                _EVENT_HANDLERS[type(event)](self, event)
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

    def _schedule_flush(self) -> None:
        """Send everything completed in this loop iteration with one writev."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.transport is not None:
            self._transmit()

    def _on_session_started(self, ev: SessionStarted) -> None:
        old = ev.reinstated
        if old is not None:
            for c in list(old.connections.values()):
                c.close("session reinstated")
            _end_session(self.service, old)
        if ev.replaced_connection is not None and ev.replaced_connection is not self.conn:
            ev.replaced_connection.close("connection reinstated")
        s = ev.session
        if ev.new_session and s.session_type == "Normal" and s.target is not None:
            port = mapping.SessionPort(s)
            s.nexus = mapping.it_nexus(s, self.service.portal_group_tag, port)
            s.target.scsi.add_nexus(s.nexus)
        if s.target is not None:
            assert self.conn is not None
            self.service.policy.session_started(s, self.conn)

    # -- commands ------------------------------------------------------------------
    def _on_command(self, ev: CommandReady) -> None:
        """Run the command, or hold it while Data-In is over the cap (or others are held)."""
        task = ev.task
        if self._held or (task.read and (self._reading + self._unsent >= self._data_in_cap
                                         or self._write_paused) and self._data_in_full()):
            self._held.append(task)  # in order: nothing overtakes a held command
            self.service.data_in_holds += 1
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
            if not task.aborted:  # task management may have aborted it meanwhile
                self._run_command(task)
        self._update_reading()

    def _run_command(self, task: Task) -> None:
        """Hand the command to the SCSI layer; :meth:`_answer` sends its outcome (often
        before ``submit`` returns: page-cache reads, most non-data commands)."""
        scsi, nexus = self._scsi, self._nexus
        if scsi is None or nexus is None:
            s = self.conn.session if self.conn is not None else None
            assert s is not None and s.target is not None and s.nexus is not None
            scsi, nexus = self._scsi, self._nexus = s.target.scsi, s.nexus
        st = mapping.scsi_task(task, nexus)  # refers to task; not the other way: no cycle
        task.submitted = True
        data = scsi.submit(st, self._done)
        if data is None:  # answered through _answer, maybe already
            self._pending += 1
            if task.read:
                self._reading += task.expected_length
            return
        self._send_answer(task, st, 0, data, b"")  # GOOD at once (the fast path)

    def _answer(self, st: ScsiTask, status: int, data: Data, sense: bytes) -> None:
        """A command's outcome from the SCSI layer (TASK ABORTED if task management
        ended it: the core sends nothing for this session's own aborted tasks)."""
        task: Task = st.handle
        self._pending -= 1
        if task.read:
            self._reading -= task.expected_length
        self._send_answer(task, st, status, data, sense)
        if self._held and not self._in_pump:
            self._schedule_pump()

    def _send_answer(self, task: Task, st: ScsiTask, status: int, data: Data,
                     sense: bytes) -> None:
        conn = self.conn
        assert conn is not None
        if task.read and not task.write and not status and not sense:
            conn.complete_read(task, data)
        else:
            conn.complete_command(task, status, data, sense, st.transfer_out)
        self._unsent += len(data)
        if not self._in_pump:  # inside _pump the batch is sent when the pump ends
            self._schedule_flush()

    # -- task management -------------------------------------------------------------
    def _on_tmf(self, ev: TaskManagement) -> None:
        """Task management in the SCSI layer (``scsi/tmf.py``); the core already
        aborted this session's commands it still holds."""
        conn = self.conn
        assert conn is not None and conn.session is not None
        s = conn.session
        abort_task = ev.function == TmfFunction.ABORT_TASK

        def respond(response: tmf.ServiceResponse) -> None:
            conn.complete_tmf(ev.itt, mapping.RESPONSES[response])
            if not self._in_pump:
                self._schedule_flush()

        eager.start(  # answered now, or once the aborted commands are gone
            tmf.execute(s.target.scsi, mapping.FUNCTIONS[ev.function], s.nexus, ev.lun,
                        respond, tag=ev.referenced_task_tag if abort_task else None,
                        wait_timeout=self.service.options.tmf_wait_timeout),
            _ignore, _tmf_failed)

    def _on_session_ended(self, ev: SessionEnded) -> None:
        _end_session(self.service, ev.session)

    def _on_closed(self, ev: ConnectionClosed) -> None:
        self._held.clear()  # never answered: the connection is gone
        conn = self.conn
        s = conn.session if conn is not None else None
        if conn is not None and s is not None and s.target is not None:
            self.service.policy.connection_closed(s, conn)  # e.g. one of several
        self._transmit()
        if self.transport is not None:
            self.transport.close()


def _ignore(_: object) -> None:
    return None


def _tmf_failed(exc: BaseException) -> None:
    log.error("task management failed", exc_info=exc)


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


def _end_session(service: IscsiService, s: Session) -> None:
    """The session is over: its I_T nexus leaves the SCSI target (once)."""
    nexus, s.nexus = s.nexus, None
    if nexus is not None and s.target is not None:
        s.target.scsi.remove_nexus(nexus)
        service.policy.session_ended(s)


# Handlers by event type (each takes its own event class; Any keeps the table one dict).
_EVENT_HANDLERS: dict[type[Event], Callable[[IscsiProtocol, Any], None]] = {
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
