"""EXTENDED COPY (LID1) and RECEIVE COPY RESULTS (SPC-4 6.4, 6.19): the copy manager.

The LU that receives EXTENDED COPY is the copy manager. Its parameter list names
copy source and destination devices (CSCD descriptors; only the identification
descriptor E4h, which names an LU of this target by a designator of its VPD page 83h)
and segment descriptors (only block device to block device, 02h). Checks happen in
SPC-4's order:

1. the parameter list as a whole (header, lengths, counts, descriptor types and
   lengths): ILLEGAL REQUEST, nothing copied (SPC-4 6.4.3.2);
2. every segment against its CSCDs (reachable, block size, LBA range, write
   protection, reservations) before any data moves: COPY ABORTED with the segment
   number in COMMAND-SPECIFIC INFORMATION (6.4.3.3), except that a write-protected
   destination answers DATA PROTECT and a reserved one RESERVATION CONFLICT, as a
   WRITE to it would;
3. the data, through the LUs' stores, at most ``CHUNK`` bytes in memory at a time.

Copy status is held per I_T nexus and list identifier (LIST ID USAGE 00b) for
RECEIVE COPY RESULTS; it goes with its nexus.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pytgt.scsi import spc, vpd
from pytgt.scsi.cdb import Command, OperationCode, usage_bits
from pytgt.scsi.pr import PR_READ, PR_WRITE
from pytgt.scsi.sense import (
    Asc,
    CheckCondition,
    SenseKey,
    build_sense,
    invalid_field,
    invalid_param,
    sense_bytes,
)
from pytgt.scsi.task import ScsiResult, ScsiTask, Status

if TYPE_CHECKING:
    from pytgt.scsi.lu import LogicalUnit

# Additional sense codes of SPC-4 annex D used only here.
PARAMETER_LIST_LENGTH_ERROR = (0x1A, 0x00)
TOO_MANY_TARGET_DESCRIPTORS = (0x26, 0x06)
UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE = (0x26, 0x07)
TOO_MANY_SEGMENT_DESCRIPTORS = (0x26, 0x08)
UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE = (0x26, 0x09)
UNREACHABLE_COPY_TARGET = (0x08, 0x04)
COPY_TARGET_DEVICE_NOT_REACHABLE = (0x0D, 0x02)
INCORRECT_COPY_TARGET_DEVICE_TYPE = (0x0D, 0x03)
NO_ADDITIONAL_SENSE_INFORMATION = (0x00, 0x00)
OPERATION_IN_PROGRESS = (0x00, 0x16)

# Descriptor type codes (SPC-4 table 107, 110).
SEG_BLOCK_TO_BLOCK = 0x02
CSCD_IDENTIFICATION = 0xE4
_CSCD_LONG = frozenset({0xEA, 0xEB})  # IPv6, IP copy service: 64 bytes
CSCD_LENGTH = 32
SEG_B2B_LENGTH = 28
HEADER_LENGTH = 16

# Limits, advertised by OPERATING PARAMETERS and enforced by extended_copy.
MAX_CSCD_DESCRIPTORS = 16
MAX_SEGMENT_DESCRIPTORS = 64
MAX_DESCRIPTOR_LIST_LENGTH = MAX_CSCD_DESCRIPTORS * CSCD_LENGTH \
    + MAX_SEGMENT_DESCRIPTORS * SEG_B2B_LENGTH
MAX_SEGMENT_LENGTH = 0x10000000  # 256 MiB: more than 65535 blocks of 4096 bytes
MAX_INLINE_DATA_LENGTH = 0
HELD_DATA_LIMIT = 0
MAX_CONCURRENT_COPIES = 16
DATA_SEGMENT_GRANULARITY = 9  # log2 of the smallest block size (512)
IMPLEMENTED_DESCRIPTORS = bytes((SEG_BLOCK_TO_BLOCK, CSCD_IDENTIFICATION))
CHUNK = 1 << 20

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_HEADER = struct.Struct(">BBH4xII")  # list id, flags, CSCD list len, segment len, inline len
_B2B = struct.Struct(">BBHHH2xHQQ")


class CopyResultsAction(enum.IntEnum):
    """RECEIVE COPY RESULTS service actions (SPC-4 table 189)."""

    COPY_STATUS = 0x00
    RECEIVE_DATA = 0x01
    OPERATING_PARAMETERS = 0x03
    FAILED_SEGMENT_DETAILS = 0x04


class ListIdUsage(enum.IntEnum):
    """LIST ID USAGE (SPC-4 table 106)."""

    HOLD = 0b00
    NO_HOLD = 0b10
    NOT_UNIQUE = 0b11


class CopyManagerStatus(enum.IntEnum):
    """COPY MANAGER STATUS of COPY STATUS data (SPC-4 6.19.2)."""

    IN_PROGRESS = 0x00
    COMPLETED_GOOD = 0x01
    COMPLETED_WITH_ERRORS = 0x02


@dataclass(slots=True)
class CopyOperation:
    """What the copy manager holds about one EXTENDED COPY (list identifier)."""

    usage: int
    status: CopyManagerStatus = CopyManagerStatus.IN_PROGRESS
    segments: int = 0  # segments processed
    transferred: int = 0  # bytes written to destinations
    scsi_status: int = Status.GOOD
    sense: bytes = b""


@dataclass
class CopyManager:
    """Per-LU copy state: operations by (nexus key, list identifier)."""

    operations: dict[tuple[str, int], CopyOperation] = field(default_factory=dict)

    def running(self) -> int:
        return sum(op.status == CopyManagerStatus.IN_PROGRESS for op in self.operations.values())

    def prune(self, live: Collection[str]) -> None:
        """Forget operations of nexuses that are gone (held data ends with its I_T nexus)."""
        for key in [k for k in self.operations if k[0] not in live]:
            del self.operations[key]


# Parameter list decoding (SPC-4 6.4.2-6.4.6).
@dataclass(frozen=True, slots=True)
class Cscd:
    """One identification CSCD descriptor, at ``offset`` in the parameter list."""

    offset: int
    device_type: int
    designator: tuple[int, int, int, bytes]  # code set, association, type, value
    pad: bool
    block_length: int


@dataclass(frozen=True, slots=True)
class Segment:
    """One block-to-block segment descriptor, at ``offset`` in the parameter list."""

    offset: int
    dc: bool
    src: int
    dst: int
    blocks: int
    src_lba: int
    dst_lba: int


@dataclass(frozen=True, slots=True)
class CopyList:
    list_id: int
    usage: int
    cscds: list[Cscd]
    segments: list[Segment]


def _length_error() -> CheckCondition:
    return CheckCondition(SenseKey.ILLEGAL_REQUEST, PARAMETER_LIST_LENGTH_ERROR)


def _illegal(asc: tuple[int, int], field_: int) -> CheckCondition:
    return CheckCondition(SenseKey.ILLEGAL_REQUEST, asc, field=field_, cdb=False)


def parse_parameter_list(data: memoryview) -> CopyList:
    """Decode and check an EXTENDED COPY (LID1) parameter list; raises CheckCondition."""
    if len(data) < HEADER_LENGTH:
        raise _length_error()
    list_id, flags, cscd_len, seg_len, inline_len = _HEADER.unpack_from(data)
    usage = (flags >> 3) & 0x03
    if usage == 0b01:
        raise invalid_param(1, 4)
    if usage == ListIdUsage.NOT_UNIQUE and list_id:
        raise invalid_param(0)
    if cscd_len + seg_len > MAX_DESCRIPTOR_LIST_LENGTH:
        raise _length_error()
    if HEADER_LENGTH + cscd_len + seg_len + inline_len > len(data):
        raise _length_error()
    if inline_len > MAX_INLINE_DATA_LENGTH:
        raise invalid_param(12)
    cscds = list(_cscds(data, HEADER_LENGTH, cscd_len))
    segments = list(_segments(data, HEADER_LENGTH + cscd_len, seg_len))
    return CopyList(list_id, usage, cscds, segments)


def _cscds(data: memoryview, start: int, length: int) -> Iterator[Cscd]:
    pos, end, count = start, start + length, 0
    while pos < end:
        code = data[pos]
        size = 64 if code in _CSCD_LONG else CSCD_LENGTH
        count += 1
        if count > MAX_CSCD_DESCRIPTORS:
            raise _illegal(TOO_MANY_TARGET_DESCRIPTORS, pos)
        if code != CSCD_IDENTIFICATION:
            raise _illegal(UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE, pos)
        if pos + size > end:
            raise invalid_param(2)  # CSCD DESCRIPTOR LIST LENGTH cuts a descriptor
        yield _cscd(data, pos)
        pos += size


def _cscd(data: memoryview, pos: int) -> Cscd:
    # Byte 1: LU ID TYPE is ignored for an identification descriptor, which names its
    # LU by the designator; NUL is obsolete in SPC-4 (6.4.5.1); PERIPHERAL DEVICE TYPE.
    b1 = data[pos + 1]
    code_set, b5, desig_len = data[pos + 4], data[pos + 5], data[pos + 7]
    if desig_len > 20:
        raise invalid_param(pos + 7)
    designator = (code_set & 0x0F, (b5 >> 4) & 0x03, b5 & 0x0F,
                  bytes(data[pos + 8:pos + 8 + desig_len]))
    block_length = int.from_bytes(data[pos + 29:pos + 32], "big")
    return Cscd(pos, b1 & 0x1F, designator, bool(data[pos + 28] & 0x04), block_length)


def _segments(data: memoryview, start: int, length: int) -> Iterator[Segment]:
    pos, end, count = start, start + length, 0
    while pos < end:
        count += 1
        if count > MAX_SEGMENT_DESCRIPTORS:
            raise _illegal(TOO_MANY_SEGMENT_DESCRIPTORS, pos)
        if data[pos] != SEG_BLOCK_TO_BLOCK:
            raise _illegal(UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE, pos)
        if pos + 4 > end or _U16.unpack_from(data, pos + 2)[0] != SEG_B2B_LENGTH - 4:
            raise invalid_param(pos + 2)
        if pos + SEG_B2B_LENGTH > end:
            raise invalid_param(8)  # SEGMENT DESCRIPTOR LIST LENGTH cuts a descriptor
        _, b1, _, src, dst, blocks, src_lba, dst_lba = _B2B.unpack_from(data, pos)
        yield Segment(pos, bool(b1 & 0x02), src, dst, blocks, src_lba, dst_lba)
        pos += SEG_B2B_LENGTH


# Segment processing (SPC-4 6.4.3.3, 6.4.6.5).
class CopyAborted(Exception):
    """A segment failed: COPY ABORTED, or a copy target's own status and sense."""

    def __init__(self, segment: int, asc: Asc | tuple[int, int], *, field_: int | None = None,
                 forwarded: tuple[int, int, CheckCondition | None] | None = None) -> None:
        super().__init__(f"copy aborted in segment {segment}")
        self.segment = segment
        self.asc = (asc[0], asc[1])
        self.field = field_
        self.forwarded = forwarded  # (1 source / 2 destination, status, sense)


