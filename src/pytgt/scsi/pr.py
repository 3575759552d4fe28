"""Persistent reservations (SPC-4 5.9, 6.15 PERSISTENT RESERVE IN, 6.16 PERSISTENT RESERVE OUT).

Registrations belong to an I_T nexus named by its initiator port (iSCSI name + ISID)
and relative target port, so they survive logout and re-login as SPC-4 requires. A
registration made with ALL_TG_PT covers every target port (relative port 0 here); one
made through a format-00b TransportID (SPEC_I_PT) names an initiator device, which
covers every ISID of that iSCSI name. APTPL: ``PersistentReservations.saver``, an
:class:`AptplSaver` handed in by the program that builds the LU (pytgtd's writes files,
:mod:`pytgt.daemon.aptpl`), is awaited after every change, so the state is kept before
the command completes; without one, APTPL=1 is refused (PTPL_C=0).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from pytgt.scsi.sense import (
    Asc,
    CheckCondition,
    SenseKey,
    invalid_field,
    invalid_param,
)
from pytgt.scsi.task import ItNexus, ScsiResult, ScsiTask, Status
from pytgt.scsi.transport_id import TransportIdError, encode_transport_id, parse_transport_id

log = logging.getLogger("pytgt.scsi")

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
_MOVE_PARAMS = struct.Struct(">QQxBHI")  # REGISTER AND MOVE (SPC-4 6.16.4)
SPEC_I_PT, ALL_TG_PT, APTPL = 0x08, 0x04, 0x01
INVALID_RELEASE_OF_PERSISTENT_RESERVATION = (0x26, 0x04)


def registration_id(initiator_port: str, relative_port: int) -> str:
    """Key of a registration: initiator port (or device) and target port (0: all)."""
    return f"{initiator_port}|{relative_port or '*'}"


def registrant_id(nexus: ItNexus) -> str:
    """The I_T nexus identity registrations are bound to (initiator port + target port)."""
    return f"{nexus.initiator_port or nexus.key}|{nexus.relative_port}"


def nexus_matches(rid: str, nexus: ItNexus) -> bool:
    """Whether registration ``rid`` covers ``nexus`` (ALL_TG_PT, format-00b names)."""
    port, _, rel = rid.rpartition("|")
    if port != (nexus.initiator_port or nexus.key) and port != nexus.initiator_name:
        return False
    return rel == "*" or rel == str(nexus.relative_port)


@dataclass
class Registration:
    key: int
    initiator_port: str  # "name,i,0x<isid>", or a bare name: every ISID (TransportID 00b)
    relative_port: int  # 0: every target port (ALL_TG_PT)


class AptplSaver(Protocol):
    """Keeps one LU's reservations across power loss (APTPL, SPC-4 5.9.5).

    Awaited after each PERSISTENT RESERVE OUT that succeeded while APTPL is or was set;
    ``pr.aptpl`` False means forget the saved state. ``pr_state.to_dict`` is what to keep.
    Raises OSError when the state could not be kept (the command then fails).
    """

    async def __call__(self, pr: PersistentReservations, /) -> None: ...


@dataclass
class PersistentReservations:
    """The PR state of one logical unit."""

    generation: int = 0
    registrations: dict[str, Registration] = field(default_factory=dict)
    holder: str | None = None  # registrant id; None with a type set = all registrants
    type: int = 0  # 0: no persistent reservation
    aptpl: bool = False  # APTPL of the last REGISTER (SPC-4 5.9.5)
    saver: AptplSaver | None = field(default=None, repr=False, compare=False)
    #: While a shared update runs (scsi/shared.py): the unit attentions it raises, as
    #: (registration id, asc, ascq), delivered on every gateway once the change is stored.
    outbox: list[tuple[str, int, int]] | None = field(default=None, repr=False,
                                                      compare=False)

    def find(self, nexus: ItNexus) -> str | None:
        """The id of the registration that covers ``nexus``, or None."""
        regs = self.registrations
        if not regs:
            return None
        port, rel = nexus.initiator_port or nexus.key, nexus.relative_port
        for rid in (f"{port}|{rel}", f"{port}|*", f"{nexus.initiator_name}|{rel}",
                    f"{nexus.initiator_name}|*"):
            if rid in regs:
                return rid
        return None

    def is_holder(self, rid: str | None) -> bool:
        if not self.type or rid is None:
            return False
        if self.type in _ALL_REGISTRANTS:
            return rid in self.registrations
        return self.holder == rid

    def conflicts(self, nexus: ItNexus, access: int) -> bool:
        """Whether a command of class ``access`` from ``nexus`` meets RESERVATION CONFLICT."""
        rid = self.find(nexus)
        if self.is_holder(rid):
            return False
        if self.type in _REGISTRANTS_ACCESS and rid is not None:
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
    if lu.shared is not None:  # answered from the state every gateway shares
        await lu.shared.refresh()
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
    elif action == 2:  # REPORT CAPABILITIES: CRH SIP_C ATP_C PTPL_C; TMV, PTPL_A; every type
        ptpl_c = 0x01 if pr.saver is not None else 0  # persistence only with a state dir
        data = struct.pack(">HBBBB2x", 8, 0x1C | ptpl_c, 0x80 | pr.aptpl, 0xEA, 0x01)
    elif action == 3:  # READ FULL STATUS
        body = b"".join(_full_status(pr, rid, reg) for rid, reg in pr.registrations.items())
        data = struct.pack(">II", pr.generation, len(body)) + body
    else:
        raise invalid_field(1, 4)
    return ScsiResult(Status.GOOD, data[:alloc])


def _full_status(pr: PersistentReservations, rid: str, reg: Registration) -> bytes:
    tid = encode_transport_id(reg.initiator_port)
    holder = pr.is_holder(rid)
    flags = (0x02 if not reg.relative_port else 0) | (0x01 if holder else 0)
    return struct.pack(">Q4xBB4xHI", reg.key, flags, pr.type if holder else 0,
                       reg.relative_port, len(tid)) + tid


def _param_list(task: ScsiTask, length: int, minimum: int) -> bytes:
    data = bytes(memoryview(task.data_out)[:length])
    if length < minimum or len(data) < length:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.PARAMETER_LIST_LENGTH_ERROR)
    return data


def _transport_ids(data: bytes, start: int) -> list[str]:
    """The TransportIDs after a 4-byte length at ``start - 4`` (SPEC_I_PT, 6.16.3)."""
    end = start + struct.unpack_from(">I", data, start - 4)[0]
    if end != len(data):
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.PARAMETER_LIST_LENGTH_ERROR)
    out, offset = [], start
    try:
        while offset < end:
            port, size = parse_transport_id(data[:end], offset)
            out.append(port)
            offset += size
    except TransportIdError as exc:
        raise invalid_param(exc.offset) from None
    return out


# PERSISTENT RESERVE OUT
async def persistent_reserve_out(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    action = cdb[1] & 0x1F
    length = struct.unpack_from(">I", cdb, 5)[0]
    if action > PrOutAction.REGISTER_AND_MOVE:
        raise invalid_field(1, 4)
    pr = lu.pr
    was_aptpl = pr.aptpl

    def change() -> ScsiResult:
        if action == PrOutAction.REGISTER_AND_MOVE:
            return _register_and_move(lu, task, _param_list(task, length, 24))
        return _out(lu, task, action, length)

    result = change() if lu.shared is None else await lu.shared.update(change)
    pr = lu.pr
    if result.status == Status.GOOD and pr.saver is not None and (pr.aptpl or was_aptpl):
        try:  # shielded: an aborted command's save still ends before the next one starts
            await asyncio.shield(pr.saver(pr))
        except OSError as exc:  # applied in memory, not persisted: say so
            log.error("LUN %d: persistent reservations not saved: %s", lu.lun, exc)
            raise CheckCondition(SenseKey.HARDWARE_ERROR, Asc.INTERNAL_TARGET_FAILURE) from None
    return result


def _out(lu: LogicalUnit, task: ScsiTask, action: int, length: int) -> ScsiResult:
    scope, ptype = task.cdb[2] >> 4, task.cdb[2] & 0x0F
    data = _param_list(task, length, 24)
    key, sa_key, flags = _OUT_PARAMS.unpack_from(data)
    tids: list[str] = []
    if flags & SPEC_I_PT:
        if action != PrOutAction.REGISTER:
            raise invalid_param(20, 3)
        tids = _transport_ids(_param_list(task, length, 28), 28)
    elif length != 24:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.PARAMETER_LIST_LENGTH_ERROR)
    pr, nexus = lu.pr, task.nexus
    rid = pr.find(nexus)
    if action in (PrOutAction.REGISTER, PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY):
        if flags & APTPL and pr.saver is None:  # PTPL_C=0; other actions ignore APTPL
            raise invalid_param(20, 0)
        return _register(lu, nexus, rid, key, sa_key, action == PrOutAction.REGISTER,
                         flags, tids)
    reg = pr.registrations.get(rid) if rid is not None else None
    if rid is None or reg is None or reg.key != key:
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


def _register(lu: LogicalUnit, nexus: ItNexus, rid: str | None, key: int, sa_key: int,
              check_key: bool, flags: int, tids: list[str]) -> ScsiResult:
    pr = lu.pr
    reg = pr.registrations.get(rid) if rid is not None else None
    if rid is None or reg is None:
        if check_key and key:
            return _conflict()
        if sa_key:
            _add_registrations(pr, nexus, sa_key, flags, tids)
            pr.aptpl = bool(flags & APTPL)
        return _good()
    if tids:  # SPEC_I_PT from a registered I_T nexus (SPC-4 5.9.7)
        raise invalid_param(20, 3)
    if check_key and key != reg.key:
        return _conflict()
    if sa_key:
        reg.key = sa_key
    else:
        _unregister(lu, pr, rid)
    pr.generation += 1
    pr.aptpl = bool(flags & APTPL)
    return _good()


def _add_registrations(pr: PersistentReservations, nexus: ItNexus, sa_key: int, flags: int,
                       tids: list[str]) -> None:
    """Register the issuing nexus and each SPEC_I_PT initiator, at this target port or
    (ALL_TG_PT) every one; nothing is registered if any of them already is."""
    rel = 0 if flags & ALL_TG_PT else nexus.relative_port
    port = nexus.initiator_port or nexus.key
    new = {registration_id(port, rel): Registration(sa_key, port, rel)}
    for tid in tids:
        rid = registration_id(tid, rel)
        if rid in pr.registrations:
            raise invalid_param(28)
        new.setdefault(rid, Registration(sa_key, tid, rel))
    pr.registrations.update(new)
    pr.generation += 1


def _register_and_move(lu: LogicalUnit, task: ScsiTask, data: bytes) -> ScsiResult:
    """REGISTER AND MOVE (SPC-4 5.9.8): the reservation goes to another I_T nexus."""
    key, sa_key, flags, rel, _tlen = _MOVE_PARAMS.unpack_from(data)
    pr, nexus = lu.pr, task.nexus
    if flags & APTPL and pr.saver is None:  # PTPL_C=0
        raise invalid_param(17, 0)
    rid = pr.find(nexus)
    reg = pr.registrations.get(rid) if rid is not None else None
    if rid is None or reg is None or reg.key != key:
        return _conflict()
    if not pr.type or not pr.is_holder(rid) or pr.type in _ALL_REGISTRANTS:
        return _conflict()
    if sa_key == 0:
        raise invalid_param(8)
    tids = _transport_ids(data, 24)
    if len(tids) != 1:
        raise invalid_param(24)
    if rel == 0:
        raise invalid_param(18)
    dest = registration_id(tids[0], rel)
    if dest == rid or nexus_matches(dest, nexus):
        raise invalid_param(24)  # moving to the issuing I_T nexus itself
    target_reg = pr.registrations.get(dest)
    if target_reg is None:
        pr.registrations[dest] = Registration(sa_key, tids[0], rel)
    else:
        target_reg.key = sa_key
    pr.holder = dest
    if flags & 0x02:  # UNREG
        del pr.registrations[rid]
    pr.generation += 1
    pr.aptpl = bool(flags & APTPL)
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


def _notify_one(lu: LogicalUnit, rid: str, asc: Asc | tuple[int, int]) -> None:
    if lu.pr.outbox is not None:  # a shared update: every gateway delivers it, once stored
        lu.pr.outbox.append((rid, asc[0], asc[1]))
        return
    notify_registrant(lu, rid, asc)


def notify_registrant(lu: LogicalUnit, rid: str, asc: Asc | tuple[int, int]) -> None:
    """Unit attention ``asc`` for this target's nexuses that registration ``rid`` covers."""
    for key, nexus in lu.nexuses.items():
        if nexus_matches(rid, nexus):
            lu.ua_add(key, asc)
