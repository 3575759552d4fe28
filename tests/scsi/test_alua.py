"""ALUA (SPC-4 5.16): TPGS, REPORT/SET TARGET PORT GROUPS, access states, unit attentions."""

from __future__ import annotations

import struct

import pytest

from pytgt.scsi import ItNexus
from pytgt.scsi.alua import (
    ASYMMETRIC_ACCESS_STATE_CHANGED,
    AccessState,
    StatusCode,
    allowed,
    parse_state,
    state_word,
)
from pytgt.scsi.sense import CheckCondition, decode_sense
from tests.scsi.conftest import Harness, cdb10

NOT_READY, ILLEGAL_REQUEST, UNIT_ATTENTION = 0x2, 0x5, 0x6
STANDBY_ASC = (0x04, 0x0B)
UNAVAILABLE_ASC = (0x04, 0x0C)
OFFLINE_ASC = (0x04, 0x12)
INVALID_FIELD_IN_CDB = (0x24, 0x00)
INVALID_FIELD_IN_PARAMETER_LIST = (0x26, 0x00)
PARAMETER_LIST_LENGTH_ERROR = (0x1A, 0x00)

TUR = bytes(6)
READ10 = cdb10(0x28, 0, 1)
INQUIRY = bytes((0x12, 0, 0, 0, 96, 0))
REQUEST_SENSE = bytes((0x03, 0, 0, 0, 252, 0))
REPORT_LUNS = bytes((0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0))
MODE_SENSE_6 = bytes((0x1A, 0, 0x3F, 0, 255, 0))


def rtpg(fmt: int = 0, alloc: int = 1024) -> bytes:
    return bytes((0xA3, fmt << 5 | 0x0A, 0, 0, 0, 0)) + struct.pack(">I", alloc) + bytes(2)


def stpg(length: int) -> bytes:
    return bytes((0xA4, 0x0A, 0, 0, 0, 0)) + struct.pack(">I", length) + bytes(2)


def stpg_data(*descs: tuple[int, int]) -> bytes:
    return bytes(4) + b"".join(bytes((state, 0)) + struct.pack(">H", g) for state, g in descs)


def asc(sense: tuple[int, int, int] | None) -> tuple[int, int] | None:
    return None if sense is None else (sense[1], sense[2])


def set_state(h: Harness, state: AccessState, group: int | None = None) -> None:
    h.target.alua.set_state(state, group)


# TPGS and VPD 0x83.
def test_standard_inquiry_tpgs_implicit_and_explicit(h: Harness) -> None:
    d = bytes(h.run(INQUIRY).data)
    assert (d[5] >> 4) & 0x3 == 0b11
    assert bytes(h.run(INQUIRY, lun=0).data)[5] & 0x30 == 0x30


def test_vpd83_designators_match_report(h: Harness) -> None:
    d = bytes(h.run(bytes((0x12, 1, 0x83, 1, 0, 0))).data)
    found: dict[int, int] = {}
    pos = 4
    while pos < len(d):
        kind, length = d[pos + 1] & 0x0F, d[pos + 3]
        if d[pos + 1] & 0x30 == 0x10 and kind in (4, 5):
            found[kind] = struct.unpack_from(">H", d, pos + 6)[0]
        pos += 4 + length
    report = bytes(h.run(rtpg()).data)
    group, count = struct.unpack_from(">H", report, 6)[0], report[11]
    ports = [struct.unpack_from(">H", report, 12 + 4 * i + 2)[0] for i in range(count)]
    assert found == {4: 1, 5: 1} and group == 1 and ports == [1]


# REPORT TARGET PORT GROUPS.
def test_rtpg_length_only(h: Harness) -> None:
    r = h.run(rtpg(0))
    d = bytes(r.data)
    assert r.status == 0
    assert struct.unpack_from(">I", d)[0] == len(d) - 4 == 12
    assert d[4] & 0x0F == AccessState.ACTIVE_OPTIMIZED and not d[4] & 0x80
    assert d[5] == 0x4F  # O_SUP U_SUP S_SUP AN_SUP AO_SUP; no T_SUP, no LBD_SUP
    assert struct.unpack_from(">H", d, 6)[0] == 1
    assert d[9] == StatusCode.NO_STATUS and d[11] == 1
    assert struct.unpack_from(">H", d, 14)[0] == 1


def test_rtpg_extended_header(h: Harness) -> None:
    h.target.alua.implicit_transition_time = 7
    d = bytes(h.run(rtpg(1)).data)
    assert struct.unpack_from(">I", d)[0] == len(d) - 4 == 16
    assert d[4] == 0x10 and d[5] == 7 and d[8] & 0x0F == 0


