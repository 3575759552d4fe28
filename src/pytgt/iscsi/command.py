"""One SCSI task on the target side: Data-Out gathering and Data-In building.

RFC 7143 sections 4.2.2 (R2T/data transfer), 11.7 (Data-In/Out), 11.8 (R2T),
13.10-13.14 (FirstBurstLength, MaxBurstLength, ImmediateData/InitialR2T).
Pure bookkeeping: the connection feeds PDUs in and collects PDUs to send.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytgt.bufpool import BufferPool
from pytgt.iscsi.constants import RESERVED_TAG, RejectReason
from pytgt.iscsi.errors import ProtocolError
from pytgt.iscsi.pdu import DataOut, ScsiCommand

Data = bytes | bytearray | memoryview

# ASC/ASCQ for a broken Data-Out sequence (SPC-4 annex D, ABORTED COMMAND).
DATA_PHASE_ERROR = (0x4B, 0x00)
DATA_OFFSET_ERROR = (0x4B, 0x05)


@dataclass(slots=True)
class Limits:
    """The negotiated values a task needs (13.x)."""

    immediate_data: bool = True
    initial_r2t: bool = True
    first_burst_length: int = 65536
    max_burst_length: int = 262144
    max_outstanding_r2t: int = 1
    max_xmit_data_segment_length: int = 8192
    data_pdu_in_order: bool = True  # else offsets only bounded, buffers fresh (13.18)


@dataclass(slots=True)
class R2TState:
    """An outstanding R2T: the burst it solicited and the next DataSN expected."""

    ttt: int
    r2t_sn: int
    offset: int
    length: int
    received: int = 0
    next_data_sn: int = 0


class Task:
    """A received SCSI Command and the state of its Data-Out.

    A plain slotted class with a positional constructor: one is made per command, so
    it keeps to the fields the hot path reads (``itt``, ``lun``, ``cdb``, ``read``,
    ``write``, ``attr``, ``expected_length`` = EDTL, ``edtl`` = Data-Out length). The
    full :class:`ScsiCommand` is decoded from the raw header only when asked for.
    """

    __slots__ = ("itt", "lun", "cdb", "expected_length", "edtl", "read", "write", "attr",
                 "limits", "chunks", "received", "unsolicited_end", "unsolicited_done",
                 "unsolicited_next_data_sn", "unsolicited_next_offset", "next_r2t_offset",
                 "r2t_sn", "r2ts", "ordered", "delivered", "aborted", "data_sn", "submitted",
                 "data_error", "_command", "_raw", "_buf", "_sunk", "buffers")

    def __init__(self, itt: int, lun: int, cdb: bytes, expected_length: int, read: bool,
                 write: bool, attr: int, limits: Limits,
                 command: ScsiCommand | None = None,
                 raw: tuple[bytes, Data, Data] | None = None) -> None:
        self.itt = itt
        self.lun = lun
        self.cdb = cdb
        self.expected_length = expected_length
        self.edtl = expected_length if write else 0
        self.read = read
        self.write = write
        self.attr = attr
        self.limits = limits
        self.chunks: list[tuple[int, Data]] = []
        self.received = 0
        self.unsolicited_end = 0  # end offset of immediate + unsolicited data
        self.unsolicited_done = True
        self.unsolicited_next_data_sn = 0
        self.unsolicited_next_offset = 0
        self.next_r2t_offset = 0
        self.r2t_sn = 0
        self.r2ts: dict[int, R2TState] = {}
        self.ordered = False
        self.delivered = False
        self.aborted = False
        self.data_sn = 0  # next DataSN for Data-In
        self.submitted = False  # handed to the SCSI layer (task management asks)
        self.data_error: tuple[int, int] | None = None  # (ASC, ASCQ) of a broken sequence
        self._command = command
        self._raw = raw  # (BHS, data, AHS) to decode ``command`` from on demand
        self._buf: bytearray | None = None  # the Data-Out once it comes in several pieces
        self._sunk: tuple[int, int] | None = None  # (offset, length) received in place
        self.buffers: BufferPool | None = None  # where _buf comes from (the connection's)

    @property
    def command(self) -> ScsiCommand:
        """The SCSI Command PDU this task came from."""
        cmd = self._command
        if cmd is None:
            assert self._raw is not None
            bhs, data, ahs = self._raw
            cmd = self._command = ScsiCommand.decode(bhs, data, ahs)
        return cmd

    @classmethod
    def start(cls, cmd: ScsiCommand, limits: Limits) -> Task:
        """Begin a task; raises ProtocolError if the immediate data breaks the rules (13.13)."""
        task = cls(cmd.itt, cmd.lun, cmd.cdb, cmd.expected_data_transfer_length, cmd.read,
                   cmd.write, cmd.attr, limits, cmd)
        task.begin(cmd.data, cmd.final)
        return task

    def begin(self, data: Data, final: bool) -> None:
        """Take the immediate data and set up unsolicited Data-Out (13.13); raises
        ProtocolError if the immediate data breaks the rules."""
        limits = self.limits
        n = len(data)
        if n:
            if not self.write:
                raise ProtocolError(RejectReason.PROTOCOL_ERROR, "data with a non-write command")
            if not limits.immediate_data:
                raise ProtocolError(RejectReason.PROTOCOL_ERROR, "immediate data not negotiated")
            if n > min(limits.first_burst_length, self.edtl):
                raise ProtocolError(RejectReason.PROTOCOL_ERROR, "immediate data too long")
            self._store(0, data)
        self.unsolicited_end = self.unsolicited_next_offset = n
        if self.write and not final:
            if limits.initial_r2t:
                raise ProtocolError(RejectReason.PROTOCOL_ERROR, "unsolicited data with InitialR2T")
            self.unsolicited_end = min(limits.first_burst_length, self.edtl)
            self.unsolicited_done = self.unsolicited_end <= n
        self.next_r2t_offset = self.unsolicited_end

    @property
    def data_complete(self) -> bool:
        return self.received >= self.edtl and not self.r2ts and self.unsolicited_done

    def next_r2ts(self, next_ttt: int) -> list[R2TState]:
        """R2Ts to send now, up to MaxOutstandingR2T and MaxBurstLength each (11.8)."""
        out: list[R2TState] = []
        lim = self.limits
        while self.next_r2t_offset < self.edtl and len(self.r2ts) < lim.max_outstanding_r2t:
            length = min(lim.max_burst_length, self.edtl - self.next_r2t_offset)
            r2t = R2TState(next_ttt + len(out), self.r2t_sn, self.next_r2t_offset, length)
            self.r2t_sn += 1
            self.next_r2t_offset += length
            self.r2ts[r2t.ttt] = r2t
            out.append(r2t)
        return out

    def data_out(self, pdu: DataOut) -> bool:
        """Accept one Data-Out; True when it completed a burst (send more R2Ts).

        Raises ProtocolError for a wrong TTT, DataSN, offset or length (11.7).
        """
        n = len(pdu.data)
        if pdu.ttt == RESERVED_TAG:
            if self.unsolicited_done:
                raise ProtocolError(RejectReason.PROTOCOL_ERROR, "unexpected unsolicited data")
            ok = self._accept(pdu, self.unsolicited_next_data_sn, 0,
                              self.unsolicited_next_offset, self.unsolicited_end)
            self.unsolicited_next_data_sn += 1
            self.unsolicited_next_offset += n
            if ok:
                self._store(pdu.buffer_offset, pdu.data)
            if pdu.final:
                self.unsolicited_done = True
            return False
        r2t = self.r2ts.get(pdu.ttt)
        if r2t is None:
            raise ProtocolError(RejectReason.INVALID_PDU_FIELD, "unknown Target Transfer Tag")
        ok = self._accept(pdu, r2t.next_data_sn, r2t.offset, r2t.offset + r2t.received,
                          r2t.offset + r2t.length)
        r2t.next_data_sn += 1
        r2t.received += n
        if ok:
            self._store(pdu.buffer_offset, pdu.data)
        if pdu.final or r2t.received >= r2t.length:
            del self.r2ts[pdu.ttt]
            return True
        return False

    def _accept(self, pdu: DataOut, want_sn: int, low: int, offset: int, high: int) -> bool:
        """Check DataSN and offset (11.7.5, 11.7.6): with DataPDUInOrder=Yes at
        ``offset``, right after the sequence's previous PDU (increasing, no overlays),
        else anywhere in the sequence's ``low``..``high``. A bad PDU's data is dropped
        and the command will end in CHECK CONDITION, ABORTED COMMAND once its sequence
        ends."""
        if pdu.data_sn != want_sn:
            self.data_error = self.data_error or DATA_PHASE_ERROR
            return False
        start = pdu.buffer_offset
        if ((start != offset if self.limits.data_pdu_in_order else start < low)
                or start + len(pdu.data) > high):
            self.data_error = self.data_error or DATA_OFFSET_ERROR
            return False
        return self.data_error is None

    def _store(self, offset: int, data: Data) -> None:
        n = len(data)
        if not n:
            return
        self.received += n
        buf = self._buf
        if buf is None:
            if offset == 0 and n == self.edtl:  # all of it in one piece: kept as it is
                self.chunks.append((0, data))
                return
            buf = self._gather()
        if self._sunk == (offset, n):  # the framer received it in place (receive_into)
            self._sunk = None
            return
        buf[offset : offset + n] = data

    def _gather(self) -> bytearray:
        pool = self.buffers
        buf = self._buf = bytearray(self.edtl) if pool is None else pool.get(self.edtl)
        for off, data in self.chunks:
            buf[off : off + len(data)] = data
        self.chunks.clear()
        return buf

    def receive_into(self, ttt: int, offset: int, length: int) -> memoryview | None:
        """Where the data segment of a Data-Out for ``offset``/``length`` may be received
        directly (no copy out of the receive buffer), or None. Only inside the burst that
        TTT names, while the data is still being gathered; the PDU itself is checked by
        :meth:`data_out` once it is complete."""
        if (self.delivered or self.aborted or self.data_error is not None
                or self._sunk is not None):
            return None
        if ttt == RESERVED_TAG:
            low, high = (0, 0) if self.unsolicited_done else (0, self.unsolicited_end)
        else:
            r2t = self.r2ts.get(ttt)
            low, high = (0, 0) if r2t is None else (r2t.offset, r2t.offset + r2t.length)
        if offset < low or offset + length > high:
            return None
        buf = self._buf if self._buf is not None else self._gather()
        self._sunk = (offset, length)
        return memoryview(buf)[offset : offset + length]

    def data_out_buffer(self) -> Data:
        """All Data-Out in offset order, copied only when it came in several pieces."""
        if self._buf is not None:
            return self._buf
        if len(self.chunks) == 1 and self.chunks[0][0] == 0:
            return self.chunks[0][1]
        buf = bytearray(self.edtl)
        for off, data in self.chunks:
            buf[off : off + len(data)] = data
        return buf
