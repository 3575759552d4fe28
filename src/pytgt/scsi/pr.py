"""Persistent reservations (SPC-4 5.9, 6.15 PERSISTENT RESERVE IN, 6.16 PERSISTENT RESERVE OUT).

Registrations belong to an I_T nexus named by its initiator port (iSCSI name + ISID)
and relative target port, so they survive logout and re-login as SPC-4 requires.
Not supported (and reported so in REPORT CAPABILITIES): APTPL, SPEC_I_PT, ALL_TG_PT,
REGISTER AND MOVE. Registrations are kept in memory only.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pytgt.scsi.sense import (
    Asc,
    CheckCondition,
    SenseKey,
    invalid_field,
    invalid_param,
)
from pytgt.scsi.task import ItNexus, ScsiResult, ScsiTask, Status

if TYPE_CHECKING:
    from pytgt.scsi.lu import LogicalUnit


class PrType(enum.IntEnum):
    """PERSISTENT RESERVATION TYPE (SPC-4 table 173)."""

    WRITE_EXCLUSIVE = 1
    EXCLUSIVE_ACCESS = 3
    WRITE_EXCLUSIVE_REGISTRANTS_ONLY = 5
    EXCLUSIVE_ACCESS_REGISTRANTS_ONLY = 6
    WRITE_EXCLUSIVE_ALL_REGISTRANTS = 7
    EXCLUSIVE_ACCESS_ALL_REGISTRANTS = 8


class PrOutAction(enum.IntEnum):
    REGISTER = 0
    RESERVE = 1
    RELEASE = 2
    CLEAR = 3
    PREEMPT = 4
    PREEMPT_AND_ABORT = 5
    REGISTER_AND_IGNORE_EXISTING_KEY = 6
    REGISTER_AND_MOVE = 7


# How a command is treated while another I_T nexus holds a persistent reservation.
PR_ALLOWED, PR_READ, PR_WRITE = 0, 1, 2

_ALL_REGISTRANTS = frozenset({PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS,
                              PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS})
_REGISTRANTS_ACCESS = frozenset({PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY,
                                 PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY, *_ALL_REGISTRANTS})
_EXCLUSIVE_ACCESS = frozenset({PrType.EXCLUSIVE_ACCESS, PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY,
                               PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS})
_OUT_PARAMS = struct.Struct(">QQ4xBx2x")
INVALID_RELEASE_OF_PERSISTENT_RESERVATION = (0x26, 0x04)


def registrant_id(nexus: ItNexus) -> str:
    """The I_T nexus identity registrations are bound to (initiator port + target port)."""
    return f"{nexus.initiator_port or nexus.key}|{nexus.relative_port}"


@dataclass
class Registration:
    key: int
    initiator_port: str
    relative_port: int


@dataclass
class PersistentReservations:
    """The PR state of one logical unit."""

    generation: int = 0
    registrations: dict[str, Registration] = field(default_factory=dict)
    holder: str | None = None  # registrant id; None with a type set = all registrants
    type: int = 0  # 0: no persistent reservation

    def is_holder(self, rid: str) -> bool:
        if not self.type:
            return False
        if self.type in _ALL_REGISTRANTS:
            return rid in self.registrations
        return self.holder == rid

    def conflicts(self, nexus: ItNexus, access: int) -> bool:
        """Whether a command of class ``access`` from ``nexus`` meets RESERVATION CONFLICT."""
        rid = registrant_id(nexus)
        if self.is_holder(rid):
            return False
        if self.type in _REGISTRANTS_ACCESS and rid in self.registrations:
            return False
        if access == PR_WRITE:
            return True
        return self.type in _EXCLUSIVE_ACCESS

    def release(self) -> None:
        self.holder, self.type = None, 0


def _conflict() -> ScsiResult:
    return ScsiResult(Status.RESERVATION_CONFLICT)


def _good() -> ScsiResult:
    return ScsiResult(Status.GOOD)


# PERSISTENT RESERVE IN
async def persistent_reserve_in(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    action, alloc = cdb[1] & 0x1F, struct.unpack_from(">H", cdb, 7)[0]
    pr = lu.pr
    if action == 0:  # READ KEYS
        keys = b"".join(struct.pack(">Q", r.key) for r in pr.registrations.values())
        data = struct.pack(">II", pr.generation, len(keys)) + keys
    elif action == 1:  # READ RESERVATION
        body = b""
        if pr.type:
            holder = pr.registrations.get(pr.holder or "")
            key = 0 if pr.type in _ALL_REGISTRANTS or holder is None else holder.key
            body = struct.pack(">Q4xxB2x", key, pr.type)
        data = struct.pack(">II", pr.generation, len(body)) + body
    elif action == 2:  # REPORT CAPABILITIES: CRH; TMV with every type
        data = struct.pack(">HBBBB2x", 8, 0x10, 0x80, 0xEA, 0x01)
    elif action == 3:  # READ FULL STATUS
        body = b"".join(_full_status(pr, rid, reg) for rid, reg in pr.registrations.items())
        data = struct.pack(">II", pr.generation, len(body)) + body
    else:
        raise invalid_field(1, 4)
    return ScsiResult(Status.GOOD, data[:alloc])


def _transport_id(initiator_port: str) -> bytes:
    """iSCSI TransportID (SPC-4 7.6.4.6): format 01b with ",i,0x<ISID>" when known."""
    fmt = 0x40 if ",i,0x" in initiator_port else 0x00
    name = initiator_port.encode() + b"\0"
    name += b"\0" * (-len(name) % 4)
    return bytes((fmt | 0x05, 0)) + struct.pack(">H", len(name)) + name


def _full_status(pr: PersistentReservations, rid: str, reg: Registration) -> bytes:
    tid = _transport_id(reg.initiator_port)
    holder = pr.is_holder(rid)
    return struct.pack(">Q4xBB4xHI", reg.key, 0x01 if holder else 0,
                       pr.type if holder else 0, reg.relative_port, len(tid)) + tid


# PERSISTENT RESERVE OUT
async def persistent_reserve_out(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    action, scope, ptype = cdb[1] & 0x1F, cdb[2] >> 4, cdb[2] & 0x0F
    length = struct.unpack_from(">I", cdb, 5)[0]
    if action == PrOutAction.REGISTER_AND_MOVE or action > PrOutAction.REGISTER_AND_MOVE:
        raise invalid_field(1, 4)
    if length != 24:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.PARAMETER_LIST_LENGTH_ERROR)
    data = bytes(memoryview(task.data_out)[:24])
    if len(data) < 24:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.PARAMETER_LIST_LENGTH_ERROR)
    key, sa_key, flags = _OUT_PARAMS.unpack(data)
    if flags & 0x08:
        raise invalid_param(20, 3)  # SPEC_I_PT
    if flags & 0x04:
        raise invalid_param(20, 2)  # ALL_TG_PT
    if flags & 0x01:
        raise invalid_param(20, 0)  # APTPL: persistence through power loss not supported
    pr, nexus = lu.pr, task.nexus
    rid = registrant_id(nexus)
    reg = pr.registrations.get(rid)
    if action in (PrOutAction.REGISTER, PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY):
        return _register(lu, nexus, rid, key, sa_key, action == PrOutAction.REGISTER)
    if reg is None or reg.key != key:
        return _conflict()
    if action == PrOutAction.CLEAR:
        _notify(lu, pr, rid, Asc.RESERVATIONS_PREEMPTED)
        pr.registrations.clear()
        pr.release()
        pr.generation += 1
        return _good()
    if scope != 0:
        raise invalid_field(2, 7)
    if action in (PrOutAction.RESERVE, PrOutAction.PREEMPT, PrOutAction.PREEMPT_AND_ABORT) \
            and ptype not in PrType._value2member_map_:
        raise invalid_field(2, 3)
    if action == PrOutAction.RESERVE:
        return _reserve(pr, rid, ptype)
    if action == PrOutAction.RELEASE:
        return _release(lu, pr, rid, ptype)
    return _preempt(lu, pr, rid, sa_key, ptype)


def _register(lu: LogicalUnit, nexus: ItNexus, rid: str, key: int, sa_key: int,
              check_key: bool) -> ScsiResult:
    pr = lu.pr
    reg = pr.registrations.get(rid)
    if reg is None:
        if check_key and key:
            return _conflict()
        if sa_key:
            pr.registrations[rid] = Registration(sa_key, nexus.initiator_port or nexus.key,
                                                 nexus.relative_port)
            pr.generation += 1
        return _good()
    if check_key and key != reg.key:
        return _conflict()
    if sa_key:
        reg.key = sa_key
    else:
        _unregister(lu, pr, rid)
    pr.generation += 1
    return _good()


def _unregister(lu: LogicalUnit, pr: PersistentReservations, rid: str) -> None:
    """Remove one registration; a holder's reservation goes with it (SPC-4 5.9.11.2)."""
    was_holder = pr.is_holder(rid)
    del pr.registrations[rid]
    if not was_holder:
        return
    if pr.type in _ALL_REGISTRANTS:
        if not pr.registrations:
            pr.release()
        return
    if pr.type in (PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY,
                   PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY):
        _notify(lu, pr, rid, Asc.RESERVATIONS_RELEASED)
    pr.release()


