"""The initiator side of one iSCSI connection, sans-I/O (RFC 7143).

Theory: bytes go in (:meth:`InitiatorConnection.get_buffer` / :meth:`buffer_updated`,
or :meth:`receive_data`), events come out of :meth:`next_event` (see
:mod:`pytgt.initiator.events`), and every PDU to transmit accumulates in
:meth:`data_to_send` as a list of buffers (data segments passed through untouched).
Requests start with ``send_*`` methods that return the request's ITT; their answer
is an event naming that ITT. Non-immediate requests wait in a queue while the
CmdSN window is closed (4.2.2.1). The core answers target NOP-In pings, sends
R2T-solicited and unsolicited Data-Out, reassembles Data-In by BufferOffset, and
logs out when the target asks to (Async event 1). It never imports asyncio.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytgt.initiator.errors import (
    CommandRejected,
    ConnectionLost,
    InitiatorError,
    ProtocolViolation,
    TargetFailure,
    UsageError,
)
from pytgt.initiator.events import (
    AsyncEventReceived,
    CommandComplete,
    ConnectionClosed,
    Event,
    LoginComplete,
    LogoutComplete,
    NopReply,
    RequestFailed,
    TaskManagementComplete,
    TextComplete,
)
from pytgt.initiator.login import InitiatorLogin
from pytgt.initiator.options import InitiatorOptions
from pytgt.initiator.scsi import ScsiResult
from pytgt.iscsi.constants import RESERVED_TAG, AsyncEvent, LogoutReason, Opcode, TmfFunction
from pytgt.iscsi.errors import ConnectionDropped, ProtocolError
from pytgt.iscsi.framer import Frame, Framer
from pytgt.iscsi.pdu import (
    OPCODE_MASK,
    R2T,
    AsyncMessage,
    DataIn,
    DataOut,
    LoginResponse,
    LogoutRequest,
    LogoutResponse,
    NopIn,
    NopOut,
    Reject,
    ScsiCommand,
    ScsiResponse,
    TaskMgmtRequest,
    TaskMgmtResponse,
    TextRequest,
    TextResponse,
)
from pytgt.iscsi.serial import sn_add, sn_le, sn_lt
from pytgt.iscsi.text import decode_text, encode_text
from pytgt.scsi.lun import MAX_LUN, lun_field

Data = bytes | bytearray | memoryview
log = logging.getLogger("pytgt.initiator")

_LOGIN_BUFFER = 8192  # MaxRecvDataSegmentLength in effect during login (13.12)
_MAX_TEXT = 1 << 20


def _lun(lun: int) -> int:
    """A request's LUN field: LUN numbers encoded (SAM-5 4.6), larger values as given."""
    return lun_field(lun) if lun <= MAX_LUN else lun


class _ConnectionLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes each message with the connection's context (``[isid=... tsih=...]``)."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        ctx = " ".join(f"{k}={v}" for k, v in (self.extra or {}).items())
        return f"[{ctx}] {msg}", kwargs


@dataclass(slots=True)
class _Request:
    """One outstanding request: what it is and what has arrived for it."""

    itt: int
    kind: str  # "command", "nop", "text", "tmf", "logout"
    cmd_sn: int = 0
    lun: int = 0
    data_out: memoryview = field(default_factory=lambda: memoryview(b""))
    read_length: int = 0
    buffer: bytearray | None = None
    data_end: int = 0
    next_data_sn: int = 0
    text: bytearray = field(default_factory=bytearray)
    sent: bool = False
    build: Callable[[], None] | None = None  # sends the first PDU(s) once the window allows