def test_rtpg_bad_format(h: Harness) -> None:
    r = h.run(rtpg(2))
    assert r.status == 2 and asc(decode_sense(r.sense)) == INVALID_FIELD_IN_CDB


@pytest.mark.parametrize("alloc", [0, 3, 4, 9])
def test_rtpg_allocation_length(h: Harness, alloc: int) -> None:
    assert len(h.run(rtpg(0, alloc)).data) == alloc


def test_rtpg_on_lun0_and_second_portal_group(h: Harness) -> None:
    other = ItNexus("n2", "iqn.2024-01.test:n2", relative_port=2, port_group=2)
    h.target.add_nexus(other)
    d = bytes(h.run(rtpg(), lun=0).data)
    assert struct.unpack_from(">I", d)[0] == 24
    assert [struct.unpack_from(">H", d, off)[0] for off in (6, 18)] == [1, 2]
    assert struct.unpack_from(">H", d, 14 + 12)[0] == 2


def test_rtpg_reports_state_and_status(h: Harness) -> None:
    set_state(h, AccessState.STANDBY)
    r = h.run(rtpg())  # not exempt from unit attentions (SAM-5 5.14)
    assert decode_sense(r.sense) == (UNIT_ATTENTION, *ASYMMETRIC_ACCESS_STATE_CHANGED)
    d = bytes(h.run(rtpg()).data)
    assert d[4] & 0x0F == AccessState.STANDBY
    assert d[9] == StatusCode.ALTERED_BY_IMPLICIT_BEHAVIOR


def test_rtpg_in_report_supported_opcodes(h: Harness) -> None:
    one = bytes((0xA3, 0x0C, 0x02, 0xA3, 0, 0x0A, 0, 0, 1, 0, 0, 0))
    assert bytes(h.run(one).data)[1] & 0x07 == 3
    one_out = bytes((0xA3, 0x0C, 0x02, 0xA4, 0, 0x0A, 0, 0, 1, 0, 0, 0))
    assert bytes(h.run(one_out).data)[1] & 0x07 == 3


# Access states and the commands they allow.
@pytest.mark.parametrize("state,code", [
    (AccessState.STANDBY, STANDBY_ASC),
    (AccessState.UNAVAILABLE, UNAVAILABLE_ASC),
    (AccessState.OFFLINE, OFFLINE_ASC),
])
def test_inaccessible_states_refuse_media_access(h: Harness, state: AccessState,
                                                 code: tuple[int, int]) -> None:
    set_state(h, state)
    h.sense(TUR)  # the state change UA
    for cdb in (TUR, READ10, cdb10(0x2A, 0, 1)):
        s = h.sense(cdb, data=bytes(512))
        assert s is not None and s[0] == NOT_READY and asc(s) == code
    assert h.run(INQUIRY).status == 0
    assert h.run(REPORT_LUNS).status == 0
    assert h.run(rtpg()).status == 0
    sense = bytes(h.run(REQUEST_SENSE).data)
    assert decode_sense(sense) == (NOT_READY, *code)


@pytest.mark.parametrize("state", [AccessState.ACTIVE_OPTIMIZED,
                                   AccessState.ACTIVE_NON_OPTIMIZED])
def test_active_states_serve_everything(h: Harness, state: AccessState) -> None:
    set_state(h, AccessState.STANDBY)
    set_state(h, state)
    h.sense(TUR)
    assert h.run(READ10).status == 0
    assert not h.target.alua.restricted


def test_standby_serves_mode_sense_and_read_capacity(h: Harness) -> None:
    set_state(h, AccessState.STANDBY)
    h.sense(TUR)
    assert h.run(MODE_SENSE_6).status == 0
    assert h.run(bytes((0x25,)) + bytes(9)).status == 0
    assert h.run(bytes((0x9E, 0x10)) + bytes(8) + bytes((0, 0, 0, 32, 0, 0))).status == 0
    set_state(h, AccessState.UNAVAILABLE)
    h.sense(TUR)
    assert asc(h.sense(MODE_SENSE_6)) == UNAVAILABLE_ASC


