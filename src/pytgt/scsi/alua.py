"""Asymmetric logical unit access (SPC-4 5.16): target port groups and their states.

Model: one target port group per iSCSI portal group. The portal group tag is both the
TARGET PORT GROUP and the RELATIVE TARGET PORT IDENTIFIER (``ItNexus.port_group`` and
``ItNexus.relative_port``, as ``net/portal.py`` builds them and VPD page 83h reports
them), and the iSCSI login answers ``TargetPortalGroupTag`` with the same number.

A :class:`TargetPortGroups` belongs to one :class:`~pytgt.scsi.target.ScsiTarget` and
is shared by all of its logical units: a group's state applies to every LU of the
target (SPC-4 allows per-LU states; one per target is what admins configure). The
states change implicitly (the administrator: ``pytgtadm --op update --mode target
--name alua_state --value standby``) or explicitly (SET TARGET PORT GROUPS, 6.44).

The preflight calls :meth:`TargetPortGroups.check` only while ``restricted`` is set
(some group is neither active/optimized nor active/non-optimized), so the I/O fast
path pays one attribute test.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pytgt.scsi.sense import Asc, CheckCondition, SenseKey, invalid_field, invalid_param
from pytgt.scsi.task import ItNexus, ScsiResult, ScsiTask, Status

if TYPE_CHECKING:
    from pytgt.scsi.lu import LogicalUnit

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_DESCRIPTOR = struct.Struct(">BBHxBxB")  # target port group descriptor, SPC-4 table 166
_PORT = struct.Struct(">2xH")  # target port descriptor: RELATIVE TARGET PORT IDENTIFIER


class AccessState(enum.IntEnum):
    """ASYMMETRIC ACCESS STATE codes (SPC-4 6.37, table 167)."""

    ACTIVE_OPTIMIZED = 0x0
    ACTIVE_NON_OPTIMIZED = 0x1
    STANDBY = 0x2
    UNAVAILABLE = 0x3
    LOGICAL_BLOCK_DEPENDENT = 0x4
    OFFLINE = 0xE
    TRANSITIONING = 0xF


class StatusCode(enum.IntEnum):
    """STATUS CODE of a target port group descriptor (SPC-4 table 168)."""

    NO_STATUS = 0x00
    ALTERED_BY_SET_TARGET_PORT_GROUPS = 0x01
    ALTERED_BY_IMPLICIT_BEHAVIOR = 0x02


# Additional sense codes of SPC-4 5.16 (annex D).
ASYMMETRIC_ACCESS_STATE_CHANGED = (0x2A, 0x06)
LOGICAL_UNIT_NOT_ACCESSIBLE_TARGET_PORT_IN_STANDBY_STATE = (0x04, 0x0B)
LOGICAL_UNIT_NOT_ACCESSIBLE_TARGET_PORT_IN_UNAVAILABLE_STATE = (0x04, 0x0C)
LOGICAL_UNIT_NOT_READY_OFFLINE = (0x04, 0x12)

S = AccessState
# The states a group may be put in, by the administrator or by SET TARGET PORT GROUPS.
SUPPORTED_STATES = frozenset({S.ACTIVE_OPTIMIZED, S.ACTIVE_NON_OPTIMIZED, S.STANDBY,
                              S.UNAVAILABLE, S.OFFLINE})
# T_SUP 0, O_SUP 1, LBD_SUP 0, U_SUP 1, S_SUP 1, AN_SUP 1, AO_SUP 1 (SPC-4 table 166).
SUPPORTED_STATE_BITS = 0x40 | 0x08 | 0x04 | 0x02 | 0x01
# TPGS 11b in standard INQUIRY byte 5: implicit and explicit ALUA (SPC-4 6.6.2).
TPGS = 0x30

# Admin spellings (pytgtadm --value) -> state, and the word shown back.
STATE_WORDS: dict[str, AccessState] = {
    "active": S.ACTIVE_OPTIMIZED,
    "nonoptimized": S.ACTIVE_NON_OPTIMIZED,
    "standby": S.STANDBY,
    "unavailable": S.UNAVAILABLE,
    "offline": S.OFFLINE,
}
_ALIASES: dict[str, AccessState] = {
    "ao": S.ACTIVE_OPTIMIZED, "optimized": S.ACTIVE_OPTIMIZED,
    "active/optimized": S.ACTIVE_OPTIMIZED, "active_optimized": S.ACTIVE_OPTIMIZED,
    "an": S.ACTIVE_NON_OPTIMIZED, "non-optimized": S.ACTIVE_NON_OPTIMIZED,
    "active/non-optimized": S.ACTIVE_NON_OPTIMIZED,
    "active_non_optimized": S.ACTIVE_NON_OPTIMIZED,
}
STATE_SHOWN = {
    S.ACTIVE_OPTIMIZED: "active/optimized",
    S.ACTIVE_NON_OPTIMIZED: "active/non-optimized",
    S.STANDBY: "standby",
    S.UNAVAILABLE: "unavailable",
    S.LOGICAL_BLOCK_DEPENDENT: "logical block dependent",
    S.OFFLINE: "offline",
    S.TRANSITIONING: "transitioning",
}

# What a command is refused with in each inaccessible state (SPC-4 5.16.2.4.4-5.16.2.4.6).
_REFUSAL = {
    S.STANDBY: LOGICAL_UNIT_NOT_ACCESSIBLE_TARGET_PORT_IN_STANDBY_STATE,
    S.UNAVAILABLE: LOGICAL_UNIT_NOT_ACCESSIBLE_TARGET_PORT_IN_UNAVAILABLE_STATE,
    S.OFFLINE: LOGICAL_UNIT_NOT_READY_OFFLINE,
    S.TRANSITIONING: (0x04, 0x0A),  # ASYMMETRIC ACCESS STATE TRANSITION
}

_MAINTENANCE_IN, _MAINTENANCE_OUT, _SERVICE_ACTION_IN_16 = 0xA3, 0xA4, 0x9E
REPORT_TARGET_PORT_GROUPS = 0x0A  # MAINTENANCE IN service action
SET_TARGET_PORT_GROUPS = 0x0A  # MAINTENANCE OUT service action
_READ_BUFFER, _WRITE_BUFFER = 0x3C, 0x3B
_ECHO_MODES = {_READ_BUFFER: frozenset({0x0A, 0x0B}), _WRITE_BUFFER: frozenset({0x0A})}

# Commands served while unavailable (SPC-4 5.16.2.4.5), by opcode; for service-action
# opcodes by (opcode, service action). REPORT SUPPORTED OPERATION CODES and REPORT
# SUPPORTED TASK MANAGEMENT FUNCTIONS describe the device, not the medium (SPC-5 adds
# them), so they are served too.
_UNAVAILABLE_OPCODES = frozenset({0x12, 0xA0, 0x03})  # INQUIRY, REPORT LUNS, REQUEST SENSE
_UNAVAILABLE_SA = frozenset({(_MAINTENANCE_IN, REPORT_TARGET_PORT_GROUPS),
                             (_MAINTENANCE_OUT, SET_TARGET_PORT_GROUPS),
                             (_MAINTENANCE_IN, 0x0C), (_MAINTENANCE_IN, 0x0D)})
# Standby (SPC-4 5.16.2.4.4) adds LOG SELECT/SENSE, MODE SELECT/SENSE (6, 10), RECEIVE
# DIAGNOSTIC RESULTS, SEND DIAGNOSTIC, PERSISTENT RESERVE IN/OUT; and, as the device
# type's own commands, READ CAPACITY (10)/(16), which hosts need to probe a standby path.
_STANDBY_OPCODES = _UNAVAILABLE_OPCODES | frozenset(
    {0x4C, 0x4D, 0x15, 0x55, 0x1A, 0x5A, 0x1C, 0x1D, 0x5E, 0x5F, 0x25})
_STANDBY_SA = _UNAVAILABLE_SA | frozenset({(_SERVICE_ACTION_IN_16, 0x10)})
_SA_OPCODES = frozenset({_MAINTENANCE_IN, _MAINTENANCE_OUT, _SERVICE_ACTION_IN_16})


def parse_state(word: str) -> AccessState:
    """The state an admin word names (``active``, ``nonoptimized``, ``standby``, ...).

    Raises ValueError for anything else.
    """
    w = word.strip().lower()
    state = STATE_WORDS.get(w, _ALIASES.get(w))  # not "or": active/optimized is 0
    if state is None:
        raise ValueError(f"bad ALUA state {word!r} (one of {', '.join(STATE_WORDS)})")
    return state


def state_word(state: AccessState) -> str:
    """The admin word for a state (the inverse of :func:`parse_state`)."""
    for word, each in STATE_WORDS.items():
        if each == state:
            return word
    return STATE_SHOWN[state]


def allowed(state: AccessState, cdb: bytes) -> bool:
    """Whether a command is served while its target port group is in ``state``."""
    if state in (S.ACTIVE_OPTIMIZED, S.ACTIVE_NON_OPTIMIZED):
        return True
    if state == S.STANDBY:
        opcodes, actions = _STANDBY_OPCODES, _STANDBY_SA
    elif state in (S.UNAVAILABLE, S.OFFLINE):
        opcodes, actions = _UNAVAILABLE_OPCODES, _UNAVAILABLE_SA
    else:  # transitioning: only what is always served
        opcodes, actions = _UNAVAILABLE_OPCODES, _UNAVAILABLE_SA
    op = cdb[0]
    if op in _SA_OPCODES:
        return len(cdb) > 1 and (op, cdb[1] & 0x1F) in actions
    if op in _ECHO_MODES:
        return len(cdb) > 1 and cdb[1] & 0x1F in _ECHO_MODES[op]
    return op in opcodes


@dataclass(slots=True)
class PortGroup:
    """One target port group: its relative target ports, state and STATUS CODE."""

    group_id: int
    ports: set[int] = field(default_factory=set)
    state: AccessState = S.ACTIVE_OPTIMIZED
    status: StatusCode = StatusCode.NO_STATUS
    preferred: bool = False

    def descriptor(self) -> bytes:
        """The target port group descriptor of REPORT TARGET PORT GROUPS (SPC-4 6.37)."""
        ports = sorted(self.ports)
        head = _DESCRIPTOR.pack((0x80 if self.preferred else 0) | self.state,
                                SUPPORTED_STATE_BITS, self.group_id & 0xFFFF, self.status,
                                len(ports) & 0xFF)
        return head + b"".join(_PORT.pack(p & 0xFFFF) for p in ports)


class TargetPortGroups:
    """The target port groups of one SCSI target and their asymmetric access states.

    ``units`` is the target's LUN map (UAs of a state change go to every LU of it);
    without one (a logical unit outside any target) only the LU at hand is told.
    The ``home`` group (the daemon's portal group tag, 1 unless ``--iscsi tpgt=N``) with
    that relative port exists from the start; other groups are learnt from the nexuses
    that log in through them.
    """

    def __init__(self, units: Mapping[int, LogicalUnit] | None = None, home: int = 1) -> None:
        self.units = units
        self.groups: dict[int, PortGroup] = {home: PortGroup(home, {home})}
        self.restricted = False  # some group is neither active state: preflight checks
        self.implicit_transition_time = 0  # seconds; 0: not specified (SPC-4 6.37)

    # Groups and states.
    def learn(self, nexus: ItNexus) -> PortGroup:
        """The group of a nexus, created (active/optimized) the first time it is seen."""
        group = self.groups.get(nexus.port_group)
        if group is None:
            group = self.groups[nexus.port_group] = PortGroup(nexus.port_group)
        group.ports.add(nexus.relative_port)
        return group

    def state_of(self, nexus: ItNexus) -> AccessState:
        group = self.groups.get(nexus.port_group)
        return group.state if group is not None else S.ACTIVE_OPTIMIZED

    def set_state(self, state: AccessState, group_id: int | None = None, *,
                  by: ItNexus | None = None, lu: LogicalUnit | None = None) -> bool:
        """Move one group (or every group) to ``state``; True if anything changed.

        ``by`` is the nexus of a SET TARGET PORT GROUPS (explicit: it gets no unit
        attention); without it the change is implicit (the administrator). Every other
        nexus gets ASYMMETRIC ACCESS STATE CHANGED on every LU (SPC-4 5.16.2.8).
        Raises ValueError for an unsupported state or an unknown group.
        """
        if state not in SUPPORTED_STATES:
            raise ValueError(f"unsupported ALUA state {state!r}")
        if group_id is not None and group_id not in self.groups:
            raise ValueError(f"no target port group {group_id}")
        ids = list(self.groups) if group_id is None else [group_id]
        status = (StatusCode.ALTERED_BY_IMPLICIT_BEHAVIOR if by is None
                  else StatusCode.ALTERED_BY_SET_TARGET_PORT_GROUPS)
        changed = False
        for gid in ids:
            group = self.groups[gid]
            if group.state != state:
                group.state, group.status, changed = state, status, True
        self.restricted = any(g.state not in (S.ACTIVE_OPTIMIZED, S.ACTIVE_NON_OPTIMIZED)
                              for g in self.groups.values())
        if changed:
            self._announce(by, lu)
        return changed

    def _announce(self, by: ItNexus | None, lu: LogicalUnit | None) -> None:
        units: Iterable[LogicalUnit] = self.units.values() if self.units is not None else ()
        if self.units is None and lu is not None:
            units = (lu,)
        except_key = by.key if by is not None else None
        for unit in units:
            unit.ua_add_all(unit.nexus_keys, ASYMMETRIC_ACCESS_STATE_CHANGED,
                            except_key=except_key)

    def check(self, nexus: ItNexus, cdb: bytes) -> None:
        """Preflight: raise NOT READY if the nexus's group does not serve this command."""
        state = self.state_of(nexus)
        if not allowed(state, cdb):
            raise CheckCondition(SenseKey.NOT_READY, _REFUSAL[state])

    def refusal(self, nexus: ItNexus) -> tuple[int, int] | None:
        """The (asc, ascq) REQUEST SENSE reports for an inaccessible group, else None."""
        return _REFUSAL.get(self.state_of(nexus))

    def summary(self) -> list[tuple[int, str]]:
        """(group, state word) per group, for ``pytgtadm --op show``."""
        return [(gid, state_word(g.state)) for gid, g in sorted(self.groups.items())]

    @property
    def default(self) -> bool:
        """Every group active/optimized: nothing to show."""
        return all(g.state == S.ACTIVE_OPTIMIZED for g in self.groups.values())

    def report(self, extended: bool, nexuses: Iterable[ItNexus] = ()) -> bytes:
        """REPORT TARGET PORT GROUPS parameter data, length-only or extended header."""
        for nexus in nexuses:
            self.learn(nexus)
        body = b"".join(g.descriptor() for _gid, g in sorted(self.groups.items()))
        if not extended:
            return _U32.pack(len(body)) + body
        # RETURN DATA LENGTH counts from byte 4: the rest of the header, then descriptors.
        return struct.pack(">IBB2x", len(body) + 4, 0x10, self.implicit_transition_time
                           & 0xFF) + body


# Commands (SPC-4 6.37, 6.44). MAINTENANCE IN/OUT CDBs are 12 bytes.
def param_len_6_4(cdb: bytes, bs: int) -> int:
    """SET TARGET PORT GROUPS: PARAMETER LIST LENGTH in bytes 6-9."""
    return int(_U32.unpack_from(cdb, 6)[0])


async def report_target_port_groups(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    """REPORT TARGET PORT GROUPS (SPC-4 6.37): PARAMETER DATA FORMAT 000b or 001b."""
    cdb = task.cdb
    fmt = cdb[1] >> 5
    if fmt not in (0, 1):
        raise invalid_field(1, 7)
    alloc = _U32.unpack_from(cdb, 6)[0]
    data = lu.alua.report(fmt == 1, (task.nexus, *lu.nexuses.values()))
    return ScsiResult(Status.GOOD, data[:alloc])


async def set_target_port_groups(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    """SET TARGET PORT GROUPS (SPC-4 6.44): all descriptors checked, then all applied."""
    length = param_len_6_4(task.cdb, 0)
    if length == 0:
        return ScsiResult(Status.GOOD)
    data = memoryview(task.data_out).cast("B")[:length]
    if len(data) < length or length < 4 or length % 4:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.PARAMETER_LIST_LENGTH_ERROR)
    groups = lu.alua
    groups.learn(task.nexus)
    wanted: dict[int, AccessState] = {}
    for off in range(4, length, 4):
        code = data[off] & 0x0F
        if code not in SUPPORTED_STATES:
            raise invalid_param(off, 3)
        gid = _U16.unpack_from(data, off + 2)[0]
        if gid not in groups.groups or gid in wanted:
            raise invalid_param(off + 2)
        wanted[gid] = AccessState(code)

    def change() -> ScsiResult:
        for gid, state in wanted.items():
            groups.set_state(state, gid, by=task.nexus, lu=lu)
        return ScsiResult(Status.GOOD)

    # A LU served by several gateways: the states are shared with them (scsi/shared.py).
    return change() if lu.shared is None else await lu.shared.update(change)
