"""The target side of one iSCSI connection, sans-I/O (RFC 7143).

Bytes go in through :meth:`get_buffer`/:meth:`buffer_updated` (or
:meth:`receive_data`); :meth:`next_event` returns what the adapter must act on
(see :mod:`pytgt.iscsi.events`); everything to transmit accumulates in
:meth:`data_to_send` as a list of buffers (data segments passed through
untouched). Time is injected: :meth:`get_timer` / :meth:`handle_timer`.
Login, text (SendTargets), NOP, logout, R2T and Data-Out accounting happen here;
SCSI execution and task management are the adapter's (via events).
"""

from __future__ import annotations

import logging
import struct
from collections import deque
from collections.abc import Callable
from typing import Any

from pytgt.bufpool import BufferPool
from pytgt.iscsi import login as login_mod
from pytgt.iscsi.command import Limits, Task
from pytgt.iscsi.constants import (
    RESERVED_TAG,
    LoginStatus,
    LogoutReason,
    LogoutResponseCode,
    Opcode,
    RejectReason,
    TmfFunction,
    TmfResponse,
)
from pytgt.iscsi.errors import ConnectionDropped, LoginError, ProtocolError
from pytgt.iscsi.events import (
    CommandReady,
    ConnectionClosed,
    SessionEnded,
    SessionStarted,
    TaskManagement,
)
from pytgt.iscsi.framer import DataDigestError, Framer
from pytgt.iscsi.pdu import (
    F_BIT,
    I_BIT,
    OPCODE_MASK,
    R2T,
    AsyncMessage,
    DataOut,
    LoginRequest,
    LoginResponse,
    LogoutRequest,
    LogoutResponse,
    NopIn,
    NopOut,
    Reject,
    ScsiCommand,
    TaskMgmtRequest,
    TaskMgmtResponse,
    TextRequest,
    TextResponse,
)
from pytgt.iscsi.policy import TargetPolicy
from pytgt.iscsi.serial import sn_add, sn_in_window, sn_lt
from pytgt.iscsi.session import Session, SessionTable
from pytgt.iscsi.text import decode_text, encode_text

Data = bytes | bytearray | memoryview
log = logging.getLogger("pytgt.iscsi")

# PDUs that carry CmdSN and take part in CmdSN ordering (4.2.2.1).
_ORDERED = {Opcode.SCSI_COMMAND, Opcode.TASK_MGMT_REQUEST, Opcode.TEXT_REQUEST,
            Opcode.LOGOUT_REQUEST, Opcode.NOP_OUT}
_DISCOVERY_OK = {Opcode.TEXT_REQUEST, Opcode.LOGOUT_REQUEST, Opcode.NOP_OUT}
_MAX_TEXT = 64 * 1024
_ABORTED_ITTS = 256  # aborted writes whose late Data-Out is discarded, per connection

# The hot path packs and unpacks these directly (same layouts as pdu.py's classes).
_CMD_HEAD = struct.Struct(">BBxxIQIII")  # opcode, flags, AHS|DSL, LUN, ITT, EDTL, CmdSN
_DATA_IN = struct.Struct(">BBBBIQIIIIIIII")  # 11.7.1
_SCSI_RSP = struct.Struct(">BBBBIQIIIIIIII")  # 11.4
_OP_DATA_IN = int(Opcode.SCSI_DATA_IN)
_OP_SCSI_RSP = int(Opcode.SCSI_RESPONSE)
_OP_SCSI_CMD = int(Opcode.SCSI_COMMAND)
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")


