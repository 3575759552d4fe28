"""PDU codec (RFC 7143 section 11): one frozen slotted dataclass per PDU type.

Each class has ``decode(bhs, data)`` (``bhs`` is the 48-byte Basic Header Segment)
and ``encode() -> bytes`` returning the BHS only; the data segment travels as the
``data`` field untouched (zero-copy) and the framer adds padding and digests.
Headers use precompiled :class:`struct.Struct` layouts. The top byte of the fifth
word is TotalAHSLength and the low 24 bits DataSegmentLength (11.2.1).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from pytgt.iscsi.constants import RESERVED_TAG, Opcode, RejectReason
from pytgt.iscsi.errors import ProtocolError

Data = bytes | bytearray | memoryview

F_BIT = 0x80
I_BIT = 0x40
OPCODE_MASK = 0x3F

_SCSI_CMD = struct.Struct(">BBHIQIIII16s")
_SCSI_RSP = struct.Struct(">BBBBIQIIIIIIII")
_DATA_IN = struct.Struct(">BBBBIQIIIIIIII")
_DATA_OUT = struct.Struct(">BBHIQIIIIIIII")
_R2T = _DATA_OUT
_NOP_OUT = struct.Struct(">BBHIQIIII16s")
_NOP_IN = struct.Struct(">BBHIQIIIII12s")
_TMF_REQ = struct.Struct(">BBHIQIIIIII8s")
_TMF_RSP = struct.Struct(">BBBBIQIIIII12s")
_LOGIN_REQ = struct.Struct(">BBBBI6sHIHHII16s")
_LOGIN_RSP = struct.Struct(">BBBBI6sHIIIIIBBH8s")
_TEXT_REQ = _NOP_OUT
_TEXT_RSP = _NOP_IN
_LOGOUT_REQ = struct.Struct(">BBHIQIHHII16s")
_LOGOUT_RSP = struct.Struct(">BBBBIQIIIIIIHHI")
_ASYNC = struct.Struct(">BBHIQIIIIIBBHHHI")
_REJECT = struct.Struct(">BBBBIQIIIIIIQ")
_SNACK = struct.Struct(">BBHIQIIIIQII")
_NOREST = bytes(16)


def _ahs_dsl(data: Data, ahs_words: int = 0) -> int:
    n = len(data)
    if n > 0xFFFFFF:
        raise ValueError("data segment longer than 2**24-1")
    return (ahs_words << 24) | n


class Pdu(Protocol):
    """What every PDU class offers."""

    opcode: ClassVar[Opcode]
    data: Data

    def encode(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ScsiCommand:
    """SCSI Command (11.3). ``cdb`` includes any extended CDB from the AHS."""

    opcode: ClassVar[Opcode] = Opcode.SCSI_COMMAND
    itt: int
    cdb: bytes
    lun: int = 0
    expected_data_transfer_length: int = 0
    cmd_sn: int = 0
    exp_stat_sn: int = 0
    read: bool = False
    write: bool = False
    final: bool = True
    attr: int = 1
    immediate: bool = False
    bidi_read_length: int = 0
    data: Data = b""

    def encode(self) -> bytes:
        flags = (F_BIT if self.final else 0) | (0x40 if self.read else 0)
        flags |= (0x20 if self.write else 0) | (self.attr & 7)
        cdb, ahs = self.cdb[:16].ljust(16, b"\0"), b""
        if len(self.cdb) > 16:  # 11.3.5 extended CDB AHS, padded to 4 bytes
            ext = self.cdb[16:]
            ahs = struct.pack(">HB", len(ext) + 1, 1) + b"\0" + ext
            ahs += bytes(-len(ahs) % 4)
        op = self.opcode | (I_BIT if self.immediate else 0)
        bhs = _SCSI_CMD.pack(
            op, flags, 0, _ahs_dsl(self.data, len(ahs) // 4), self.lun, self.itt,
            self.expected_data_transfer_length, self.cmd_sn, self.exp_stat_sn, cdb,
        )
        return bhs + ahs

    @classmethod
    def decode(cls, bhs: Data, data: Data = b"", ahs: Data = b"") -> ScsiCommand:
        op, flags, _, _, lun, itt, edtl, cmd_sn, exp_stat_sn, cdb = _SCSI_CMD.unpack(bhs)
        bidi = 0
        cdb = bytes(cdb)
        for ahs_type, body in iter_ahs(ahs):
            if ahs_type == 1:  # extended CDB: first byte reserved
                cdb += bytes(body[1:])
            elif ahs_type == 2 and len(body) >= 5:  # bidirectional read data length
                bidi = int.from_bytes(body[1:5], "big")
        return cls(
            itt, cdb, lun, edtl, cmd_sn, exp_stat_sn, bool(flags & 0x40), bool(flags & 0x20),
            bool(flags & F_BIT), flags & 7, bool(op & I_BIT), bidi, data,
        )


def iter_ahs(ahs: Data) -> list[tuple[int, Data]]:
    """Split Additional Header Segments (11.2.2): 2-byte length, 1-byte type, padded to 4."""
    out: list[tuple[int, Data]] = []
    pos, view = 0, memoryview(ahs)
    while pos + 3 <= len(view):
        length = int.from_bytes(view[pos : pos + 2], "big")
        body = view[pos + 3 : pos + 3 + length]
        if len(body) != length:
            raise ProtocolError(RejectReason.PROTOCOL_ERROR, "AHS length beyond TotalAHSLength")
        out.append((view[pos + 2] & 0x3F, body))
        pos += 3 + length + (-(3 + length) % 4)
    return out


@dataclass(frozen=True, slots=True)
class ScsiResponse:
    """SCSI Response (11.4). ``data`` carries SenseLength + sense data when present."""

    opcode: ClassVar[Opcode] = Opcode.SCSI_RESPONSE
    itt: int
    status: int = 0
    response: int = 0
    stat_sn: int = 0
    exp_cmd_sn: int = 0
    max_cmd_sn: int = 0
    exp_data_sn: int = 0
    residual_count: int = 0
    overflow: bool = False
    underflow: bool = False
    bidi_residual_count: int = 0
    bidi_overflow: bool = False
    bidi_underflow: bool = False
    snack_tag: int = 0
    data: Data = b""

    def encode(self) -> bytes:
        flags = F_BIT | (0x10 if self.bidi_overflow else 0) | (0x08 if self.bidi_underflow else 0)
        flags |= (0x04 if self.overflow else 0) | (0x02 if self.underflow else 0)
        return _SCSI_RSP.pack(
            self.opcode, flags, self.response, self.status, _ahs_dsl(self.data), 0, self.itt,
            self.snack_tag, self.stat_sn, self.exp_cmd_sn, self.max_cmd_sn, self.exp_data_sn,
            self.bidi_residual_count, self.residual_count,
        )

    @classmethod
    def decode(cls, bhs: Data, data: Data = b"") -> ScsiResponse:
        (_, fl, rsp, st, _, _, itt, snack, ssn, ecs, mcs, eds, bres, res) = _SCSI_RSP.unpack(bhs)
        return cls(
            itt, st, rsp, ssn, ecs, mcs, eds, res, bool(fl & 4), bool(fl & 2), bres,
            bool(fl & 0x10), bool(fl & 8), snack, data,
        )


@dataclass(frozen=True, slots=True)
class DataIn:
    """SCSI Data-In (11.7). ``status`` is meaningful only when ``status_present`` (S bit)."""

    opcode: ClassVar[Opcode] = Opcode.SCSI_DATA_IN
    itt: int
    data_sn: int
    buffer_offset: int
    data: Data = b""
    final: bool = False
    status_present: bool = False
    status: int = 0
    acknowledge: bool = False
    overflow: bool = False
    underflow: bool = False
    residual_count: int = 0
    lun: int = 0
    ttt: int = RESERVED_TAG
    stat_sn: int = 0
    exp_cmd_sn: int = 0
    max_cmd_sn: int = 0

    def encode(self) -> bytes:
        flags = (F_BIT if self.final else 0) | (0x40 if self.acknowledge else 0)
        flags |= (0x04 if self.overflow else 0) | (0x02 if self.underflow else 0)
        flags |= 0x01 if self.status_present else 0
        return _DATA_IN.pack(
            self.opcode, flags, 0, self.status, _ahs_dsl(self.data), self.lun, self.itt,
            self.ttt, self.stat_sn, self.exp_cmd_sn, self.max_cmd_sn, self.data_sn,
            self.buffer_offset, self.residual_count,
        )

    @classmethod
    def decode(cls, bhs: Data, data: Data = b"") -> DataIn:
        (_, fl, _, st, _, lun, itt, ttt, ssn, ecs, mcs, dsn, off, res) = _DATA_IN.unpack(bhs)
        return cls(
            itt, dsn, off, data, bool(fl & F_BIT), bool(fl & 1), st, bool(fl & 0x40),
            bool(fl & 4), bool(fl & 2), res, lun, ttt, ssn, ecs, mcs,
        )


@dataclass(frozen=True, slots=True)
class DataOut:
    """SCSI Data-Out (11.7)."""

    opcode: ClassVar[Opcode] = Opcode.SCSI_DATA_OUT
    itt: int
    ttt: int
    data_sn: int
    buffer_offset: int
    data: Data = b""
    final: bool = False
    lun: int = 0
    exp_stat_sn: int = 0

    def encode(self) -> bytes:
        return _DATA_OUT.pack(
            self.opcode, F_BIT if self.final else 0, 0, _ahs_dsl(self.data), self.lun, self.itt,
            self.ttt, 0, self.exp_stat_sn, 0, self.data_sn, self.buffer_offset, 0,
        )

    @classmethod
    def decode(cls, bhs: Data, data: Data = b"") -> DataOut:
        (_, fl, _, _, lun, itt, ttt, _, esn, _, dsn, off, _) = _DATA_OUT.unpack(bhs)
        return cls(itt, ttt, dsn, off, data, bool(fl & F_BIT), lun, esn)


@dataclass(frozen=True, slots=True)
class R2T:
    """Ready To Transfer (11.8)."""

    opcode: ClassVar[Opcode] = Opcode.R2T
    itt: int
    ttt: int
    r2t_sn: int
    buffer_offset: int
    desired_data_transfer_length: int
    lun: int = 0
    stat_sn: int = 0
    exp_cmd_sn: int = 0
    max_cmd_sn: int = 0
    data: Data = b""

    def encode(self) -> bytes:
        return _R2T.pack(
            self.opcode, F_BIT, 0, 0, self.lun, self.itt, self.ttt, self.stat_sn,
            self.exp_cmd_sn, self.max_cmd_sn, self.r2t_sn, self.buffer_offset,
            self.desired_data_transfer_length,
        )

    @classmethod
    def decode(cls, bhs: Data, data: Data = b"") -> R2T:
        (_, _, _, _, lun, itt, ttt, ssn, ecs, mcs, r2tsn, off, ddtl) = _R2T.unpack(bhs)
        return cls(itt, ttt, r2tsn, off, ddtl, lun, ssn, ecs, mcs)


@dataclass(frozen=True, slots=True)
class NopOut:
    """NOP-Out (11.18); ``itt == RESERVED_TAG`` answers a target ping (then ``ttt`` is set)."""

    opcode: ClassVar[Opcode] = Opcode.NOP_OUT
    itt: int
    ttt: int = RESERVED_TAG
    cmd_sn: int = 0
    exp_stat_sn: int = 0
    lun: int = 0
    immediate: bool = True
    data: Data = b""

    def encode(self) -> bytes:
        op = self.opcode | (I_BIT if self.immediate else 0)
        return _NOP_OUT.pack(
            op, F_BIT, 0, _ahs_dsl(self.data), self.lun, self.itt, self.ttt, self.cmd_sn,
            self.exp_stat_sn, _NOREST,
        )

    @classmethod
    def decode(cls, bhs: Data, data: Data = b"") -> NopOut:
        (op, _, _, _, lun, itt, ttt, csn, esn, _) = _NOP_OUT.unpack(bhs)
        return cls(itt, ttt, csn, esn, lun, bool(op & I_BIT), data)


@dataclass(frozen=True, slots=True)
class NopIn:
    """NOP-In (11.19); ``ttt != RESERVED_TAG`` is a target ping expecting a NOP-Out."""

    opcode: ClassVar[Opcode] = Opcode.NOP_IN
    itt: int = RESERVED_TAG
    ttt: int = RESERVED_TAG
    stat_sn: int = 0
    exp_cmd_sn: int = 0
    max_cmd_sn: int = 0
    lun: int = 0
    data: Data = b""

    def encode(self) -> bytes:
        return _NOP_IN.pack(
            self.opcode, F_BIT, 0, _ahs_dsl(self.data), self.lun, self.itt, self.ttt,
            self.stat_sn, self.exp_cmd_sn, self.max_cmd_sn, _NOREST[:12],
        )

    @classmethod
    def decode(cls, bhs: Data, data: Data = b"") -> NopIn:
        (_, _, _, _, lun, itt, ttt, ssn, ecs, mcs, _) = _NOP_IN.unpack(bhs)
        return cls(itt, ttt, ssn, ecs, mcs, lun, data)


@dataclass(frozen=True, slots=True)
class TaskMgmtRequest:
    """Task Management Function Request (11.5)."""

    opcode: ClassVar[Opcode] = Opcode.TASK_MGMT_REQUEST
    itt: int
    function: int
    lun: int = 0
    referenced_task_tag: int = RESERVED_TAG
    cmd_sn: int = 0
    exp_stat_sn: int = 0
    ref_cmd_sn: int = 0
    exp_data_sn: int = 0
    immediate: bool = True
    data: Data = b""

    def encode(self) -> bytes:
        op = self.opcode | (I_BIT if self.immediate else 0)
        return _TMF_REQ.pack(
            op, F_BIT | (self.function & 0x7F), 0, _ahs_dsl(self.data), self.lun, self.itt,
            self.referenced_task_tag, self.cmd_sn, self.exp_stat_sn, self.ref_cmd_sn,
            self.exp_data_sn, _NOREST[:8],
        )

    @classmethod
    def decode(cls, bhs: Data, data: Data = b"") -> TaskMgmtRequest:
        (op, fl, _, _, lun, itt, rtt, csn, esn, rcs, eds, _) = _TMF_REQ.unpack(bhs)
        return cls(itt, fl & 0x7F, lun, rtt, csn, esn, rcs, eds, bool(op & I_BIT), data)


@dataclass(frozen=True, slots=True)
class TaskMgmtResponse:
    """Task Management Function Response (11.6)."""

    opcode: ClassVar[Opcode] = Opcode.TASK_MGMT_RESPONSE
    itt: int
    response: int = 0
    stat_sn: int = 0
    exp_cmd_sn: int = 0
    max_cmd_sn: int = 0
    data: Data = b""

    def encode(self) -> bytes:
        return _TMF_RSP.pack(
            self.opcode, F_BIT, self.response, 0, 0, 0, self.itt, 0, self.stat_sn,
            self.exp_cmd_sn, self.max_cmd_sn, _NOREST[:12],
        )

    @classmethod
    def decode(cls, bhs: Data, data: Data = b"") -> TaskMgmtResponse:
        (_, _, rsp, _, _, _, itt, _, ssn, ecs, mcs, _) = _TMF_RSP.unpack(bhs)
        return cls(itt, rsp, ssn, ecs, mcs)


@dataclass(frozen=True, slots=True)
class LoginRequest:
    """Login Request (11.12); ``data`` is the text segment."""

    opcode: ClassVar[Opcode] = Opcode.LOGIN_REQUEST
    itt: int
    isid: int
    tsih: int = 0
    cid: int = 0
    cmd_sn: int = 0
    exp_stat_sn: int = 0
    transit: bool = False
    cont: bool = False
    csg: int = 0
    nsg: int = 0
    version_max: int = 0
    version_min: int = 0
    data: Data = b""

    def encode(self) -> bytes:
        flags = (0x80 if self.transit else 0) | (0x40 if self.cont else 0)
        flags |= (self.csg & 3) << 2 | (self.nsg & 3)
        return _LOGIN_REQ.pack(
            self.opcode | I_BIT, flags, self.version_max, self.version_min,
            _ahs_dsl(self.data), self.isid.to_bytes(6, "big"), self.tsih, self.itt, self.cid, 0,
            self.cmd_sn, self.exp_stat_sn, _NOREST,
        )

    @classmethod
    def decode(cls, bhs: Data, data: Data = b"") -> LoginRequest:
        (_, fl, vmax, vmin, _, isid, tsih, itt, cid, _, csn, esn, _) = _LOGIN_REQ.unpack(bhs)
        return cls(
            itt, int.from_bytes(isid, "big"), tsih, cid, csn, esn, bool(fl & 0x80),
            bool(fl & 0x40), (fl >> 2) & 3, fl & 3, vmax, vmin, data,
        )


@dataclass(frozen=True, slots=True)
class LoginResponse:
    """Login Response (11.13)."""

    opcode: ClassVar[Opcode] = Opcode.LOGIN_RESPONSE
    itt: int
    isid: int
    tsih: int = 0
    stat_sn: int = 0
    exp_cmd_sn: int = 0
    max_cmd_sn: int = 0
    status_class: int = 0
    status_detail: int = 0
    transit: bool = False
    cont: bool = False
    csg: int = 0
    nsg: int = 0
    version_max: int = 0
    version_active: int = 0
    data: Data = b""

    def encode(self) -> bytes:
        flags = (0x80 if self.transit else 0) | (0x40 if self.cont else 0)
        flags |= (self.csg & 3) << 2 | (self.nsg & 3)
        return _LOGIN_RSP.pack(
            self.opcode, flags, self.version_max, self.version_active, _ahs_dsl(self.data),
            self.isid.to_bytes(6, "big"), self.tsih, self.itt, 0, self.stat_sn,
            self.exp_cmd_sn, self.max_cmd_sn, self.status_class, self.status_detail, 0,
            _NOREST[:8],
        )

    @classmethod
    def decode(cls, bhs: Data, data: Data = b"") -> LoginResponse:
        (_, fl, vmax, vact, _, isid, tsih, itt, _, ssn, ecs, mcs, sc, sd, _, _) = (
            _LOGIN_RSP.unpack(bhs)
        )
        return cls(
            itt, int.from_bytes(isid, "big"), tsih, ssn, ecs, mcs, sc, sd, bool(fl & 0x80),
            bool(fl & 0x40), (fl >> 2) & 3, fl & 3, vmax, vact, data,
        )


@dataclass(frozen=True, slots=True)
class TextRequest:
    """Text Request (11.10)."""

    opcode: ClassVar[Opcode] = Opcode.TEXT_REQUEST
    itt: int
    ttt: int = RESERVED_TAG
    cmd_sn: int = 0
    exp_stat_sn: int = 0
    final: bool = True
    cont: bool = False
    lun: int = 0
    immediate: bool = False
    data: Data = b""

    def encode(self) -> bytes:
        op = self.opcode | (I_BIT if self.immediate else 0)
        flags = (F_BIT if self.final else 0) | (0x40 if self.cont else 0)
        return _TEXT_REQ.pack(
            op, flags, 0, _ahs_dsl(self.data), self.lun, self.itt, self.ttt, self.cmd_sn,
            self.exp_stat_sn, _NOREST,
        )

    @classmethod
    def decode(cls, bhs: Data, data: Data = b"") -> TextRequest:
        (op, fl, _, _, lun, itt, ttt, csn, esn, _) = _TEXT_REQ.unpack(bhs)
        return cls(itt, ttt, csn, esn, bool(fl & F_BIT), bool(fl & 0x40), lun, bool(op & I_BIT),
                   data)


@dataclass(frozen=True, slots=True)
class TextResponse:
    """Text Response (11.11)."""

    opcode: ClassVar[Opcode] = Opcode.TEXT_RESPONSE
    itt: int
    ttt: int = RESERVED_TAG
    stat_sn: int = 0
    exp_cmd_sn: int = 0
    max_cmd_sn: int = 0
    final: bool = True
    cont: bool = False
    lun: int = 0
    data: Data = b""

    def encode(self) -> bytes:
        flags = (F_BIT if self.final else 0) | (0x40 if self.cont else 0)
        return _TEXT_RSP.pack(
            self.opcode, flags, 0, _ahs_dsl(self.data), self.lun, self.itt, self.ttt,
            self.stat_sn, self.exp_cmd_sn, self.max_cmd_sn, _NOREST[:12],
        )

    @classmethod
    def decode(cls, bhs: Data, data: Data = b"") -> TextResponse:
        (_, fl, _, _, lun, itt, ttt, ssn, ecs, mcs, _) = _TEXT_RSP.unpack(bhs)
        return cls(itt, ttt, ssn, ecs, mcs, bool(fl & F_BIT), bool(fl & 0x40), lun, data)


@dataclass(frozen=True, slots=True)
class LogoutRequest:
    """Logout Request (11.14)."""

    opcode: ClassVar[Opcode] = Opcode.LOGOUT_REQUEST
    itt: int
    reason: int = 0
    cid: int = 0
    cmd_sn: int = 0
    exp_stat_sn: int = 0
    immediate: bool = False
    data: Data = b""

    def encode(self) -> bytes:
        op = self.opcode | (I_BIT if self.immediate else 0)
        return _LOGOUT_REQ.pack(
            op, F_BIT | (self.reason & 0x7F), 0, _ahs_dsl(self.data), 0, self.itt, self.cid, 0,
            self.cmd_sn, self.exp_stat_sn, _NOREST,
        )

    @classmethod
    def decode(cls, bhs: Data, data: Data = b"") -> LogoutRequest:
        (op, fl, _, _, _, itt, cid, _, csn, esn, _) = _LOGOUT_REQ.unpack(bhs)
        return cls(itt, fl & 0x7F, cid, csn, esn, bool(op & I_BIT), data)


@dataclass(frozen=True, slots=True)
class LogoutResponse:
    """Logout Response (11.15)."""

    opcode: ClassVar[Opcode] = Opcode.LOGOUT_RESPONSE
    itt: int
    response: int = 0
    stat_sn: int = 0
    exp_cmd_sn: int = 0
    max_cmd_sn: int = 0
    time2wait: int = 0
    time2retain: int = 0
    data: Data = b""

    def encode(self) -> bytes:
        return _LOGOUT_RSP.pack(
            self.opcode, F_BIT, self.response, 0, 0, 0, self.itt, 0, self.stat_sn,
            self.exp_cmd_sn, self.max_cmd_sn, 0, self.time2wait, self.time2retain, 0,
        )

    @classmethod
    def decode(cls, bhs: Data, data: Data = b"") -> LogoutResponse:
        (_, _, rsp, _, _, _, itt, _, ssn, ecs, mcs, _, t2w, t2r, _) = _LOGOUT_RSP.unpack(bhs)
        return cls(itt, rsp, ssn, ecs, mcs, t2w, t2r)


@dataclass(frozen=True, slots=True)
class AsyncMessage:
    """Asynchronous Message (11.9); for SCSI events ``data`` is SenseLength + sense."""

    opcode: ClassVar[Opcode] = Opcode.ASYNC_MESSAGE
    async_event: int
    lun: int = 0
    stat_sn: int = 0
    exp_cmd_sn: int = 0
    max_cmd_sn: int = 0
    async_vcode: int = 0
    parameter1: int = 0
    parameter2: int = 0
    parameter3: int = 0
    data: Data = b""

    def encode(self) -> bytes:
        return _ASYNC.pack(
            self.opcode, F_BIT, 0, _ahs_dsl(self.data), self.lun, RESERVED_TAG, 0, self.stat_sn,
            self.exp_cmd_sn, self.max_cmd_sn, self.async_event, self.async_vcode,
            self.parameter1, self.parameter2, self.parameter3, 0,
        )

    @classmethod
    def decode(cls, bhs: Data, data: Data = b"") -> AsyncMessage:
        (_, _, _, _, lun, _, _, ssn, ecs, mcs, ev, vc, p1, p2, p3, _) = _ASYNC.unpack(bhs)
        return cls(ev, lun, ssn, ecs, mcs, vc, p1, p2, p3, data)


@dataclass(frozen=True, slots=True)
class Reject:
    """Reject (11.17); ``data`` is the rejected PDU's BHS."""

    opcode: ClassVar[Opcode] = Opcode.REJECT
    reason: int
    stat_sn: int = 0
    exp_cmd_sn: int = 0
    max_cmd_sn: int = 0
    data_sn: int = 0
    data: Data = b""

    def encode(self) -> bytes:
        return _REJECT.pack(
            self.opcode, F_BIT, self.reason, 0, _ahs_dsl(self.data), 0, RESERVED_TAG, 0,
            self.stat_sn, self.exp_cmd_sn, self.max_cmd_sn, self.data_sn, 0,
        )

    @classmethod
    def decode(cls, bhs: Data, data: Data = b"") -> Reject:
        (_, _, reason, _, _, _, _, _, ssn, ecs, mcs, dsn, _) = _REJECT.unpack(bhs)
        return cls(reason, ssn, ecs, mcs, dsn, data)