@dataclass(frozen=True, slots=True)
class Transfer:
    src: LogicalUnit
    dst: LogicalUnit
    src_offset: int
    dst_offset: int
    length: int


def lu_designators(lu: LogicalUnit) -> set[tuple[int, int, int, bytes]]:
    """The LU-associated designators of VPD page 83h: (code set, association, type, value)."""
    from pytgt.scsi.task import ItNexus

    page = vpd.device_identification(lu, ItNexus("", ""))
    out, pos = set(), 4
    while pos + 4 <= len(page):
        b0, b1, length = page[pos], page[pos + 1], page[pos + 3]
        assoc = (b1 >> 4) & 0x03
        if assoc == vpd.ASSOC_LU:
            out.add((b0 & 0x0F, assoc, b1 & 0x0F, bytes(page[pos + 4:pos + 4 + length])))
        pos += 4 + length
    return out


def _resolve(lu: LogicalUnit, cscd: Cscd, seg: int) -> LogicalUnit:
    for peer in list(lu.peers.values()):
        if cscd.designator in lu_designators(peer):
            break
    else:
        raise CopyAborted(seg, COPY_TARGET_DEVICE_NOT_REACHABLE, field_=cscd.offset + 4)
    if peer.store is None or cscd.device_type != peer.peripheral_type \
            or peer.device_type != "disk":
        raise CopyAborted(seg, INCORRECT_COPY_TARGET_DEVICE_TYPE, field_=cscd.offset + 1)
    if not (peer.online and peer.loaded):
        raise CopyAborted(seg, COPY_TARGET_DEVICE_NOT_REACHABLE, field_=cscd.offset)
    if cscd.block_length not in (0, peer.block_size):
        raise CopyAborted(seg, Asc.INVALID_FIELD_IN_PARAMETER_LIST, field_=cscd.offset + 29)
    return peer