class TargetConnection:
    """One connection on a target portal; create it when the TCP connection is accepted.

    ``policy`` answers login questions (see :class:`pytgt.iscsi.login.TargetPolicy`)
    and ``send_targets(initiator_name, address, value)`` for discovery.
    """

    def __init__(self, policy: TargetPolicy[Any], sessions: SessionTable, address: str, *,
                 portal_group_tag: int = 1, nop_interval: float = 0.0, nop_count: int = 0,
                 login_timeout: float = 15.0, now: float = 0.0) -> None:
        self.policy = policy
        self.sessions = sessions
        self.address = address
        self.portal_group_tag = portal_group_tag
        self.framer = Framer(8192)
        self.framer.data_out_sink = self._data_out_sink
        self.session: Session | None = None
        self.cid = 0
        self.stat_sn = 0
        self.full_feature = False
        self._discovery = False  # a Discovery session (full feature phase)
        self.closed = False
        self.tasks: dict[int, Task] = {}
        self.limits = Limits()
        self.buffers = BufferPool()  # big writes' Data-Out buffers, reused
        self.log: logging.LoggerAdapter[logging.Logger] = logging.LoggerAdapter(
            log, {"peer": address})
        self._login = login_mod.TargetLogin(policy, address, portal_group_tag=portal_group_tag)
        self._events: deque[Any] = deque()
        self._out: list[Data] = []
        self._next_ttt = 1
        self._text_pending: dict[int, list[bytes]] = {}
        self._text_in: bytearray = bytearray()
        self._aborted_itts: dict[int, None] = {}  # oldest first, at most _ABORTED_ITTS
        self._nop_interval, self._nop_count = nop_interval, nop_count
        self._last_rx = now
        self._pings_out = 0
        self._login_deadline: float | None = now + login_timeout if login_timeout else None
        self.local_address = ""
        # Set by the adapter: called when another connection closed this one (logout of
        # the whole session, reinstatement) so that its events get drained.
        self.wakeup: Callable[[], None] | None = None

    # -- bytes in ----------------------------------------------------------------
    def get_buffer(self, sizehint: int = -1) -> memoryview:
        return self.framer.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self.framer.buffer_updated(nbytes)

    def trim(self) -> None:
        """Call every few seconds: a connection that received nothing since the previous
        call gives back its grown receive buffer and its pooled Data-Out buffers."""
        if not self.framer.received:
            self.buffers.clear()
        self.framer.trim()

    def receive_data(self, data: Data) -> None:
        """Feed received bytes; ``b""`` means the peer closed (EOF)."""
        if not data:
            self._close("peer closed the connection")
            return
        self.framer.receive_data(data)

    def eof_received(self) -> None:
        self._close("peer closed the connection")

    def next_event(self, now: float | None = None) -> Any:
        """The next event, or None when all received bytes are consumed."""
        while not self._events and not self.closed:
            try:
                parts = self.framer.next_parts()
            except DataDigestError as exc:
                self._reject(exc.bhs, RejectReason.DATA_DIGEST_ERROR)
                self._close("data digest error")  # ERL 0: no recovery within the connection
                break
            except ProtocolError as exc:
                self._close(str(exc))
                break
            except ConnectionDropped as exc:
                self._close(str(exc))
                break
            if parts is None:
                break
            if now is not None:
                self._last_rx, self._pings_out = now, 0
            self._dispatch(*parts)
        return self._events.popleft() if self._events else None

    def data_to_send(self) -> list[Data]:
        """Buffers to transmit, in order; clears the queue."""
        out, self._out = self._out, []
        return out

    # -- timers ------------------------------------------------------------------
    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` wants to run next (absolute time), or None."""
        if self.closed:
            return None
        if not self.full_feature:
            return self._login_deadline
        if self._nop_interval > 0:
            return self._last_rx + self._nop_interval * (self._pings_out + 1)
        return None

    def handle_timer(self, now: float) -> None:
        """Login timeout; NOP-In pings on idle connections; drop after ``nop_count`` misses."""
        if self.closed:
            return
        if not self.full_feature:
            if self._login_deadline is not None and now >= self._login_deadline:
                self._close("login timed out")
            return
        if self._nop_interval <= 0 or now < self._last_rx + self._nop_interval * (
                self._pings_out + 1):
            return
        if self._nop_count and self._pings_out >= self._nop_count:
            self._close(f"no answer to {self._pings_out} NOP-In pings")
            return
        self._pings_out += 1
        ttt = self._alloc_ttt()
        self._send(NopIn(RESERVED_TAG, ttt, self.stat_sn, *self._window()))

    # -- dispatch ----------------------------------------------------------------
    def _dispatch(self, bhs: bytes, ahs: bytes, data: Data) -> None:
        op = bhs[0] & OPCODE_MASK
        try:
            if not self.full_feature:
                if op != Opcode.LOGIN_REQUEST:
                    raise ConnectionDropped(f"opcode {op:#x} during login")
                self._on_login(LoginRequest.decode(bhs, data))
                return
            handler = self._HANDLERS.get(op)
            if handler is None:
                raise ProtocolError(RejectReason.COMMAND_NOT_SUPPORTED, f"opcode {op:#04x}")
            if self._discovery and op not in _DISCOVERY_OK:
                raise ProtocolError(RejectReason.PROTOCOL_ERROR, "not allowed in discovery")
            handler(self, bhs, data, ahs)
        except ProtocolError as exc:
            self.log.info("reject %s: %s", exc.reason.name, exc)
            self._reject(bhs, exc.reason)
            if exc.fatal:
                self._close(str(exc))
        except ConnectionDropped as exc:
            self._close(str(exc))

    def _ordered(self, cmd_sn: int, immediate: bool, deliver: Callable[[], None]) -> None:
        assert self.session is not None
        if immediate:
            deliver()
        elif not self.session.order(cmd_sn, deliver):
            self.log.debug("CmdSN %d outside window, ignored", cmd_sn)

    # -- login (6, 11.12) ---------------------------------------------------------
    def _on_login(self, req: LoginRequest) -> None:
        if self.stat_sn == 0 and not self._login.started:
            self.stat_sn = req.exp_stat_sn
        try:
            rsp = self._login.receive(req)
            if rsp.final_ok:
                self._enter_full_feature(req, rsp)
                return
        except LoginError as err:
            self.log.debug("login failed: %s (%s)", err.status.name, err)  # policy logs once
            rsp = self._login.failure(req, err)
        self._send_login_response(req, rsp)
        if rsp.status != LoginStatus.SUCCESS:
            self._close(f"login failed: {LoginStatus(rsp.status).name}")

    def _send_login_response(self, req: LoginRequest, rsp: Any, tsih: int = 0,
                             exp_cmd_sn: int | None = None, max_cmd_sn: int = 0) -> None:
        status = int(rsp.status)
        stat_sn = self.stat_sn
        if status == LoginStatus.SUCCESS:
            self.stat_sn = sn_add(self.stat_sn, 1)
        self._send(LoginResponse(
            req.itt, req.isid, tsih, stat_sn,
            req.cmd_sn if exp_cmd_sn is None else exp_cmd_sn,
            req.cmd_sn if exp_cmd_sn is None else max_cmd_sn,
            status >> 8, status & 0xFF, rsp.transit, rsp.cont, rsp.csg, rsp.nsg,
            0, 0, rsp.data,
        ))

    def _enter_full_feature(self, req: LoginRequest, rsp: Any) -> None:
        lg = self._login
        reinstated, replaced, new = None, None, True
        if req.tsih == 0:
            old = self.sessions.find(lg.initiator_name, req.isid, lg.target_name)
            if old is not None:
                reinstated = old  # 6.3.5 session reinstatement
                self.sessions.remove(old)
            session = Session(self.sessions.allocate_tsih(), req.isid, lg.initiator_name,
                              lg.session_type, lg.target_name, lg.target, lg.negotiated,
                              lg.initiator_alias, exp_cmd_sn=req.cmd_sn)
            self.sessions.add(session)
        else:
            session = self._join_session(req)
            new = False
            replaced = session.connections.get(req.cid)
        self.session, self.cid = session, req.cid
        session.connections[req.cid] = self
        # a joining connection keeps the session-wide values (6.3.6)
        self._apply(lg.negotiated if new or session.params is None
                    else session.params.for_connection(lg.negotiated))
        self._send_login_response(req, rsp, session.tsih, session.exp_cmd_sn, session.max_cmd_sn)
        self.full_feature = True
        self._discovery = session.session_type == "Discovery"
        self.framer.header_digest = bool(lg.negotiated.header_digest)
        self.framer.data_digest = bool(lg.negotiated.data_digest)
        log.info("login ok: %s -> %s (%s, tsih %d)", lg.initiator_name,
                 lg.target_name or "discovery", lg.session_type, session.tsih,
                 extra={"event": "login", "initiator": lg.initiator_name,
                        "target": lg.target_name or "discovery", "tsih": session.tsih,
                        "address": self.address, "portal": self.local_address})
        self._events.append(SessionStarted(session, new, reinstated, replaced))

    def _join_session(self, req: LoginRequest) -> Session:
        """Add a connection to an existing session (5.3.4, 6.3.6)."""
        lg = self._login
        session = self.sessions.sessions.get(req.tsih)
        if (session is None or session.isid != req.isid
                or session.initiator_name.lower() != lg.initiator_name.lower()
                or session.target_name.lower() != lg.target_name.lower()):
            raise LoginError(LoginStatus.SESSION_DOES_NOT_EXIST)
        limit = session.params.max_connections if session.params else 1
        if req.cid not in session.connections and len(session.connections) >= limit:
            raise LoginError(LoginStatus.TOO_MANY_CONNECTIONS)
        return session

    def _apply(self, p: Any) -> None:
        self.framer.max_data_segment_length = p.max_recv_data_segment_length
        self.limits = Limits(bool(p.immediate_data), bool(p.initial_r2t), p.first_burst_length,
                             p.max_burst_length, p.max_outstanding_r2t,
                             p.max_xmit_data_segment_length, bool(p.data_pdu_in_order))

    # -- full feature phase handlers ------------------------------------------------
    def _on_scsi_command(self, bhs: bytes, data: Data, ahs: bytes) -> None:
        # The hot path: the fields it needs from one unpack; ScsiCommand on demand.
        op, flags, _, lun, itt, edtl, cmd_sn = _CMD_HEAD.unpack_from(bhs)
        read, write = flags & 0x40 != 0, flags & 0x20 != 0
        if ahs:  # extended CDB (11.3.5) or bidirectional read length (11.3.6)
            cmd = ScsiCommand.decode(bhs, data, ahs)
            task = Task(itt, lun, cmd.cdb, edtl, read, write, flags & 7, self.limits, cmd)
        else:
            task = Task(itt, lun, bhs[32:48], edtl, read, write, flags & 7, self.limits, None,
                        (bhs, data, ahs))
        if itt in self.tasks:
            raise ProtocolError(RejectReason.TASK_IN_PROGRESS, "ITT in use")
        if data or write:
            # reused buffers hold old data: only where in-order offsets overwrite it all
            task.buffers = self.buffers if self.limits.data_pdu_in_order else None
            task.begin(data, flags & F_BIT != 0)
        session = self.session
        assert session is not None
        immediate = op & I_BIT != 0
        if not immediate and cmd_sn == session.exp_cmd_sn and not session.held:  # in_order()
            # In order with nothing held (the usual case): deliver now (4.2.2.1).
            self.tasks[itt] = task
            if task.next_r2t_offset < task.edtl:
                self._send_r2ts(task)  # before ExpCmdSN moves on, as on the general path
            session.exp_cmd_sn = (cmd_sn + 1) & 0xFFFFFFFF
            task.ordered = True
            if write:
                self._maybe_ready(task)
            else:  # no Data-Out to wait for: ready now
                task.delivered = True
                self._events.append(CommandReady(task))
            return
        if not immediate and not sn_in_window(cmd_sn, session.exp_cmd_sn, session.max_cmd_sn):
            self.log.debug("CmdSN %d outside window, ignored", cmd_sn)
            return
        self.tasks[itt] = task
        self._send_r2ts(task)
        self._ordered(cmd_sn, immediate, lambda: self._mark_ordered(task))

    def _mark_ordered(self, task: Task) -> None:
        task.ordered = True
        self._maybe_ready(task)

    def _maybe_ready(self, task: Task) -> None:
        if task.ordered and not task.delivered and task.data_complete and not task.aborted:
            task.delivered = True
            self._events.append(CommandReady(task))

    def _send_r2ts(self, task: Task) -> None:
        for r2t in task.next_r2ts(self._next_ttt):
            self._next_ttt = r2t.ttt + 1
            if self._next_ttt >= RESERVED_TAG:
                self._next_ttt = 1
            self._send(R2T(task.itt, r2t.ttt, r2t.r2t_sn, r2t.offset, r2t.length,
                           task.lun, self.stat_sn, *self._window()))

    def _on_data_out(self, bhs: bytes, data: Data, ahs: bytes) -> None:
        pdu = DataOut.decode(bhs, data)
        task = self.tasks.get(pdu.itt)
        if task is None or not task.write:
            if task is None and pdu.itt in self._aborted_itts:
                return  # an aborted write's Data-Out still in flight: dropped, not rejected
            raise ProtocolError(RejectReason.INVALID_PDU_FIELD, "Data-Out for no write task")
        burst_done = task.data_out(pdu)
        if task.data_error is not None:
            if pdu.final:  # the sequence is over: fail this command only (ERL 0, 7.1.4)
                self._fail_data_out(task)
            return
        if burst_done:
            self._send_r2ts(task)
        self._maybe_ready(task)

    def _data_out_sink(self, bhs: bytes, length: int) -> memoryview | None:
        """The framer's question: where to receive this Data-Out's data segment (its
        task's buffer at BufferOffset), or None for a buffer of its own."""
        if not self.full_feature:
            return None
        task = self.tasks.get(int.from_bytes(bhs[16:20], "big"))
        if task is None or not task.write:
            return None
        return task.receive_into(int.from_bytes(bhs[20:24], "big"),
                                 int.from_bytes(bhs[40:44], "big"), length)

    def _fail_data_out(self, task: Task) -> None:
        assert task.data_error is not None
        asc, ascq = task.data_error
        task.delivered = True
        sense = bytes([0x70, 0, 0x0B, 0, 0, 0, 0, 10, 0, 0, 0, 0, asc, ascq, 0, 0, 0, 0])
        self.complete_command(task, 0x02, b"", sense)

    def _on_nop_out(self, bhs: bytes, data: Data, ahs: bytes) -> None:
        pdu = NopOut.decode(bhs, data)
        if pdu.itt == RESERVED_TAG:
            if pdu.ttt == RESERVED_TAG and not pdu.immediate:
                raise ProtocolError(RejectReason.PROTOCOL_ERROR, "NOP-Out without ITT or TTT")
            return  # an answer to our ping (11.18.3): nothing more to do

        def answer() -> None:
            stat_sn = self._next_stat_sn()
            self._send(NopIn(pdu.itt, RESERVED_TAG, stat_sn, *self._window(), pdu.lun,
                             bytes(pdu.data)))
        self._ordered(pdu.cmd_sn, pdu.immediate, answer)

    def _on_text(self, bhs: bytes, data: Data, ahs: bytes) -> None:
        pdu = TextRequest.decode(bhs, data)
        self._ordered(pdu.cmd_sn, pdu.immediate, lambda: self._text(pdu))

    def _text(self, pdu: TextRequest) -> None:
        """Text negotiation in full feature phase (11.10): SendTargets and friends."""
        if pdu.ttt != RESERVED_TAG and pdu.ttt in self._text_pending:
            self._send_text_chunk(pdu.itt, pdu.ttt)
            return
        self._text_in += pdu.data
        if len(self._text_in) > _MAX_TEXT:
            self._text_in.clear()
            raise ProtocolError(RejectReason.PROTOCOL_ERROR, "text request too long")
        if pdu.cont:
            stat_sn = self._next_stat_sn()
            self._send(TextResponse(pdu.itt, self._alloc_ttt(), stat_sn, *self._window(),
                                    final=False))
            return
        pairs = decode_text(bytes(self._text_in))
        self._text_in.clear()
        assert self.session is not None
        answer: list[tuple[str, str]] = []
        for key, value in pairs:
            if key == "SendTargets":
                answer += self.policy.send_targets(self.session.initiator_name, self.address,
                                                   value, self.session.session_type,
                                                   self.local_address)
            else:
                reply = login_mod.full_feature_answer(key, value, self.limits)
                if reply is not None:
                    answer.append((key, reply))
        body = encode_text(answer)
        chunk = self.limits.max_xmit_data_segment_length
        chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
        ttt = self._alloc_ttt() if len(chunks) > 1 else RESERVED_TAG
        self._text_pending[ttt] = chunks
        self._send_text_chunk(pdu.itt, ttt)

    def _send_text_chunk(self, itt: int, ttt: int) -> None:
        chunks = self._text_pending[ttt]
        data = chunks.pop(0)
        last = not chunks
        if last:
            del self._text_pending[ttt]
        stat_sn = self._next_stat_sn()
        self._send(TextResponse(itt, RESERVED_TAG if last else ttt, stat_sn, *self._window(),
                                final=last, cont=not last, data=data))

    def _on_tmf(self, bhs: bytes, data: Data, ahs: bytes) -> None:
        pdu = TaskMgmtRequest.decode(bhs, data)
        self._ordered(pdu.cmd_sn, pdu.immediate, lambda: self._tmf(pdu))

    def _tmf(self, pdu: TaskMgmtRequest) -> None:
        """Task management (11.5): abort this session's affected tasks, then ask the adapter."""
        assert self.session is not None
        fn = pdu.function
        if fn == TmfFunction.ABORT_TASK:
            task = self._find_task(pdu.referenced_task_tag)
            if task is None or task.lun != pdu.lun:
                # 11.5.1: a task never received but inside the window counts as received
                # and one outside the window (e.g. completed long ago) does not exist.
                s = self.session
                if (task is None and sn_in_window(pdu.ref_cmd_sn, s.exp_cmd_sn, s.max_cmd_sn)
                        and sn_lt(pdu.ref_cmd_sn, pdu.cmd_sn)):
                    self.complete_tmf(pdu.itt, TmfResponse.FUNCTION_COMPLETE)
                else:
                    self.complete_tmf(pdu.itt, TmfResponse.TASK_DOES_NOT_EXIST)
                return
            aborted = self._abort([task])
        elif fn in (TmfFunction.ABORT_TASK_SET, TmfFunction.CLEAR_TASK_SET,
                    TmfFunction.LOGICAL_UNIT_RESET):
            aborted = self._abort([t for t in self._session_tasks() if t.lun == pdu.lun])
        elif fn in (TmfFunction.TARGET_WARM_RESET, TmfFunction.TARGET_COLD_RESET):
            aborted = self._abort(list(self._session_tasks()))
        elif fn in (TmfFunction.CLEAR_ACA, TmfFunction.TASK_REASSIGN):
            response = (TmfResponse.FUNCTION_NOT_SUPPORTED if fn == TmfFunction.CLEAR_ACA
                        else TmfResponse.TASK_ALLEGIANCE_REASSIGNMENT_NOT_SUPPORTED)
            self.complete_tmf(pdu.itt, response)
            return
        else:
            self.complete_tmf(pdu.itt, TmfResponse.FUNCTION_REJECTED)
            return
        self._events.append(TaskManagement(pdu.itt, fn, pdu.lun, pdu.referenced_task_tag,
                                           tuple(aborted)))

    def _session_tasks(self) -> list[Task]:
        assert self.session is not None
        return [t for c in self.session.connections.values() for t in c.tasks.values()]

    def _find_task(self, itt: int) -> Task | None:
        return next((t for t in self._session_tasks() if t.itt == itt), None)

    def _abort(self, tasks: list[Task]) -> list[Task]:
        """Mark ``tasks`` aborted and forget them; a write still owed Data-Out is
        remembered so that the initiator's remaining Data-Out PDUs are dropped quietly."""
        assert self.session is not None
        for task in tasks:
            task.aborted = True
            for conn in self.session.connections.values():
                if conn.tasks.get(task.itt) is task:
                    del conn.tasks[task.itt]
                    if task.write and not task.delivered:
                        conn._remember_aborted(task.itt)
        return tasks

    def _remember_aborted(self, itt: int) -> None:
        itts = self._aborted_itts
        itts.pop(itt, None)
        itts[itt] = None
        if len(itts) > _ABORTED_ITTS:
            del itts[next(iter(itts))]

    def _on_logout(self, bhs: bytes, data: Data, ahs: bytes) -> None:
        pdu = LogoutRequest.decode(bhs, data)
        self._ordered(pdu.cmd_sn, pdu.immediate, lambda: self._logout(pdu))

    def _logout(self, pdu: LogoutRequest) -> None:
        """Logout (11.14): close the session or one connection, then answer."""
        assert self.session is not None
        session = self.session
        code, targets = LogoutResponseCode.SUCCESS, [self]
        if pdu.reason == LogoutReason.CLOSE_SESSION:
            targets = list(session.connections.values())
        elif pdu.reason in (LogoutReason.CLOSE_CONNECTION,
                            LogoutReason.REMOVE_CONNECTION_FOR_RECOVERY):
            other = session.connections.get(pdu.cid)
            if other is None:
                code, targets = LogoutResponseCode.CID_NOT_FOUND, []
            elif pdu.reason == LogoutReason.REMOVE_CONNECTION_FOR_RECOVERY:
                code, targets = LogoutResponseCode.RECOVERY_NOT_SUPPORTED, []
            else:
                targets = [other]
        else:
            raise ProtocolError(RejectReason.INVALID_PDU_FIELD, "logout reason")
        p = session.params
        stat_sn = self._next_stat_sn()
        self._send(LogoutResponse(pdu.itt, code, stat_sn, *self._window(),
                                  p.default_time2wait if p else 2,
                                  p.default_time2retain if p else 0))
        for conn in targets:
            conn._close("logout")
            if conn is not self and conn.wakeup is not None:
                conn.wakeup()

    _HANDLERS: dict[int, Callable[[TargetConnection, bytes, Data, bytes], None]] = {
        Opcode.SCSI_COMMAND: _on_scsi_command,
        Opcode.SCSI_DATA_OUT: _on_data_out,
        Opcode.NOP_OUT: _on_nop_out,
        Opcode.TEXT_REQUEST: _on_text,
        Opcode.TASK_MGMT_REQUEST: _on_tmf,
        Opcode.LOGOUT_REQUEST: _on_logout,
    }

    # -- answers from the adapter -------------------------------------------------------
    def complete_command(self, task: Task, status: int, data: Data = b"", sense: bytes = b"",
                         write_length: int | None = None) -> None:
        """Send the outcome of a CommandReady: Data-In (split at the initiator's
        MaxRecvDataSegmentLength, status folded into the last one when there is no
        sense) or a SCSI Response, with residuals (11.4.5, 11.7)."""
        if self.closed or task.aborted or self.tasks.get(task.itt) is not task:
            return
        del self.tasks[task.itt]
        edtl = task.expected_length
        residual, over, under = 0, False, False
        n = len(data)
        if task.read and not task.write:
            if n > edtl:
                residual, over, n = n - edtl, True, edtl
            elif n < edtl:
                residual, under = edtl - n, True
        elif task.write:
            need = write_length if write_length is not None else edtl
            if need > edtl:
                residual, over = need - edtl, True
            elif need < edtl:
                residual, under = edtl - need, True
            n = n if task.read else 0  # no Data-In to a command without the R bit
        else:  # neither R nor W (EDTL 0): all the command would move overflows
            residual = n or write_length or 0
            over, n = residual > 0, 0
        fold = n > 0 and not sense
        if n:
            self._send_data_in(task, memoryview(data)[:n] if n != len(data) else data,
                               status if fold else None, residual, over, under)
        if not fold:
            body = len(sense).to_bytes(2, "big") + sense if sense else b""
            stat_sn = self.stat_sn
            self.stat_sn = (stat_sn + 1) & 0xFFFFFFFF
            exp, mx = self._window()
            flags = F_BIT | (0x04 if over else 0) | (0x02 if under else 0)
            header = _SCSI_RSP.pack(_OP_SCSI_RSP, flags, 0, status, len(body), 0, task.itt, 0,
                                    stat_sn, exp, mx, task.data_sn, 0, residual)
            self._out.extend(self.framer.frame(header, body))

    def terminate(self, task: Task, status: int) -> None:
        """End a command the SCSI layer has not seen with ``status`` and no data (task
        management from another I_T nexus: TASK ABORTED); Data-Out still on its way
        for it is dropped quietly."""
        if self.tasks.get(task.itt) is not task:
            return
        gathering = task.write and not task.delivered
        self.complete_command(task, status)
        task.aborted = True
        if gathering:
            self._remember_aborted(task.itt)

    def complete_read(self, task: Task, data: Data) -> None:
        """``complete_command(task, GOOD, data)`` for a read answered at once (the fast
        path): when the data is what EDTL asked for and fits one Data-In PDU without
        digests, that PDU (status folded in, no residual) is built right here."""
        n = len(data)
        lim, framer = self.limits, self.framer
        if (n != task.expected_length or not n or n > lim.max_xmit_data_segment_length
                or n > lim.max_burst_length or task.write or framer.header_digest
                or framer.data_digest):
            self.complete_command(task, 0, data)
            return
        if self.closed or task.aborted or self.tasks.get(task.itt) is not task:
            return
        del self.tasks[task.itt]
        s = self.session
        assert s is not None
        stat_sn = self.stat_sn
        self.stat_sn = (stat_sn + 1) & 0xFFFFFFFF
        out = self._out
        exp = s.exp_cmd_sn
        mx = (exp + s.window - 1 - len(s.held)) & 0xFFFFFFFF  # Session.max_cmd_sn, inline
        out.append(_DATA_IN.pack(_OP_DATA_IN, F_BIT | 0x01, 0, 0, n, task.lun, task.itt,
                                 RESERVED_TAG, stat_sn, exp, mx, task.data_sn, 0, 0))
        task.data_sn += 1
        out.append(data)
        if n & 3:
            out.append(_PAD[n & 3])

    def _send_data_in(self, task: Task, data: Data, status: int | None, residual: int,
                      over: bool, under: bool) -> None:
        """Data-In PDUs (11.7), each header packed straight from the task's fields."""
        step = self.limits.max_xmit_data_segment_length
        burst = self.limits.max_burst_length
        total = len(data)
        s = self.session
        assert s is not None
        exp, mx = s.exp_cmd_sn, s.max_cmd_sn
        framer, out = self.framer, self._out
        plain = not (framer.header_digest or framer.data_digest)
        lun, itt = task.lun, task.itt
        if total <= step and total <= burst:  # one PDU: the 4 KiB read
            if status is None:
                flags, st, stat_sn, residual = F_BIT, 0, 0, 0
            else:
                flags = F_BIT | 0x01 | (0x04 if over else 0) | (0x02 if under else 0)
                st, stat_sn = status, self.stat_sn
                self.stat_sn = (stat_sn + 1) & 0xFFFFFFFF
            header = _DATA_IN.pack(_OP_DATA_IN, flags, 0, st, total, lun, itt, RESERVED_TAG,
                                   stat_sn, exp, mx, task.data_sn, 0, residual)
            task.data_sn += 1
            if plain:
                out.append(header)
                out.append(data)
                if total & 3:
                    out.append(_PAD[total & 3])
            else:
                out.extend(framer.frame(header, data))
            return
        view = memoryview(data)
        off = 0
        while off < total:
            n = min(step, total - off, burst - off % burst)
            end = off + n
            if end >= total and status is not None:  # the last one carries the status
                flags = F_BIT | 0x01 | (0x04 if over else 0) | (0x02 if under else 0)
                st, stat_sn, res = status, self.stat_sn, residual
                self.stat_sn = (stat_sn + 1) & 0xFFFFFFFF
            else:
                flags = F_BIT if end >= total or end % burst == 0 else 0
                st = stat_sn = res = 0
            chunk = view[off:end]
            header = _DATA_IN.pack(_OP_DATA_IN, flags, 0, st, n, lun, itt, RESERVED_TAG,
                                   stat_sn, exp, mx, task.data_sn, off, res)
            task.data_sn += 1
            if plain:
                out.append(header)
                out.append(chunk)
                if n & 3:
                    out.append(_PAD[n & 3])
            else:
                out.extend(framer.frame(header, chunk))
            off = end

    def complete_tmf(self, itt: int, response: int) -> None:
        """Answer a TaskManagement event (11.6)."""
        if self.closed:
            return
        stat_sn = self._next_stat_sn()
        self._send(TaskMgmtResponse(itt, response, stat_sn, *self._window()))

    def send_async(self, event: int, data: bytes = b"", lun: int = 0,
                   p1: int = 0, p2: int = 0, p3: int = 0) -> None:
        """Send an Asynchronous Message (11.9), e.g. a SCSI async event or a logout request."""
        if self.closed or not self.full_feature:
            return
        stat_sn = self._next_stat_sn()
        self._send(AsyncMessage(event, lun, stat_sn, *self._window(), 0, p1, p2, p3, data))

    def close(self, reason: str = "closed by target") -> None:
        """Close from the target side (reinstatement, shutdown, target removal)."""
        self._close(reason)
        if self.wakeup is not None:
            self.wakeup()

    # -- helpers ----------------------------------------------------------------------
    def _window(self) -> tuple[int, int]:
        s = self.session
        if s is None:
            return 0, 0
        return s.exp_cmd_sn, s.max_cmd_sn

    def _next_stat_sn(self) -> int:
        sn = self.stat_sn
        self.stat_sn = sn_add(sn, 1)
        return sn

    def _alloc_ttt(self) -> int:
        ttt = self._next_ttt
        self._next_ttt = ttt + 1 if ttt + 1 < RESERVED_TAG else 1
        return ttt

    def _send(self, pdu: Any) -> None:
        self._out.extend(self.framer.frame(pdu.encode(), pdu.data))

    def _reject(self, bhs: bytes, reason: RejectReason) -> None:
        exp, mx = self._window()
        self._send(Reject(reason, self.stat_sn, exp, mx, 0, bytes(bhs)))

    def _close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        log.info("connection closing: %s", reason,
                 extra={"event": "connection_closed", "reason": reason, "address": self.address,
                        "portal": self.local_address})
        for task in self.tasks.values():
            task.aborted = True
        self.tasks.clear()
        s = self.session
        if s is not None and s.connections.get(self.cid) is self:
            del s.connections[self.cid]
            if not s.connections:
                s.forget_held()
                self.sessions.remove(s)
                self._events.append(SessionEnded(s))
        self._events.append(ConnectionClosed(reason))