def _reserve(pr: PersistentReservations, rid: str, ptype: int) -> ScsiResult:
    if pr.type:
        if pr.is_holder(rid) and pr.type == ptype:
            return _good()
        return _conflict()
    pr.type = ptype
    pr.holder = None if ptype in _ALL_REGISTRANTS else rid
    return _good()


def _release(lu: LogicalUnit, pr: PersistentReservations, rid: str, ptype: int) -> ScsiResult:
    if not pr.type or not pr.is_holder(rid):
        return _good()
    if ptype != pr.type:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, INVALID_RELEASE_OF_PERSISTENT_RESERVATION)
    if pr.type in _REGISTRANTS_ACCESS:
        _notify(lu, pr, rid, Asc.RESERVATIONS_RELEASED)
    pr.release()
    return _good()


def _preempt(lu: LogicalUnit, pr: PersistentReservations, rid: str, sa_key: int,
             ptype: int) -> ScsiResult:
    all_registrants = pr.type in _ALL_REGISTRANTS
    if all_registrants and sa_key == 0:
        victims = [r for r in pr.registrations if r != rid]
        _take(lu, pr, rid, ptype, victims)
        return _good()
    if sa_key == 0:
        raise invalid_param(8)
    victims = [r for r, reg in pr.registrations.items() if reg.key == sa_key]
    if not victims:
        return _conflict()
    holder = pr.registrations.get(pr.holder or "")
    if pr.type and not all_registrants and holder is not None and holder.key == sa_key:
        _take(lu, pr, rid, ptype, [r for r in victims if r != rid])
    else:
        _drop(lu, pr, [r for r in victims if r != rid])
    return _good()


def _take(lu: LogicalUnit, pr: PersistentReservations, rid: str, ptype: int,
          victims: list[str]) -> None:
    _drop(lu, pr, victims)
    pr.type = ptype
    pr.holder = None if ptype in _ALL_REGISTRANTS else rid


def _drop(lu: LogicalUnit, pr: PersistentReservations, victims: list[str]) -> None:
    for victim in victims:
        pr.registrations.pop(victim, None)
        _notify_one(lu, victim, Asc.REGISTRATIONS_PREEMPTED)
    pr.generation += 1


def _notify(lu: LogicalUnit, pr: PersistentReservations, rid: str,
            asc: Asc) -> None:
    """Unit attention for every other registrant's nexus."""
    for other in pr.registrations:
        if other != rid:
            _notify_one(lu, other, asc)


def _notify_one(lu: LogicalUnit, rid: str, asc: Asc) -> None:
    for key, nexus in lu.nexuses.items():
        if registrant_id(nexus) == rid:
            lu.ua_add(key, asc)