def _check_access(peer: LogicalUnit, task: ScsiTask, access: int) -> bool:
    """Whether ``task``'s nexus may read (PR_READ) or write (PR_WRITE) ``peer``."""
    key = task.nexus.key
    if peer.reservation is not None and peer.reservation != key:
        return False
    return not (peer.pr.type and peer.pr.conflicts(task.nexus, access))


def plan(lu: LogicalUnit, task: ScsiTask, copy: CopyList) -> list[Transfer]:
    """Check every segment against its CSCDs; raises CopyAborted or CheckCondition."""
    out = []
    for number, seg in enumerate(copy.segments):
        for index in (seg.src, seg.dst):
            if index >= len(copy.cscds):
                field_ = seg.offset + (4 if index == seg.src else 6)
                raise CopyAborted(number, UNREACHABLE_COPY_TARGET, field_=field_)
        src = _resolve(lu, copy.cscds[seg.src], number)
        dst = _resolve(lu, copy.cscds[seg.dst], number)
        out.append(_transfer(task, number, seg, src, dst))
    return out


def _transfer(task: ScsiTask, number: int, seg: Segment, src: LogicalUnit,
              dst: LogicalUnit) -> Transfer:
    length = seg.blocks * (dst.block_size if seg.dc else src.block_size)
    if length % src.block_size or length % dst.block_size or length > MAX_SEGMENT_LENGTH:
        raise CopyAborted(number, Asc.INVALID_FIELD_IN_PARAMETER_LIST, field_=seg.offset + 10)
    src_offset, dst_offset = seg.src_lba * src.block_size, seg.dst_lba * dst.block_size
    for role, peer, offset in ((1, src, src_offset), (2, dst, dst_offset)):
        if offset + length > peer.size:
            lba = CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.LOGICAL_BLOCK_ADDRESS_OUT_OF_RANGE)
            raise CopyAborted(number, NO_ADDITIONAL_SENSE_INFORMATION,
                              field_=seg.offset + (12 if role == 1 else 20),
                              forwarded=(role, Status.CHECK_CONDITION, lba))
    if not _check_access(src, task, PR_READ) or not _check_access(dst, task, PR_WRITE):
        raise _Conflict()
    if dst.write_protected:
        raise CheckCondition(SenseKey.DATA_PROTECT, Asc.WRITE_PROTECTED)
    return Transfer(src, dst, src_offset, dst_offset, length)