class InitiatorConnection:
    """One initiator connection; create it, call :meth:`start_login`, then feed bytes.

    Raises UsageError for requests before full feature phase or after close, and when
    ``options`` join a session (``tsih``) without its parameters (``session``).
    """

    def __init__(self, options: InitiatorOptions) -> None:
        self.options = options
        self.framer = Framer(max(_LOGIN_BUFFER, options.max_recv_data_segment_length))
        self.login = InitiatorLogin(options, itt=0)
        self.negotiated = self.login.negotiated
        self.full_feature = False
        self.closed = False
        self.cmd_sn = options.cmd_sn
        self.exp_cmd_sn = options.cmd_sn
        self.max_cmd_sn = options.cmd_sn
        self.exp_stat_sn = 0
        self.tsih = 0
        self.log = _ConnectionLog(log, {"isid": f"{options.isid:#014x}"})
        self._requests: dict[int, _Request] = {}
        self._waiting: deque[_Request] = deque()
        self._events: deque[Event] = deque()
        self._out: list[Data] = []
        self._next_itt = 1
        self._logging_in = False

    # -- bytes in / out ---------------------------------------------------------------
    def get_buffer(self, sizehint: int = -1) -> memoryview:
        return self.framer.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self.framer.buffer_updated(nbytes)

    def receive_data(self, data: Data) -> None:
        """Feed received bytes; ``b""`` means the target closed the connection."""
        if self.closed:
            return
        if not data:
            self.connection_lost("target closed the connection")
            return
        # Feed at most the free buffer space at a time and process frames in between,
        # so that any amount of input is accepted (Framer.receive_data alone is bounded).
        view = memoryview(data).cast("B")
        while view and not self.closed:
            buf = self.framer.get_buffer()
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            self.framer.buffer_updated(n)
            view = view[n:]
            self._process()

    def next_event(self) -> Event | None:
        """The next event, or None when every received byte has been consumed."""
        if not self._events:
            self._process()
        return self._events.popleft() if self._events else None

    def _process(self) -> None:
        """Cut and dispatch frames one at a time (digests switch on after login)."""
        while not self.closed:
            try:
                frame = self.framer.next_frame()
            except (ProtocolError, ConnectionDropped) as exc:
                self.connection_lost(f"framing: {exc}")
                return
            if frame is None:
                return
            self._dispatch(frame)

    def data_to_send(self) -> list[Data]:
        """Buffers to transmit, in order; clears the queue."""
        out, self._out = self._out, []
        return out

    def connection_lost(self, reason: str = "connection lost") -> None:
        """The transport is gone: fail every open request, emit ConnectionClosed."""
        if self.closed:
            return
        self.closed = True
        for req in list(self._requests.values()):
            self._events.append(RequestFailed(req.itt, ConnectionLost(reason)))
        self._requests.clear()
        self._waiting.clear()
        self._events.append(ConnectionClosed(reason))

    # -- requests -----------------------------------------------------------------------
    def start_login(self) -> None:
        """Send the first Login Request; LoginComplete or RequestFailed(0, ...) follows."""
        if self._logging_in or self.full_feature:
            raise UsageError("login already started")
        self._logging_in = True
        self._send(self.login.first_request())

    def send_command(self, lun: int, cdb: bytes, data_out: Data = b"", read_length: int = 0,
                     *, attr: int = 1, immediate: bool = False) -> int:
        """Start a SCSI command (write when ``data_out``, read when ``read_length``).

        Returns its ITT; CommandComplete or RequestFailed follows.
        """
        if data_out and read_length:
            raise UsageError("bidirectional commands are not supported")
        req = self._new("command")
        req.lun = _lun(lun)
        req.data_out = memoryview(data_out).cast("B") if data_out else memoryview(b"")
        req.read_length = read_length
        if read_length:
            req.buffer = bytearray(read_length)
        req.build = lambda: self._send_command(req, cdb, attr, immediate)
        self._submit(req, immediate)
        return req.itt

    def send_nop(self, data: bytes = b"", *, immediate: bool = True) -> int:
        """A NOP-Out ping (11.18); NopReply follows."""
        req = self._new("nop")
        req.build = lambda: self._send(NopOut(req.itt, RESERVED_TAG, req.cmd_sn,
                                              self.exp_stat_sn, 0, immediate, data))
        self._submit(req, immediate)
        return req.itt

    def send_text(self, pairs: list[tuple[str, str]]) -> int:
        """A Text Request (11.10), e.g. ``[("SendTargets", "All")]``; TextComplete follows."""
        req = self._new("text")
        body = encode_text(pairs)
        req.build = lambda: self._send(TextRequest(req.itt, RESERVED_TAG, req.cmd_sn,
                                                   self.exp_stat_sn, data=body))
        self._submit(req, False)
        return req.itt

    def send_task_management(self, function: int, lun: int = 0,
                             ref_itt: int = RESERVED_TAG, ref_cmd_sn: int | None = None) -> int:
        """A Task Management Function Request (11.5), immediate; TaskManagementComplete follows.

        ``ref_cmd_sn`` defaults to the referenced command's CmdSN when we know it, else
        to the current CmdSN.
        """
        req = self._new("tmf")
        ref = self._requests.get(ref_itt)
        if ref_cmd_sn is None:
            ref_cmd_sn = ref.cmd_sn if ref is not None and ref.kind == "command" else self.cmd_sn
        ref_sn = ref_cmd_sn
        req.build = lambda: self._send(TaskMgmtRequest(
            req.itt, function, _lun(lun), ref_itt, req.cmd_sn,
            self.exp_stat_sn, ref_sn, 0, True))
        self._submit(req, True)
        return req.itt

    def send_logout(self, reason: int = LogoutReason.CLOSE_SESSION) -> int:
        """A Logout Request (11.14), immediate; LogoutComplete follows, then the target closes."""
        req = self._new("logout")
        req.build = lambda: self._send(LogoutRequest(req.itt, reason, self.options.cid,
                                                     req.cmd_sn, self.exp_stat_sn, True))
        self._submit(req, True)
        return req.itt

    def cancel(self, itt: int, *, abort: bool = False) -> int | None:
        """Forget a request (e.g. after a local timeout); late answers are dropped.

        With ``abort``, a command already sent is also aborted at the target (ABORT
        TASK, 11.5.1); returns that TMF's ITT, or None when nothing was sent.
        """
        req = self._requests.get(itt)
        if req is None:
            return None
        tmf = None
        if req.sent and req.kind == "command" and abort and not self.closed:
            tmf = self.send_task_management(TmfFunction.ABORT_TASK, req.lun, itt)
        del self._requests[itt]
        if not req.sent:
            with contextlib.suppress(ValueError):
                self._waiting.remove(req)
        return tmf

    @property
    def outstanding(self) -> int:
        return len(self._requests)

    def _new(self, kind: str) -> _Request:
        if self.closed:
            raise ConnectionLost("connection closed")
        if not self.full_feature:
            raise UsageError("not in full feature phase")
        itt = self._next_itt
        while itt == RESERVED_TAG or itt in self._requests or itt == 0:
            itt = (itt + 1) & 0xFFFFFFFF
        self._next_itt = (itt + 1) & 0xFFFFFFFF
        req = _Request(itt, kind)
        self._requests[itt] = req
        return req

    def _submit(self, req: _Request, immediate: bool) -> None:
        """Send now (immediate, or window open and nobody queued) or queue (4.2.2.1)."""
        if immediate:
            req.cmd_sn = self.cmd_sn
            self._start(req)
        else:
            self._waiting.append(req)
            self._pump()

    def _pump(self) -> None:
        while self._waiting and sn_le(self.cmd_sn, self.max_cmd_sn) and not self.closed:
            req = self._waiting.popleft()
            req.cmd_sn = self.cmd_sn
            self.cmd_sn = sn_add(self.cmd_sn, 1)
            self._start(req)

    def _start(self, req: _Request) -> None:
        req.sent = True
        assert req.build is not None
        req.build()
        req.build = None

    # -- sending SCSI commands and data -----------------------------------------------------
    def _send_command(self, req: _Request, cdb: bytes, attr: int, immediate: bool) -> None:
        n = self.negotiated
        total = len(req.data_out)
        write = total > 0
        first = min(total, n.first_burst_length) if write else 0
        imm = min(first, n.max_xmit_data_segment_length) if n.immediate_data else 0
        unsolicited = first if write and not n.initial_r2t else imm
        self._send(ScsiCommand(
            req.itt, cdb, req.lun, total if write else req.read_length, req.cmd_sn,
            self.exp_stat_sn, read=bool(req.read_length), write=write,
            final=unsolicited <= imm, attr=attr, immediate=immediate,
            data=req.data_out[:imm]))
        if unsolicited > imm:  # 13.10: unsolicited Data-Out up to FirstBurstLength
            self._send_data_out(req, RESERVED_TAG, imm, unsolicited - imm)

    def _send_data_out(self, req: _Request, ttt: int, offset: int, length: int) -> None:
        """One data sequence: DataSN from 0, F on the last PDU (11.7.4, 11.7.5)."""
        step = self.negotiated.max_xmit_data_segment_length
        end, data_sn = offset + length, 0
        while offset < end:
            n = min(step, end - offset)
            self._send(DataOut(req.itt, ttt, data_sn, offset, req.data_out[offset : offset + n],
                               offset + n >= end, req.lun, self.exp_stat_sn))
            offset += n
            data_sn += 1

    def _send(self, pdu: Any) -> None:
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("-> %s", _describe(pdu))
        self._out.extend(self.framer.frame(pdu.encode(), pdu.data))

    # -- dispatch -----------------------------------------------------------------------
    def _dispatch(self, frame: Frame) -> None:
        op = frame.bhs[0] & OPCODE_MASK
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("<- opcode %#04x itt %#x dlen %d", op,
                           int.from_bytes(frame.bhs[16:20], "big"), len(frame.data))
        try:
            if not self.full_feature:
                if op != Opcode.LOGIN_RESPONSE:
                    raise ProtocolViolation(f"opcode {op:#04x} during login")
                self._on_login(LoginResponse.decode(frame.bhs, frame.data))
                return
            handler = self._HANDLERS.get(op)
            if handler is None:
                raise ProtocolViolation(f"unexpected opcode {op:#04x}")
            handler(self, frame)
        except InitiatorError as exc:
            if not self.full_feature:
                self._events.append(RequestFailed(0, exc))
                self.connection_lost(f"login failed: {exc}")
            else:
                self.log.warning("protocol violation by target: %s", exc)
                self.connection_lost(f"protocol violation by target: {exc}")

    def _on_login(self, rsp: LoginResponse) -> None:
        if not self._logging_in:
            raise ProtocolViolation("Login Response without a request")
        nxt = self.login.receive(rsp)
        if nxt is not None:
            self._send(nxt)
            return
        self.full_feature = True
        self.tsih = self.login.tsih
        self.log.extra = {**(self.log.extra or {}), "tsih": self.tsih}
        self.exp_stat_sn = sn_add(rsp.stat_sn, 1)
        self.exp_cmd_sn, self.max_cmd_sn = rsp.exp_cmd_sn, rsp.max_cmd_sn
        if self.options.tsih:  # joined a session: continue its CmdSN sequence (4.2.2.1)
            self.cmd_sn = rsp.exp_cmd_sn
        self.framer.header_digest = self.negotiated.header_digest
        self.framer.data_digest = self.negotiated.data_digest
        self.framer.max_data_segment_length = self.options.max_recv_data_segment_length
        self._events.append(LoginComplete(self.negotiated, self.tsih))

    def _window(self, pdu: Any, stat_sn_consumed: bool | None = True) -> None:
        """Track ExpCmdSN/MaxCmdSN (4.2.2.1) and ExpStatSN from a target PDU.

        ``stat_sn_consumed``: True for status PDUs, False when StatSN is only the next
        one (R2T, pings, Reject), None when the field is not meaningful (Data-In w/o S).
        """
        exp, mx = pdu.exp_cmd_sn, pdu.max_cmd_sn
        if not sn_lt(mx, sn_add(exp, -1 & 0xFFFFFFFF)):  # else: ignore (4.2.2.1)
            if sn_lt(self.exp_cmd_sn, exp):
                self.exp_cmd_sn = exp
            if sn_lt(self.max_cmd_sn, mx):
                self.max_cmd_sn = mx
        if stat_sn_consumed is not None:
            nxt = sn_add(pdu.stat_sn, 1) if stat_sn_consumed else pdu.stat_sn
            if sn_lt(self.exp_stat_sn, nxt):
                self.exp_stat_sn = nxt
        self._pump()

    def _finish(self, itt: int, kind: str) -> _Request | None:
        req = self._requests.get(itt)
        if req is None or req.kind != kind:
            self.log.debug("answer for unknown or cancelled ITT %#x dropped", itt)
            return None
        return req

    def _on_scsi_response(self, frame: Frame) -> None:
        pdu = ScsiResponse.decode(frame.bhs, frame.data)
        self._window(pdu)
        req = self._finish(pdu.itt, "command")
        if req is None:
            return
        del self._requests[pdu.itt]
        if pdu.response != 0:
            self._events.append(RequestFailed(pdu.itt, TargetFailure(pdu.response)))
            return
        sense = b""
        if len(pdu.data) >= 2:
            slen = int.from_bytes(pdu.data[:2], "big")
            sense = bytes(pdu.data[2 : 2 + slen])
        self._complete(req, pdu.status, sense, pdu.residual_count, pdu.overflow, pdu.underflow)

    def _complete(self, req: _Request, status: int, sense: bytes, residual: int,
                  overflow: bool, underflow: bool) -> None:
        data = b""
        if req.buffer is not None:
            n = req.data_end
            if underflow:
                n = min(n, max(0, req.read_length - residual))
            data = bytes(req.buffer) if n == len(req.buffer) else bytes(req.buffer[:n])
        result = ScsiResult(status, data, sense, residual, overflow, underflow)
        self._events.append(CommandComplete(req.itt, result))

    def _on_data_in(self, frame: Frame) -> None:
        pdu = DataIn.decode(frame.bhs, frame.data)
        self._window(pdu, stat_sn_consumed=True if pdu.status_present else None)
        req = self._finish(pdu.itt, "command")
        if req is None:
            return
        if req.buffer is None:
            raise ProtocolViolation(f"Data-In for ITT {pdu.itt:#x}, not a read")
        end = pdu.buffer_offset + len(pdu.data)
        if end > len(req.buffer):
            raise ProtocolViolation(f"Data-In offset {pdu.buffer_offset}+{len(pdu.data)} "
                                    f"beyond expected length {len(req.buffer)}")
        if pdu.data_sn != req.next_data_sn:
            raise ProtocolViolation(f"Data-In DataSN {pdu.data_sn}, expected {req.next_data_sn}")
        req.next_data_sn += 1
        req.buffer[pdu.buffer_offset : end] = pdu.data
        req.data_end = max(req.data_end, end)
        if pdu.status_present:
            if not pdu.final:
                raise ProtocolViolation("Data-In with S bit but no F bit")
            del self._requests[pdu.itt]
            self._complete(req, pdu.status, b"", pdu.residual_count, pdu.overflow,
                           pdu.underflow)

    def _on_r2t(self, frame: Frame) -> None:
        pdu = R2T.decode(frame.bhs, frame.data)
        self._window(pdu, stat_sn_consumed=False)
        req = self._finish(pdu.itt, "command")
        if req is None:
            return
        end = pdu.buffer_offset + pdu.desired_data_transfer_length
        if not req.data_out or end > len(req.data_out) or pdu.desired_data_transfer_length == 0:
            raise ProtocolViolation(f"R2T for {pdu.buffer_offset}+"
                                    f"{pdu.desired_data_transfer_length} of a "
                                    f"{len(req.data_out)}-byte write")
        if pdu.ttt == RESERVED_TAG:
            raise ProtocolViolation("R2T with the reserved TTT")
        self._send_data_out(req, pdu.ttt, pdu.buffer_offset, pdu.desired_data_transfer_length)

    def _on_nop_in(self, frame: Frame) -> None:
        pdu = NopIn.decode(frame.bhs, frame.data)
        if pdu.itt == RESERVED_TAG:  # an unsolicited ping or a keep-alive (11.19)
            self._window(pdu, stat_sn_consumed=False)
            if pdu.ttt != RESERVED_TAG:
                self._send(NopOut(RESERVED_TAG, pdu.ttt, self.cmd_sn, self.exp_stat_sn,
                                  pdu.lun, True, bytes(pdu.data)))
            return
        self._window(pdu)
        if self._finish(pdu.itt, "nop") is not None:
            del self._requests[pdu.itt]
            self._events.append(NopReply(pdu.itt, bytes(pdu.data)))

    def _on_text(self, frame: Frame) -> None:
        pdu = TextResponse.decode(frame.bhs, frame.data)
        self._window(pdu)
        req = self._finish(pdu.itt, "text")
        if req is None:
            return
        req.text += pdu.data
        if len(req.text) > _MAX_TEXT:
            raise ProtocolViolation("text response too long")
        if not pdu.final:  # 11.11.1 continue with an empty request carrying the TTT
            if pdu.ttt == RESERVED_TAG:
                raise ProtocolViolation("non-final Text Response without a TTT")
            self._continue_text(req, pdu.ttt)
            return
        del self._requests[pdu.itt]
        try:
            pairs = decode_text(bytes(req.text))
        except ProtocolError as exc:
            self._events.append(RequestFailed(req.itt, ProtocolViolation(str(exc))))
            return
        self._events.append(TextComplete(req.itt, pairs))

    def _continue_text(self, req: _Request, ttt: int) -> None:
        req.sent = False
        req.build = lambda: self._send(TextRequest(req.itt, ttt, req.cmd_sn, self.exp_stat_sn))
        self._waiting.append(req)
        self._pump()

    def _on_tmf(self, frame: Frame) -> None:
        pdu = TaskMgmtResponse.decode(frame.bhs, frame.data)
        self._window(pdu)
        if self._finish(pdu.itt, "tmf") is not None:
            del self._requests[pdu.itt]
            self._events.append(TaskManagementComplete(pdu.itt, pdu.response))

    def _on_logout(self, frame: Frame) -> None:
        pdu = LogoutResponse.decode(frame.bhs, frame.data)
        self._window(pdu)
        if self._finish(pdu.itt, "logout") is not None:
            del self._requests[pdu.itt]
            self._events.append(LogoutComplete(pdu.itt, pdu.response, pdu.time2wait,
                                               pdu.time2retain))

    def _on_async(self, frame: Frame) -> None:
        pdu = AsyncMessage.decode(frame.bhs, frame.data)
        self._window(pdu)
        logout_itt = None
        if pdu.async_event == AsyncEvent.LOGOUT_REQUEST and not any(  # 11.9.1
                r.kind == "logout" for r in self._requests.values()):
            logout_itt = self.send_logout()
        self._events.append(AsyncEventReceived(pdu, logout_itt))

    def _on_reject(self, frame: Frame) -> None:
        pdu = Reject.decode(frame.bhs, frame.data)
        self._window(pdu, stat_sn_consumed=False)
        bhs = bytes(pdu.data)
        if len(bhs) < 48:
            raise ProtocolViolation("Reject without the rejected header")
        itt = int.from_bytes(bhs[16:20], "big")
        req = self._requests.pop(itt, None)
        if req is None:
            self.log.info("Reject reason %#x for opcode %#x (no request)", pdu.reason,
                          bhs[0] & OPCODE_MASK)
            return
        self._events.append(RequestFailed(itt, CommandRejected(pdu.reason)))

    _HANDLERS: dict[int, Callable[[InitiatorConnection, Frame], None]] = {
        Opcode.SCSI_RESPONSE: _on_scsi_response,
        Opcode.SCSI_DATA_IN: _on_data_in,
        Opcode.R2T: _on_r2t,
        Opcode.NOP_IN: _on_nop_in,
        Opcode.TEXT_RESPONSE: _on_text,
        Opcode.TASK_MGMT_RESPONSE: _on_tmf,
        Opcode.LOGOUT_RESPONSE: _on_logout,
        Opcode.ASYNC_MESSAGE: _on_async,
        Opcode.REJECT: _on_reject,
    }


def _describe(pdu: Any) -> str:
    """One line for debug logs: the PDU's fields without its data."""
    fields = ", ".join(f"{k}={getattr(pdu, k)!r}" for k in pdu.__slots__ if k != "data")
    return f"{type(pdu).__name__}({fields}, dlen={len(pdu.data)})"