@pytest.mark.parametrize("cdb,standby,unavailable", [
    (bytes((0x3C, 0x0A)) + bytes(8), True, True),  # READ BUFFER, echo buffer
    (bytes((0x3C, 0x02)) + bytes(8), False, False),  # READ BUFFER, data
    (bytes((0x3B, 0x0A)) + bytes(8), True, True),  # WRITE BUFFER, echo buffer
    (bytes((0x5E, 0x00)) + bytes(8), True, False),  # PERSISTENT RESERVE IN
    (bytes((0x4D, 0x00)) + bytes(8), True, False),  # LOG SENSE
    (bytes((0xA3, 0x0C)) + bytes(10), True, True),  # REPORT SUPPORTED OPERATION CODES
    (bytes((0xA4, 0x0A)) + bytes(10), True, True),  # SET TARGET PORT GROUPS
    (bytes((0x35,)) + bytes(9), False, False),  # SYNCHRONIZE CACHE
    (bytes((0x9E, 0x12)) + bytes(14), False, False),  # GET LBA STATUS
])
def test_allowed_table(cdb: bytes, standby: bool, unavailable: bool) -> None:
    assert allowed(AccessState.STANDBY, cdb) is standby
    assert allowed(AccessState.UNAVAILABLE, cdb) is unavailable
    assert allowed(AccessState.OFFLINE, cdb) is unavailable
    assert allowed(AccessState.ACTIVE_NON_OPTIMIZED, cdb)


def test_unit_attention_reported_before_not_ready(h: Harness) -> None:
    set_state(h, AccessState.STANDBY)
    s = h.sense(READ10)
    assert s is not None and s[0] == UNIT_ATTENTION and asc(s) == ASYMMETRIC_ACCESS_STATE_CHANGED
    assert asc(h.sense(READ10)) == STANDBY_ASC


def test_state_is_per_port_group(h: Harness) -> None:
    other = ItNexus("n2", "iqn.2024-01.test:n2", relative_port=2, port_group=2)
    h.target.add_nexus(other)
    for lun in h.target.luns:
        while h.run(TUR, lun=lun, nexus=other).sense:
            pass
    set_state(h, AccessState.STANDBY, group=2)
    h.sense(TUR, nexus=other)
    h.sense(TUR)
    assert asc(h.sense(READ10, nexus=other)) == STANDBY_ASC
    assert h.run(READ10).status == 0
    d = bytes(h.run(rtpg()).data)
    assert d[4] & 0x0F == 0 and d[16] & 0x0F == AccessState.STANDBY


# Implicit changes (the administrator) raise 2A/06 on every nexus and every LU.
def test_implicit_change_unit_attention_everywhere(h: Harness) -> None:
    n2 = h.new_nexus("n2")
    assert h.target.alua.set_state(AccessState.ACTIVE_NON_OPTIMIZED)
    for nexus in (h.nexus, n2):
        for lun in (0, 1 << 48):
            s = h.sense(TUR, lun=lun, nexus=nexus)
            assert s is not None and s[0] == UNIT_ATTENTION
            assert asc(s) == ASYMMETRIC_ACCESS_STATE_CHANGED
    assert not h.target.alua.set_state(AccessState.ACTIVE_NON_OPTIMIZED)  # no change, no UA
    assert h.sense(TUR) is None


def test_implicit_change_errors(h: Harness) -> None:
    with pytest.raises(ValueError):
        h.target.alua.set_state(AccessState.TRANSITIONING)
    with pytest.raises(ValueError):
        h.target.alua.set_state(AccessState.STANDBY, 9)


# SET TARGET PORT GROUPS (explicit).
def test_stpg_changes_state_and_tells_the_others(h: Harness) -> None:
    n2 = h.new_nexus("n2")
    data = stpg_data((AccessState.STANDBY, 1))
    r = h.run(stpg(len(data)), data)
    assert r.status == 0
    assert h.sense(READ10) == (NOT_READY, *STANDBY_ASC)  # no UA for the sender
    s = h.sense(READ10, nexus=n2)
    assert s is not None and asc(s) == ASYMMETRIC_ACCESS_STATE_CHANGED
    s = h.sense(TUR, lun=0, nexus=n2)
    assert s is not None and asc(s) == ASYMMETRIC_ACCESS_STATE_CHANGED
    d = bytes(h.run(rtpg()).data)
    assert d[4] & 0x0F == AccessState.STANDBY
    assert d[9] == StatusCode.ALTERED_BY_SET_TARGET_PORT_GROUPS
    back = stpg_data((AccessState.ACTIVE_OPTIMIZED, 1))
    assert h.run(stpg(len(back)), back).status == 0
    assert h.run(READ10).status == 0


def test_stpg_allowed_while_unavailable(h: Harness) -> None:
    set_state(h, AccessState.UNAVAILABLE)
    h.sense(TUR)
    data = stpg_data((AccessState.ACTIVE_NON_OPTIMIZED, 1))
    assert h.run(stpg(len(data)), data).status == 0
    assert h.run(READ10).status == 0


def test_stpg_zero_length_is_no_op(h: Harness) -> None:
    assert h.run(stpg(0)).status == 0
    assert h.target.alua.groups[1].state == AccessState.ACTIVE_OPTIMIZED