class _Conflict(Exception):
    """A copy target is reserved by another I_T nexus: RESERVATION CONFLICT."""


async def move(task: ScsiTask, transfer: Transfer, op: CopyOperation) -> None:
    """Copy one segment through the stores, CHUNK bytes at a time (backwards if it overlaps)."""
    src, dst = transfer.src.store, transfer.dst.store
    assert src is not None and dst is not None
    length = transfer.length
    starts = list(range(0, length, CHUNK))
    same = src is dst
    if same and transfer.src_offset < transfer.dst_offset < transfer.src_offset + length:
        starts.reverse()  # a forward copy would overwrite source blocks not yet read
    for start in starts:
        if task.aborted:
            return
        n = min(CHUNK, length - start)
        data = await src.read(transfer.src_offset + start, n)
        await dst.write(transfer.dst_offset + start, data)
        op.transferred += n
    if length and not transfer.dst.mode.wce:
        await dst.flush()


# EXTENDED COPY (LID1) (SPC-4 6.4).
def parameter_list_length(cdb: bytes, bs: int) -> int:
    """EXTENDED COPY: PARAMETER LIST LENGTH in bytes 10-13 (the Data-Out length)."""
    return int(_U32.unpack_from(cdb, 10)[0])


async def extended_copy(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    length = _U32.unpack_from(task.cdb, 10)[0]
    if length == 0:
        return ScsiResult(Status.GOOD)
    data = spc.param_list(task, length)
    if len(data) < length:
        raise _length_error()
    copy = parse_parameter_list(data)
    manager = lu.copy_manager
    manager.prune(lu.nexuses)
    key = (task.nexus.key, copy.list_id)
    held = manager.operations.get(key)
    if copy.usage != ListIdUsage.NOT_UNIQUE and held is not None \
            and held.status == CopyManagerStatus.IN_PROGRESS:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, OPERATION_IN_PROGRESS)
    if manager.running() >= MAX_CONCURRENT_COPIES:
        return ScsiResult(Status.BUSY)
    op = CopyOperation(copy.usage)
    if copy.usage != ListIdUsage.NOT_UNIQUE:
        manager.operations[key] = op
    try:
        return await _run(lu, task, copy, op)
    finally:
        if copy.usage != ListIdUsage.HOLD and manager.operations.get(key) is op:
            del manager.operations[key]


