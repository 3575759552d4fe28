"""Primary commands shared by every device type (SPC-4), and LUN 0's controller table.

Handlers are ``async def handler(lu, task) -> ScsiResult``; they decode the CDB, raise
``CheckCondition`` for a bad field and build Data-In truncated to the ALLOCATION LENGTH.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from pytgt.scsi import alua, vpd
from pytgt.scsi import cdb as c
from pytgt.scsi import modepages as mp
from pytgt.scsi.cdb import Command, OperationCode, ServiceAction
from pytgt.scsi.pr import PR_ALLOWED, PR_READ, persistent_reserve_in, persistent_reserve_out
from pytgt.scsi.sense import (
    Asc,
    CheckCondition,
    SenseKey,
    build_sense,
    invalid_field,
    invalid_param,
)
from pytgt.scsi.task import ScsiResult, ScsiTask, Status

if TYPE_CHECKING:
    from pytgt.scsi.lu import LogicalUnit

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")

# Version descriptors (SPC-4 table 144): SAM-5, iSCSI, SPC-4, SBC-3.
_VERSION_DESCRIPTORS = (0x00A0, 0x0960, 0x0460, 0x04C0)


def data_in(data: bytes | bytearray | memoryview, alloc: int) -> ScsiResult:
    """GOOD with Data-In cut to the ALLOCATION LENGTH."""
    return ScsiResult(Status.GOOD, data[:alloc] if len(data) > alloc else data)


def good() -> ScsiResult:
    return ScsiResult(Status.GOOD)


async def prevent_allow_medium_removal(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    """PREVENT ALLOW MEDIUM REMOVAL (SPC-4 6.13): PREVENT 00b/01b for this I_T nexus; the
    other values (MMC's persistent prevent) are refused here."""
    prevent = task.cdb[4] & 0x03
    if prevent > 1:
        raise invalid_field(4, 1)
    lu.set_prevent(task.nexus.key, bool(prevent))
    return good()


#: A device type's MODE SENSE pages: (lu, page code, subpage, page control) -> the pages.
PageBuilder = Callable[["LogicalUnit", int, int, int], bytes]
Handler = Callable[["LogicalUnit", ScsiTask], Awaitable[ScsiResult]]


def mode_sense_without_descriptors(pages: PageBuilder) -> tuple[Handler, Handler]:
    """MODE SENSE(6) and (10) (SPC-4 6.11, 6.12) for a device type with no block
    descriptor: a zero header (no medium type, no device-specific bits) and ``pages``."""

    async def mode_sense_6(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
        cdb = task.cdb
        body = bytes(3) + pages(lu, cdb[2] & 0x3F, cdb[3], cdb[2] >> 6)
        return data_in(bytes((min(len(body), 255),)) + body, cdb[4])

    async def mode_sense_10(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
        cdb = task.cdb
        body = bytes(6) + pages(lu, cdb[2] & 0x3F, cdb[3], cdb[2] >> 6)
        return data_in(_U16.pack(len(body)) + body, _U16.unpack_from(cdb, 7)[0])

    return mode_sense_6, mode_sense_10


def param_list(task: ScsiTask, length: int) -> memoryview:
    """The parameter list actually received (at most the CDB's PARAMETER LIST LENGTH)."""
    view = memoryview(task.data_out).cast("B")
    return view[:length]


# INQUIRY (SPC-4 6.6).
def standard_inquiry(lu: LogicalUnit) -> bytes:
    """Standard INQUIRY data, 96 bytes."""
    head = bytes((
        lu.peripheral_type,
        0x80 if lu.removable else 0,
        0x06,  # VERSION: SPC-4
        0x12,  # HISUP, RESPONSE DATA FORMAT 2
        91,  # ADDITIONAL LENGTH
        alua.TPGS  # SCCS/ACC/TPGS (11b: implicit and explicit ALUA)/3PC/PROTECT
        | (0x08 if OperationCode.EXTENDED_COPY in lu.service_actions else 0),  # 3PC
        0x00,
        0x02,  # CMDQUE
    ))
    ident = (lu.vendor_id.ljust(8)[:8] + lu.product_id.ljust(16)[:16]
             + lu.product_rev.ljust(4)[:4]).encode("ascii", "replace")
    versions = b"".join(_U16.pack(v) for v in _VERSION_DESCRIPTORS)
    return head + ident + bytes(22) + versions.ljust(16, b"\0") + bytes(22)


def not_supported_inquiry() -> bytes:
    """INQUIRY data for a LUN with no logical unit: qualifier 011b, type 1Fh (SPC-4 6.6.2)."""
    return bytes((0x7F, 0, 0x06, 0x12, 31, 0, 0, 0x02)) + b" " * 28


def check_inquiry_cdb(cdb: bytes) -> tuple[bool, int, int]:
    """(evpd, page code, allocation length); raises for CMDDT or a page with EVPD=0."""
    evpd = bool(cdb[1] & 0x01)
    if cdb[1] & 0x02:
        raise invalid_field(1, 1)
    if not evpd and cdb[2]:
        raise invalid_field(2)
    return evpd, cdb[2], _U16.unpack_from(cdb, 3)[0]


async def inquiry(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    evpd, page, alloc = check_inquiry_cdb(task.cdb)
    if not evpd:
        return data_in(standard_inquiry(lu), alloc)
    builder = vpd.pages_for(lu).get(page)
    if builder is None:
        raise invalid_field(2)
    return data_in(builder(lu, task.nexus), alloc)


# TEST UNIT READY, REQUEST SENSE (SPC-4 6.37, 6.29).
async def test_unit_ready(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    return good()


async def request_sense(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    desc = bool(task.cdb[1] & 0x01)
    code = lu.ua_take(task.nexus.key)
    if code is not None:
        sense = build_sense(SenseKey.UNIT_ATTENTION, *code, descriptor=desc)
    elif lu.alua.restricted and (refused := lu.alua.refusal(task.nexus)) is not None:
        sense = build_sense(SenseKey.NOT_READY, *refused, descriptor=desc)  # SPC-4 6.29
    elif lu.sanitizing is not None:  # SANITIZE IN PROGRESS or failed (sanitize.py)
        sense = lu.sanitizing.sense(desc)
    elif not lu.online:
        sense = build_sense(SenseKey.NOT_READY, *Asc.MEDIUM_NOT_PRESENT, descriptor=desc)
    else:
        sense = build_sense(SenseKey.NO_SENSE, 0, 0, descriptor=desc)
    return data_in(sense, task.cdb[4])


def request_sense_no_lu(cdb: bytes) -> ScsiResult:
    """REQUEST SENSE addressed to a LUN with no logical unit (SPC-4 6.29)."""
    desc = bool(cdb[1] & 0x01)
    sense = build_sense(SenseKey.ILLEGAL_REQUEST, *Asc.LOGICAL_UNIT_NOT_SUPPORTED,
                        descriptor=desc)
    return data_in(sense, cdb[4])


# MODE SENSE / MODE SELECT (SPC-4 6.11-6.14).
def _block_descriptor(lu: LogicalUnit, long_lba: bool) -> bytes:
    blocks = lu.num_blocks
    if long_lba:
        return struct.pack(">QII", blocks, 0, lu.block_size)
    return struct.pack(">II", min(blocks, 0xFFFFFFFF), lu.block_size & 0xFFFFFF)


def _mode_pages(lu: LogicalUnit, page: int, subpage: int, pc: int) -> bytes:
    disk = lu.device_type == "disk"
    if pc == mp.PC_SAVED:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.SAVING_PARAMETERS_NOT_SUPPORTED,
                             field=2, bit=7)
    if page == mp.ALL_PAGES:
        if subpage not in (0x00, 0xFF):
            raise invalid_field(3)
        return b"".join(lu.mode.page(p, pc) for p in lu.mode.pages(disk))
    if page not in lu.mode.pages(disk):
        raise invalid_field(2, 5)
    if subpage not in (0x00, 0xFF):
        raise invalid_field(3)
    return lu.mode.page(page, pc)


def _device_specific(lu: LogicalUnit) -> int:
    if lu.device_type != "disk":
        return 0
    return (0x80 if lu.write_protected else 0) | 0x10  # WP, DPOFUA


async def mode_sense_6(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    pages = _mode_pages(lu, cdb[2] & 0x3F, cdb[3], cdb[2] >> 6)
    dbd = bool(cdb[1] & 0x08) or lu.device_type != "disk"
    bd = b"" if dbd else _block_descriptor(lu, False)
    body = bytes((0, _device_specific(lu), len(bd))) + bd + pages
    return data_in(bytes((min(len(body), 255),)) + body, cdb[4])


async def mode_sense_10(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    pages = _mode_pages(lu, cdb[2] & 0x3F, cdb[3], cdb[2] >> 6)
    dbd = bool(cdb[1] & 0x08) or lu.device_type != "disk"
    llbaa = bool(cdb[1] & 0x10)
    bd = b"" if dbd else _block_descriptor(lu, llbaa)
    head = struct.pack(">BBBBH", 0, _device_specific(lu), 0x01 if llbaa and bd else 0, 0, len(bd))
    body = head + bd + pages
    return data_in(_U16.pack(len(body)) + body, _U16.unpack_from(cdb, 7)[0])


async def mode_select_6(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    return _mode_select(lu, task, task.cdb[4], 4)


async def mode_select_10(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    return _mode_select(lu, task, _U16.unpack_from(task.cdb, 7)[0], 8)


def _mode_select(lu: LogicalUnit, task: ScsiTask, length: int, header: int) -> ScsiResult:
    if task.cdb[1] & 0x01:
        raise invalid_field(1, 0)  # SP: saving pages is not supported
    if length == 0:
        return good()
    data = param_list(task, length)
    if len(data) < header:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.PARAMETER_LIST_LENGTH_ERROR)
    bdl = data[3] if header == 4 else _U16.unpack_from(data, 6)[0]
    long_lba = header == 8 and bool(data[4] & 0x01)
    _check_block_descriptors(lu, data[header:header + bdl], header, long_lba)
    if len(data) < header + bdl:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.PARAMETER_LIST_LENGTH_ERROR)
    if lu.mode.select(data[header + bdl:], lu.device_type == "disk", header + bdl):
        lu.ua_add_all(lu.nexus_keys, Asc.MODE_PARAMETERS_CHANGED,
                      except_key=task.nexus.key)
    return good()


def _check_block_descriptors(lu: LogicalUnit, bds: memoryview, base: int,
                             long_lba: bool) -> None:
    size = 16 if long_lba else 8
    if len(bds) % size:
        raise invalid_param(base - 1)
    for pos in range(0, len(bds), size):
        off = pos + (12 if long_lba else 4)
        length = (_U32.unpack_from(bds, off)[0] if long_lba
                  else int.from_bytes(bds[off + 1:off + 4], "big"))
        if length != lu.block_size:
            raise invalid_param(base + off)


# REPORT SUPPORTED OPERATION CODES (SPC-4 6.35).
def _all_commands(lu: LogicalUnit) -> list[Command]:
    rows = list(lu.commands.values())
    for sas in lu.service_actions.values():
        rows.extend(sas.values())
    rows = [r for r in rows if r.available is None or r.available(lu)]
    return sorted(rows, key=lambda r: (r.opcode, r.service_action or 0))


def _timeouts() -> bytes:
    return struct.pack(">HBBII", 10, 0, 0, 0, 30)


def _usage(row: Command) -> bytes:
    if row.usage:
        return row.usage
    n = c.cdb_length(row.opcode) or 16
    out = bytearray(b"\xff" * n)
    out[0] = row.opcode
    if row.service_action is not None:
        out[1] = 0x1F  # SERVICE ACTION field
    out[-1] = 0x07  # CONTROL: NACA, LINK (obsolete), vendor bits
    return bytes(out)


async def report_supported_opcodes(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    rctd, option = bool(cdb[2] & 0x80), cdb[2] & 0x07
    alloc = _U32.unpack_from(cdb, 6)[0]
    if option == 0:
        out = bytearray()
        for row in _all_commands(lu):
            sa = row.service_action
            flags = (0x02 if rctd else 0) | (0x01 if sa is not None else 0)
            out += struct.pack(">BBHBBH", row.opcode, 0, sa or 0, 0, flags, len(_usage(row)))
            if rctd:
                out += _timeouts()
        return data_in(_U32.pack(len(out)) + out, alloc)
    opcode, sa = cdb[3], _U16.unpack_from(cdb, 4)[0]
    has_sa = opcode in lu.service_actions
    if option == 1 and has_sa or option == 2 and opcode in lu.commands:
        raise invalid_field(2, 2)
    if option not in (1, 2, 3):
        raise invalid_field(2, 2)
    found = lu.service_actions[opcode].get(sa) if has_sa else lu.commands.get(opcode)
    if found is None or found.available is not None and not found.available(lu):
        return data_in(bytes((0, 0x01, 0, 0)), alloc)  # SUPPORT 001b: not supported
    usage = _usage(found)
    one = bytes((0, (0x80 if rctd else 0) | 0x03)) + _U16.pack(len(usage)) + usage
    return data_in(one + (_timeouts() if rctd else b""), alloc)


async def report_supported_tmfs(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    # ATS, ATSS, CACAS, CTSS, LURS, QTS, TRS; no QUERY TASK SET etc.
    data = bytes((0xF8 | 0x02, 0, 0, 0))
    return data_in(data, _U32.unpack_from(task.cdb, 6)[0])


# RESERVE / RELEASE (SPC-2 7.21, 7.24), kept as tgt and Linux initiators still use them.
# With other gateways (lu.shared), the same code runs as one cluster-wide update.
async def reserve(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    def change() -> ScsiResult:
        holder = lu.reservation
        if holder is not None and holder != task.nexus.key or lu.pr.registrations:
            return ScsiResult(Status.RESERVATION_CONFLICT)
        lu.reservation = task.nexus.key
        return good()

    return change() if lu.shared is None else await lu.shared.update(change)


async def release(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    def change() -> ScsiResult:
        if lu.pr.registrations:
            return ScsiResult(Status.RESERVATION_CONFLICT)
        if lu.reservation == task.nexus.key:
            lu.reservation = None
        return good()

    return change() if lu.shared is None else await lu.shared.update(change)


# SEND DIAGNOSTIC (SPC-4 6.32): the default self-test always passes.
async def send_diagnostic(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    selftest, code = bool(cdb[1] & 0x04), cdb[1] >> 5
    if selftest and code:
        raise invalid_field(1, 7)
    if not selftest and _U16.unpack_from(cdb, 3)[0]:
        raise invalid_field(3)  # no diagnostic pages supported
    return good()


async def handled_by_target(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    """REPORT LUNS is answered by the target (it knows every LUN); never reached."""
    raise invalid_field(0)


A, R = PR_ALLOWED, PR_READ  # how a persistent reservation held elsewhere applies

SPC_COMMANDS: list[Command] = [
    Command(OperationCode.TEST_UNIT_READY, "TEST UNIT READY", test_unit_ready, pr_access=A),
    Command(OperationCode.REQUEST_SENSE, "REQUEST SENSE", request_sense, skip_ua=True, medium=False,
            conflicts=False, pr_access=A),
    Command(OperationCode.INQUIRY, "INQUIRY", inquiry, skip_ua=True, medium=False, conflicts=False,
            pr_access=A),
    Command(OperationCode.REPORT_LUNS, "REPORT LUNS", handled_by_target, skip_ua=True, medium=False,
            conflicts=False, pr_access=A),
    Command(OperationCode.MODE_SENSE_6, "MODE SENSE(6)", mode_sense_6, medium=False, pr_access=R),
    Command(OperationCode.MODE_SENSE_10, "MODE SENSE(10)", mode_sense_10, medium=False,
            pr_access=R),
    Command(OperationCode.MODE_SELECT_6, "MODE SELECT(6)", mode_select_6, c.param_len_6,
            medium=False),
    Command(OperationCode.MODE_SELECT_10, "MODE SELECT(10)", mode_select_10, c.param_len_7,
            medium=False),
    Command(OperationCode.RESERVE_6, "RESERVE(6)", reserve, medium=False, conflicts=False),
    Command(OperationCode.RESERVE_10, "RESERVE(10)", reserve, medium=False, conflicts=False),
    Command(OperationCode.RELEASE_6, "RELEASE(6)", release, medium=False, conflicts=False),
    Command(OperationCode.RELEASE_10, "RELEASE(10)", release, medium=False, conflicts=False),
    Command(OperationCode.SEND_DIAGNOSTIC, "SEND DIAGNOSTIC", send_diagnostic, c.param_len_3,
            medium=False),
    Command(OperationCode.PERSISTENT_RESERVE_IN, "PERSISTENT RESERVE IN", persistent_reserve_in,
            medium=False, pr_access=A),
    Command(OperationCode.PERSISTENT_RESERVE_OUT, "PERSISTENT RESERVE OUT", persistent_reserve_out,
            c.param_len_5_4, medium=False, pr_access=A),
    Command(OperationCode.MAINTENANCE_IN, "REPORT SUPPORTED OPERATION CODES",
            report_supported_opcodes, service_action=ServiceAction.REPORT_SUPPORTED_OPERATION_CODES,
            medium=False, conflicts=False, pr_access=A),
    Command(OperationCode.MAINTENANCE_IN, "REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS",
            report_supported_tmfs,
            service_action=ServiceAction.REPORT_SUPPORTED_TASK_MANAGEMENT_FUNCTIONS,
            medium=False, conflicts=False, pr_access=A),
    Command(OperationCode.MAINTENANCE_IN, "REPORT TARGET PORT GROUPS",
            alua.report_target_port_groups,
            service_action=alua.REPORT_TARGET_PORT_GROUPS, medium=False, conflicts=False,
            pr_access=A),
    Command(OperationCode.MAINTENANCE_OUT, "SET TARGET PORT GROUPS", alua.set_target_port_groups,
            alua.param_len_6_4, service_action=alua.SET_TARGET_PORT_GROUPS, medium=False),
]

CONTROLLER_COMMANDS: list[Command] = list(SPC_COMMANDS)
