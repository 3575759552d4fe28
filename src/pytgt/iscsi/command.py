"""One SCSI task on the target side: Data-Out gathering and Data-In building.

RFC 7143 sections 4.2.2 (R2T/data transfer), 11.7 (Data-In/Out), 11.8 (R2T),
13.10-13.14 (FirstBurstLength, MaxBurstLength, ImmediateData/InitialR2T).
Pure bookkeeping: the connection feeds PDUs in and collects PDUs to send.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass(slots=True)
class R2TState:
    """An outstanding R2T: the burst it solicited and the next DataSN expected."""

    ttt: int
    r2t_sn: int
    offset: int
    length: int
    received: int = 0
    next_data_sn: int = 0


@dataclass(slots=True)
class Task:
    """A received SCSI Command and the state of its Data-Out."""

    command: ScsiCommand
    limits: Limits
    chunks: list[tuple[int, Data]] = field(default_factory=list)
    received: int = 0
    unsolicited_end: int = 0  # end offset of immediate + unsolicited data
    unsolicited_done: bool = True
    unsolicited_next_data_sn: int = 0
    next_r2t_offset: int = 0
    r2t_sn: int = 0
    r2ts: dict[int, R2TState] = field(default_factory=dict)
    ordered: bool = False
    delivered: bool = False
    aborted: bool = False
    data_sn: int = 0  # next DataSN for Data-In
    scsi_task: object = None  # the transport's SCSI-layer task, for aborts
    data_error: tuple[int, int] | None = None  # (ASC, ASCQ) of a broken Data-Out sequence

    @property
    def itt(self) -> int:
        return self.command.itt

    @property
    def edtl(self) -> int:
        return self.command.expected_data_transfer_length if self.command.write else 0

    @classmethod
    def start(cls, cmd: ScsiCommand, limits: Limits) -> Task:
        """Begin a task; raises ProtocolError if the immediate data breaks the rules (13.13)."""
        task = cls(cmd, limits)
        n = len(cmd.data)
        if n and not cmd.write:
            raise ProtocolError(RejectReason.PROTOCOL_ERROR, "data with a non-write command")
        if n and not limits.immediate_data:
            raise ProtocolError(RejectReason.PROTOCOL_ERROR, "immediate data not negotiated")
        if n > min(limits.first_burst_length, task.edtl):
            raise ProtocolError(RejectReason.PROTOCOL_ERROR, "immediate data too long")
        if n:
            task.chunks.append((0, cmd.data))
            task.received = n
        task.unsolicited_end = n
        if cmd.write and not cmd.final:
            if limits.initial_r2t:
                raise ProtocolError(RejectReason.PROTOCOL_ERROR, "unsolicited data with InitialR2T")
            task.unsolicited_end = min(limits.first_burst_length, task.edtl)
            task.unsolicited_done = task.unsolicited_end <= n
        task.next_r2t_offset = task.unsolicited_end
        return task

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
            ok = self._accept(pdu, self.unsolicited_next_data_sn, 0, self.unsolicited_end)
            self.unsolicited_next_data_sn += 1
            if ok:
                self._store(pdu.buffer_offset, pdu.data)
            if pdu.final:
                self.unsolicited_done = True
            return False
        r2t = self.r2ts.get(pdu.ttt)
        if r2t is None:
            raise ProtocolError(RejectReason.INVALID_PDU_FIELD, "unknown Target Transfer Tag")
        ok = self._accept(pdu, r2t.next_data_sn, r2t.offset, r2t.offset + r2t.length)
        r2t.next_data_sn += 1
        r2t.received += n
        if ok:
            self._store(pdu.buffer_offset, pdu.data)
        if pdu.final or r2t.received >= r2t.length:
            del self.r2ts[pdu.ttt]
            return True
        return False

    def _accept(self, pdu: DataOut, want_sn: int, low: int, high: int) -> bool:
        """Check DataSN and offset (11.7.5, 11.7.6); a bad PDU's data is dropped and the
        command will end in CHECK CONDITION, ABORTED COMMAND once its sequence ends."""
        if pdu.data_sn != want_sn:
            self.data_error = self.data_error or DATA_PHASE_ERROR
            return False
        if pdu.buffer_offset < low or pdu.buffer_offset + len(pdu.data) > high:
            self.data_error = self.data_error or DATA_OFFSET_ERROR
            return False
        return self.data_error is None

    def _store(self, offset: int, data: Data) -> None:
        if data:
            self.chunks.append((offset, data))
            self.received += len(data)

    def data_out_buffer(self) -> Data:
        """All Data-Out in offset order, copied only when it came in several pieces."""
        if len(self.chunks) == 1 and self.chunks[0][0] == 0:
            return self.chunks[0][1]
        buf = bytearray(self.edtl)
        for off, data in self.chunks:
            buf[off : off + len(data)] = data
        return buf