async def _run(lu: LogicalUnit, task: ScsiTask, copy: CopyList, op: CopyOperation) -> ScsiResult:
    try:
        transfers = plan(lu, task, copy)
        for transfer in transfers:
            await move(task, transfer, op)
            if task.aborted:
                return _finish(op, ScsiResult(Status.TASK_ABORTED))
            op.segments += 1
    except CopyAborted as exc:
        sense = copy_aborted_sense(exc, lu.mode.d_sense)
        return _finish(op, ScsiResult(Status.CHECK_CONDITION, b"", sense))
    except _Conflict:
        return _finish(op, ScsiResult(Status.RESERVATION_CONFLICT))
    except CheckCondition as exc:
        return _finish(op, lu.check_condition(exc))
    except BaseException:
        op.status = CopyManagerStatus.COMPLETED_WITH_ERRORS
        op.scsi_status = Status.CHECK_CONDITION
        raise
    return _finish(op, ScsiResult(Status.GOOD))


def _finish(op: CopyOperation, result: ScsiResult) -> ScsiResult:
    good = result.status == Status.GOOD
    op.status = CopyManagerStatus.COMPLETED_GOOD if good else \
        CopyManagerStatus.COMPLETED_WITH_ERRORS
    op.scsi_status, op.sense = result.status, result.sense
    return result


def copy_aborted_sense(exc: CopyAborted, descriptor: bool) -> bytes:
    """COPY ABORTED sense (SPC-4 6.4.3.3): segment number in COMMAND-SPECIFIC INFORMATION,
    the field at fault as a segment pointer, a copy target's status and sense appended."""
    sks = None
    if exc.field is not None:
        sks = bytes((0x80, (exc.field >> 8) & 0xFF, exc.field & 0xFF))  # SD=0: list offset
    sense = bytearray(build_sense(SenseKey.COPY_ABORTED, *exc.asc, descriptor=descriptor,
                                  sks=sks))
    forwarded = b""
    role = 0
    if exc.forwarded is not None:
        role, status, inner = exc.forwarded
        forwarded = bytes((status,)) + (sense_bytes(inner) if inner is not None else b"")
    csi = bytearray(4)
    csi[2:4] = _U16.pack(exc.segment & 0xFFFF)
    if not descriptor:
        if forwarded:
            csi[role - 1] = len(sense)  # where the copy target's status byte starts
            sense += forwarded
            sense[7] += len(forwarded)
        sense[8:12] = csi
        return bytes(sense)
    extra = bytes((0x01, 0x0A, 0, 0)) + bytes(csi) + bytes(4)  # command-specific information
    if forwarded:
        status_byte, inner_sense = forwarded[0], forwarded[1:]
        body = bytes((role & 0x0F, status_byte)) + inner_sense
        extra += bytes((0x0C, len(body))) + body  # forwarded sense data descriptor
    sense += extra
    sense[7] += len(extra)
    return bytes(sense)