@pytest.mark.parametrize("descs,field", [
    ([(AccessState.TRANSITIONING, 1)], 4),
    ([(AccessState.LOGICAL_BLOCK_DEPENDENT, 1)], 4),
    ([(0x7, 1)], 4),
    ([(AccessState.STANDBY, 5)], 6),
    ([(AccessState.STANDBY, 1), (AccessState.ACTIVE_OPTIMIZED, 1)], 10),
])
def test_stpg_invalid_parameter_list(h: Harness, descs: list[tuple[int, int]],
                                     field: int) -> None:
    data = stpg_data(*descs)
    r = h.run(stpg(len(data)), data)
    assert r.status == 2
    assert asc(decode_sense(r.sense)) == INVALID_FIELD_IN_PARAMETER_LIST
    sks = r.sense[15:18]
    assert sks[0] & 0xC0 == 0x80 and struct.unpack(">H", sks[1:])[0] == field  # C/D=0
    assert h.target.alua.groups[1].state == AccessState.ACTIVE_OPTIMIZED  # nothing applied


def test_stpg_second_descriptor_bad_applies_nothing(h: Harness) -> None:
    other = ItNexus("n2", "iqn.2024-01.test:n2", relative_port=2, port_group=2)
    h.target.add_nexus(other)
    data = stpg_data((AccessState.STANDBY, 2), (AccessState.STANDBY, 3))
    r = h.run(stpg(len(data)), data)
    assert r.status == 2 and h.target.alua.groups[2].state == AccessState.ACTIVE_OPTIMIZED


@pytest.mark.parametrize("length,sent", [(6, 6), (9, 9), (2, 2), (8, 4)])
def test_stpg_parameter_list_length_error(h: Harness, length: int, sent: int) -> None:
    data = stpg_data((AccessState.STANDBY, 1)).ljust(12, b"\0")[:sent]
    r = h.run(stpg(length), data)
    assert r.status == 2 and asc(decode_sense(r.sense)) == PARAMETER_LIST_LENGTH_ERROR


def test_stpg_expected_data_out(h: Harness) -> None:
    assert h.target.expected_data_out(1 << 48, stpg(8)) == 8


# Admin words.
@pytest.mark.parametrize("word,state", [
    ("active", AccessState.ACTIVE_OPTIMIZED), ("Active/Optimized", AccessState.ACTIVE_OPTIMIZED),
    ("nonoptimized", AccessState.ACTIVE_NON_OPTIMIZED), ("standby", AccessState.STANDBY),
    ("unavailable", AccessState.UNAVAILABLE), ("offline", AccessState.OFFLINE),
])
def test_parse_state(word: str, state: AccessState) -> None:
    assert parse_state(word) == state
    assert parse_state(state_word(state)) == state


@pytest.mark.parametrize("word", ["", "transitioning", "lbd", "2"])
def test_parse_state_rejects(word: str) -> None:
    with pytest.raises(ValueError):
        parse_state(word)


def test_lu_added_later_shares_the_state(h: Harness) -> None:
    from pytgt.scsi import create_lu
    from pytgt.stores.memory import MemoryStore

    set_state(h, AccessState.STANDBY)
    lu = create_lu("disk", 2, MemoryStore(1 << 20), tid=1, path="mem", bstype="memory")
    h.target.add_lu(lu)
    assert lu.alua is h.target.alua
    h.target.remove_lu(0)
    assert h.target.luns[0].alua is h.target.alua


def _rows() -> list[tuple[str, bytes]]:
    from pytgt.scsi import sbc

    out = []
    for row in sbc.DISK_COMMANDS:
        cdb = bytearray(16)
        cdb[0] = row.opcode
        if row.service_action is not None:
            cdb[1] = row.service_action
        out.append((row.name, bytes(cdb)))
    return out


@pytest.mark.parametrize("state,code", [(AccessState.STANDBY, STANDBY_ASC),
                                        (AccessState.UNAVAILABLE, UNAVAILABLE_ASC)])
@pytest.mark.parametrize("name,cdb", _rows())
def test_every_command_row_is_gated(h: Harness, state: AccessState, code: tuple[int, int],
                                    name: str, cdb: bytes) -> None:
    """Every row of the disk table: refused with the state's sense unless the state serves it."""
    try:
        row = h.lu.lookup(cdb)
    except CheckCondition:
        row = None
    available = getattr(row, "available", None)  # rows offered only on some LUs
    if row is None or available is not None and not available(h.lu):
        pytest.skip(f"{name} is not offered by this LU")
    set_state(h, state)
    h.sense(TUR)
    before = bytes(h.store._buf)
    s = h.sense(cdb, data=bytes(4096))
    if allowed(state, cdb):
        assert s is None or asc(s) != code, name
    else:
        assert s == (NOT_READY, *code), name
        assert bytes(h.store._buf) == before, name  # the handler never ran