@dataclass(frozen=True, slots=True)
class SnackRequest:
    """SNACK Request (11.16)."""

    opcode: ClassVar[Opcode] = Opcode.SNACK_REQUEST
    itt: int
    type: int = 0
    lun: int = 0
    ttt: int = RESERVED_TAG
    exp_stat_sn: int = 0
    beg_run: int = 0
    run_length: int = 0
    data: Data = b""

    def encode(self) -> bytes:
        return _SNACK.pack(
            self.opcode, F_BIT | (self.type & 0xF), 0, _ahs_dsl(self.data), self.lun, self.itt,
            self.ttt, 0, self.exp_stat_sn, 0, self.beg_run, self.run_length,
        )

    @classmethod
    def decode(cls, bhs: Data, data: Data = b"") -> SnackRequest:
        (_, fl, _, _, lun, itt, ttt, _, esn, _, beg, run) = _SNACK.unpack(bhs)
        return cls(itt, fl & 0xF, lun, ttt, esn, beg, run, data)


DECODERS: dict[int, Any] = {
    cls.opcode: cls
    for cls in (
        ScsiCommand, ScsiResponse, DataIn, DataOut, R2T, NopOut, NopIn, TaskMgmtRequest,
        TaskMgmtResponse, LoginRequest, LoginResponse, TextRequest, TextResponse, LogoutRequest,
        LogoutResponse, AsyncMessage, Reject, SnackRequest,
    )
}


def opcode_of(bhs: Data) -> int:
    """The opcode of a raw BHS, without the I bit."""
    return bhs[0] & OPCODE_MASK


def decode_pdu(bhs: Data, data: Data = b"", ahs: Data = b"") -> object:
    """Decode any PDU; unknown opcodes raise ProtocolError(COMMAND_NOT_SUPPORTED)."""
    cls = DECODERS.get(bhs[0] & OPCODE_MASK)
    if cls is None:
        raise ProtocolError(RejectReason.COMMAND_NOT_SUPPORTED, f"opcode {bhs[0] & 0x3F:#04x}")
    if cls is ScsiCommand:
        return ScsiCommand.decode(bhs, data, ahs)
    return cls.decode(bhs, data)