# RECEIVE COPY RESULTS (SPC-4 6.19).
async def receive_copy_results(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    action, list_id, alloc = cdb[1] & 0x1F, cdb[2], _U32.unpack_from(cdb, 10)[0]
    if action == CopyResultsAction.OPERATING_PARAMETERS:
        return spc.data_in(operating_parameters(), alloc)
    manager = lu.copy_manager
    manager.prune(lu.nexuses)
    key = (task.nexus.key, list_id)
    op = manager.operations.get(key)
    if op is None:
        raise invalid_field(2)  # no copy known by that list identifier
    if action == CopyResultsAction.COPY_STATUS:
        if op.status != CopyManagerStatus.IN_PROGRESS and alloc >= 12:
            del manager.operations[key]  # completed status is reported once
        return spc.data_in(copy_status(op), alloc)
    if action == CopyResultsAction.RECEIVE_DATA:
        return spc.data_in(bytes(4), alloc)  # nothing held: no segment holds data
    if action == CopyResultsAction.FAILED_SEGMENT_DETAILS:
        data = failed_segment_details(op)
        if op.status != CopyManagerStatus.IN_PROGRESS and alloc >= len(data):
            del manager.operations[key]
        return spc.data_in(data, alloc)
    raise invalid_field(1, 4)


def copy_status(op: CopyOperation) -> bytes:
    """COPY STATUS parameter data (SPC-4 6.19.2)."""
    units, count = 0, op.transferred  # TRANSFER COUNT UNITS 00h bytes, 01h KiB, 02h MiB...
    while count > 0xFFFFFFFF:
        units, count = units + 1, count >> 10
    return struct.pack(">IBHBI", 8, op.status, min(op.segments, 0xFFFF), units, count)


def failed_segment_details(op: CopyOperation) -> bytes:
    """FAILED SEGMENT DETAILS parameter data (SPC-4 6.19.5)."""
    if op.status != CopyManagerStatus.COMPLETED_WITH_ERRORS:
        return bytes(4)
    body = bytes(52) + struct.pack(">BxH", op.scsi_status, len(op.sense)) + op.sense
    return _U32.pack(len(body)) + body


def operating_parameters() -> bytes:
    """OPERATING PARAMETERS parameter data (SPC-4 6.19.4): the limits extended_copy enforces."""
    body = struct.pack(
        ">B3xHHIIIII2xHBBBB3xB",
        0x01,  # SNLID: LIST ID USAGE 11b supported
        MAX_CSCD_DESCRIPTORS,
        MAX_SEGMENT_DESCRIPTORS,
        MAX_DESCRIPTOR_LIST_LENGTH,
        MAX_SEGMENT_LENGTH,
        MAX_INLINE_DATA_LENGTH,
        HELD_DATA_LIMIT,
        0,  # MAXIMUM STREAM DEVICE TRANSFER SIZE
        MAX_CONCURRENT_COPIES,  # TOTAL CONCURRENT COPIES
        MAX_CONCURRENT_COPIES,  # MAXIMUM CONCURRENT COPIES
        DATA_SEGMENT_GRANULARITY,
        0,  # INLINE DATA GRANULARITY
        0,  # HELD DATA GRANULARITY
        len(IMPLEMENTED_DESCRIPTORS),
    ) + IMPLEMENTED_DESCRIPTORS
    return _U32.pack(len(body)) + body


_F = 0xFF
COMMANDS: list[Command] = [
    Command(OperationCode.EXTENDED_COPY, "EXTENDED COPY(LID1)", extended_copy,
            parameter_list_length,
            service_action=0x00,
            usage=usage_bits(16, OperationCode.EXTENDED_COPY, 0x1F, 0, 0, 0, 0, 0, 0, 0, 0,
                             _F, _F, _F, _F, 0, 0x07)),
    *(Command(OperationCode.RECEIVE_COPY_RESULTS, f"RECEIVE COPY RESULTS({sa.name})",
              receive_copy_results, service_action=sa, medium=False, pr_access=PR_READ,
              usage=usage_bits(16, OperationCode.RECEIVE_COPY_RESULTS, 0x1F,
                               0 if sa == CopyResultsAction.OPERATING_PARAMETERS else _F,
                               0, 0, 0, 0, 0, 0, 0, _F, _F, _F, _F, 0, 0x07))
      for sa in CopyResultsAction),
]
"""The command-table rows (block devices: sbc.DISK_COMMANDS)."""


# Third-party Copy VPD page (SPC-4 7.8.17).
def _tpc_descriptor(kind: int, body: bytes) -> bytes:
    body = body.ljust(-(-len(body) // 4) * 4, b"\0")  # descriptors are a multiple of 4 bytes
    return struct.pack(">HH", kind, len(body)) + body


def third_party_copy_descriptors(lu: LogicalUnit) -> bytes:
    """The descriptors of VPD page 8Fh, from the LU's command table and the limits above."""
    commands = b""
    for opcode in (OperationCode.EXTENDED_COPY, OperationCode.RECEIVE_COPY_RESULTS):
        actions = bytes(sorted(lu.service_actions.get(opcode, {})))
        if actions:
            commands += bytes((opcode, len(actions))) + actions
    supported = _tpc_descriptor(0x0001, bytes((len(commands),)) + commands)
    parameters = _tpc_descriptor(0x0004, struct.pack(
        ">4xHHII12x", MAX_CSCD_DESCRIPTORS, MAX_SEGMENT_DESCRIPTORS,
        MAX_DESCRIPTOR_LIST_LENGTH, MAX_INLINE_DATA_LENGTH))
    descriptors = _tpc_descriptor(
        0x0008, bytes((len(IMPLEMENTED_DESCRIPTORS),)) + IMPLEMENTED_DESCRIPTORS)
    general = _tpc_descriptor(0x8001, struct.pack(
        ">IIIBB14x", MAX_CONCURRENT_COPIES, MAX_CONCURRENT_COPIES, MAX_SEGMENT_LENGTH,
        DATA_SEGMENT_GRANULARITY, 0))
    return supported + parameters + descriptors + general
