"""SPC-4 commands: INQUIRY, REPORT LUNS, TUR, REQUEST SENSE, MODE SENSE/SELECT, RSOC, RESERVE."""

from __future__ import annotations

import struct

import pytest

from pytgt.scsi import Status, tmf
from pytgt.scsi.vpd import naa_id

from .conftest import BLOCKS, BS, RAW_LUN1, Harness

INVALID_FIELD = (0x05, 0x24, 0x00)


def inquiry(evpd: int = 0, page: int = 0, alloc: int = 255) -> bytes:
    return bytes([0x12, evpd, page]) + alloc.to_bytes(2, "big") + b"\0"


# INQUIRY
def test_standard_inquiry(h: Harness) -> None:
    d = bytes(h.run(inquiry(alloc=260)).data)
    assert len(d) == 96 and d[4] == len(d) - 5
    assert d[0] == 0x00 and d[2] == 0x06 and d[3] & 0x0F == 2 and d[7] & 0x02
    assert d[8:16] == b"IET     " and d[16:32] == b"VIRTUAL-DISK    " and d[32:36] == b"0001"
    assert struct.unpack_from(">4H", d, 58) == (0x00A0, 0x0960, 0x0460, 0x04C0)


def test_lun0_is_a_controller(h: Harness) -> None:
    d = bytes(h.run(inquiry(), lun=0).data)
    assert d[0] == 0x0C and d[16:32] == b"Controller      "


@pytest.mark.parametrize("alloc", [0, 1, 5, 36, 95, 96, 200])
def test_inquiry_allocation_length(h: Harness, alloc: int) -> None:
    assert len(h.run(inquiry(alloc=alloc)).data) == min(alloc, 96)


def test_inquiry_page_without_evpd_is_invalid(h: Harness) -> None:
    r = h.run(inquiry(0, 0x80))
    assert r.sense == bytes([0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0, 0, 0xC0, 0, 2])


@pytest.mark.parametrize("page", [0x01, 0x81, 0xB3, 0xFF])
def test_unknown_vpd_page(h: Harness, page: int) -> None:
    assert h.sense(inquiry(1, page)) == INVALID_FIELD


def test_supported_vpd_pages(h: Harness) -> None:
    d = bytes(h.run(inquiry(1, 0)).data)
    assert d[:3] == bytes([0, 0, 0]) and d[3] == len(d) - 4 and list(d[4:]) == sorted(d[4:])
    assert {0, 0x80, 0x83, 0xB0, 0xB1, 0xB2} <= set(d[4:])
    for page in d[4:]:
        assert h.run(inquiry(1, page)).status == Status.GOOD
    d = bytes(h.run(inquiry(1, 0), lun=0).data)
    assert d == bytes([0x0C, 0, 0, 3, 0, 0x80, 0x83])
    for page in d[4:]:
        assert h.run(inquiry(1, page), lun=0).status == Status.GOOD


def test_unit_serial_number(h: Harness) -> None:
    assert bytes(h.run(inquiry(1, 0x80)).data) == b"\0\x80\0\x06beaf11"
    h.lu.update_params({"scsi_sn": "SN123"})
    assert bytes(h.run(inquiry(1, 0x80)).data)[4:] == b"SN123"


def test_device_identification(h: Harness) -> None:
    d = bytes(h.run(inquiry(1, 0x83)).data)
    assert struct.unpack_from(">H", d, 2)[0] == len(d) - 4
    designators = []
    pos = 4
    while pos < len(d):
        designators.append((d[pos], d[pos + 1], d[pos + 4:pos + 4 + d[pos + 3]]))
        pos += 4 + d[pos + 3]
    assert designators == [
        (0x01, 0x03, naa_id("IET     00010001")),
        (0x02, 0x01, b"IET     IET     00010001"),
        (0x51, 0x94, b"\0\0\0\x01"),
        (0x51, 0x95, b"\0\0\0\x01"),
    ]
    assert designators[0][2][0] >> 4 == 6
    h.lu.update_params({"scsi_id": "other"})
    assert naa_id("other") in bytes(h.run(inquiry(1, 0x83)).data)


def test_block_limits_and_characteristics(h: Harness) -> None:
    d = bytes(h.run(inquiry(1, 0xB0)).data)
    assert d[1] == 0xB0 and struct.unpack_from(">H", d, 2)[0] == 0x3C and d[4] & 1
    d = bytes(h.run(inquiry(1, 0xB1)).data)
    assert d[1] == 0xB1 and struct.unpack_from(">H", d, 4)[0] == 1
    d = bytes(h.run(inquiry(1, 0xB2)).data)
    assert d[1] == 0xB2 and d[5] == 0
    h.lu.update_params({"thin_provisioning": "1"})
    d = bytes(h.run(inquiry(1, 0xB2)).data)
    assert d[5] & 0x80 and d[6] & 0x07 == 2
    d = bytes(h.run(inquiry(1, 0xB0)).data)
    assert struct.unpack_from(">II", d, 20) == (0xFFFFFFFF, 256)


def test_inquiry_cmddt_is_invalid(h: Harness) -> None:
    assert h.sense(inquiry(2)) == INVALID_FIELD


# Nonexistent LUNs
def test_inquiry_nonexistent_lun(h: Harness) -> None:
    d = bytes(h.run(inquiry(alloc=36), lun=7 << 48).data)
    assert d[0] == 0x7F and len(d) == 36


@pytest.mark.parametrize("cdb", [[0] * 6, [0x28] + [0] * 9, [0x1A, 0, 0x3F, 0, 255, 0]])
def test_other_commands_on_nonexistent_lun(h: Harness, cdb: list[int]) -> None:
    r = h.run(cdb, lun=7 << 48)
    assert r.sense == bytes([0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x25, 0, 0, 0, 0, 0])


def test_request_sense_nonexistent_lun(h: Harness) -> None:
    r = h.run([0x03, 0, 0, 0, 252, 0], lun=7 << 48)
    assert r.status == Status.GOOD and bytes(r.data)[2] == 5 and bytes(r.data)[12] == 0x25


# REPORT LUNS
def report_luns(select: int = 0, alloc: int = 4096) -> bytes:
    return bytes([0xA0, 0, select, 0, 0, 0]) + alloc.to_bytes(4, "big") + b"\0\0"


@pytest.mark.parametrize("lun", [0, RAW_LUN1, 9 << 48])
def test_report_luns_from_any_lun(h: Harness, lun: int) -> None:
    d = bytes(h.run(report_luns(), lun=lun).data)
    assert d == struct.pack(">I4xQQ", 16, 0, 1 << 48)


def test_report_luns_select_and_flat_addressing(h: Harness) -> None:
    from pytgt.scsi import create_lu
    from pytgt.stores.memory import MemoryStore

    h.target.add_lu(create_lu("disk", 300, MemoryStore(BS * 8), tid=1))
    d = bytes(h.run(report_luns(2)).data)
    assert d[8:] == bytes(8) + (1 << 48).to_bytes(8, "big") + bytes([0x41, 0x2C]) + bytes(6)
    assert bytes(h.run(report_luns(1)).data) == bytes(8)
    assert h.run([0x12, 0, 0, 0, 36, 0], lun=0x412C << 48).data[0] == 0


@pytest.mark.parametrize(("select", "alloc"), [(3, 4096), (0xFF, 4096), (0, 15)])
def test_report_luns_invalid(h: Harness, select: int, alloc: int) -> None:
    assert h.sense(report_luns(select, alloc)) == INVALID_FIELD


def test_report_luns_allocation_length_truncates(h: Harness) -> None:
    assert bytes(h.run(report_luns(0, 16)).data) == struct.pack(">I4xQ", 16, 0)


# Unit attentions and REQUEST SENSE
def test_new_nexus_gets_power_on_unit_attention_once(h: Harness) -> None:
    from pytgt.scsi import ItNexus

    n2 = ItNexus("n2", "iqn.2024-01.test:n2")
    h.target.add_nexus(n2)
    assert h.run(inquiry(), nexus=n2).status == Status.GOOD  # INQUIRY does not report it
    assert h.sense([0] * 6, nexus=n2) == (0x06, 0x29, 0x00)
    assert h.run([0] * 6, nexus=n2).status == Status.GOOD
    assert h.run([0] * 6).status == Status.GOOD  # the first nexus is unaffected


def test_returning_initiator_port_gets_i_t_nexus_loss(h: Harness) -> None:
    """The same initiator port back after its nexus ended (session reinstated or logged
    in again): I_T NEXUS LOSS OCCURRED, not POWER ON (SAM-5 6.3.4)."""
    from pytgt.scsi import ItNexus

    n2 = ItNexus("n2", "iqn.2024-01.test:n2")
    h.target.add_nexus(n2)
    assert h.sense([0] * 6, nexus=n2) == (0x06, 0x29, 0x00)
    h.target.remove_nexus(n2)
    h.target.add_nexus(ItNexus("n2", "iqn.2024-01.test:n2"))
    assert h.sense([0] * 6, nexus=n2) == (0x06, 0x29, 0x07)
    assert h.run([0] * 6, nexus=n2).status == Status.GOOD


def test_request_sense_reports_and_clears_unit_attention(h: Harness) -> None:
    h.lu.ua_add(h.nexus.key, (0x2A, 0x09))
    r = h.run([0x03, 0, 0, 0, 18, 0])
    assert r.status == Status.GOOD
    assert bytes(r.data) == bytes([0x70, 0, 6, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x2A, 9, 0, 0, 0, 0])
    r = h.run([0x03, 1, 0, 0, 18, 0])  # DESC=1, nothing pending
    assert bytes(r.data) == bytes([0x72, 0, 0, 0, 0, 0, 0, 0])
    assert h.run([0] * 6).status == Status.GOOD


def test_added_lu_raises_reported_luns_changed_on_others(h: Harness) -> None:
    from pytgt.scsi import create_lu
    from pytgt.stores.memory import MemoryStore

    h.target.add_lu(create_lu("disk", 2, MemoryStore(BS * 8), tid=1))
    assert h.sense([0] * 6) == (0x06, 0x3F, 0x0E)
    h.target.remove_lu(2)
    h.run(report_luns())  # REPORT LUNS clears it
    assert h.run([0] * 6).status == Status.GOOD


def test_add_existing_lun_is_an_error(h: Harness) -> None:
    from pytgt.scsi import create_lu
    from pytgt.stores.memory import MemoryStore

    with pytest.raises(ValueError, match="exists"):
        h.target.add_lu(create_lu("disk", 1, MemoryStore(BS), tid=1))


# MODE SENSE / MODE SELECT
def mode_sense6(page: int = 0x3F, pc: int = 0, dbd: bool = False, alloc: int = 255,
                sub: int = 0) -> bytes:
    return bytes([0x1A, 0x08 if dbd else 0, pc << 6 | page, sub, alloc, 0])


def mode_sense10(page: int = 0x3F, pc: int = 0, llbaa: bool = False, alloc: int = 4096) -> bytes:
    return bytes([0x5A, 0x10 if llbaa else 0, pc << 6 | page, 0, 0, 0, 0]) + \
        alloc.to_bytes(2, "big") + b"\0"


def pages_of(data: bytes) -> dict[int, bytes]:
    out, pos = {}, 0
    while pos < len(data):
        out[data[pos] & 0x3F] = data[pos + 2:pos + 2 + data[pos + 1]]
        pos += 2 + data[pos + 1]
    return out


def test_mode_sense6_all_pages(h: Harness) -> None:
    d = bytes(h.run(mode_sense6()).data)
    assert d[0] == len(d) - 1 and d[1] == 0 and d[2] == 0x10 and d[3] == 8
    assert struct.unpack_from(">II", d, 4) == (BLOCKS, BS)
    pages = pages_of(d[12:])
    assert sorted(pages) == [0x01, 0x02, 0x08, 0x0A, 0x1C]
    assert pages[0x08][0] & 0x04  # WCE
    assert pages[0x0A][0] & 0x04 == 0  # D_SENSE


def test_mode_sense6_dbd_and_truncation(h: Harness) -> None:
    d = bytes(h.run(mode_sense6(0x0A, dbd=True)).data)
    assert d[:4] == bytes([3 + 12, 0, 0x10, 0]) and d[4:6] == b"\x0a\x0a"
    assert len(h.run(mode_sense6(alloc=4)).data) == 4


def test_mode_sense10_long_lba(h: Harness) -> None:
    d = bytes(h.run(mode_sense10(0x08, llbaa=True)).data)
    assert struct.unpack_from(">H", d)[0] == len(d) - 2
    assert d[4] & 1 and struct.unpack_from(">H", d, 6)[0] == 16
    assert struct.unpack_from(">Q4xI", d, 8) == (BLOCKS, BS)


def test_mode_sense_write_protect_bit(h: Harness) -> None:
    h.lu.update_params({"readonly": "1"})
    assert bytes(h.run(mode_sense6()).data)[2] & 0x80


def test_mode_sense_changeable_and_saved(h: Harness) -> None:
    pages = pages_of(bytes(h.run(mode_sense6(pc=1, dbd=True)).data)[4:])
    assert pages[0x08][0] == 0x04 and pages[0x0A][0] == 0x04 and not any(pages[0x01])
    assert h.sense(mode_sense6(pc=3)) == (0x05, 0x39, 0x00)


@pytest.mark.parametrize(("page", "sub"), [(0x03, 0), (0x3E, 0), (0x0A, 0x01), (0x3F, 0x05)])
def test_mode_sense_unknown_page(h: Harness, page: int, sub: int) -> None:
    assert h.sense(mode_sense6(page, sub=sub)) == INVALID_FIELD


def _control_page(d_sense: bool) -> bytes:
    return bytes([0x0A, 10, 0x04 if d_sense else 0, 0x10, 0, 0x40, 0, 0, 0xFF, 0xFF, 0, 0])


def test_mode_select_d_sense_switches_sense_format(h: Harness) -> None:
    from pytgt.scsi import ItNexus

    n2 = h.new_nexus("n2")
    plist = bytes(4) + _control_page(True)
    r = h.run([0x15, 0x10, 0, 0, len(plist), 0], plist)
    assert r.status == Status.GOOD and h.lu.sense_format == 1
    assert h.run([0x28] + [0] * 9, lun=RAW_LUN1).status == Status.GOOD
    assert h.run(inquiry(0, 1)).sense[0] == 0x72
    assert h.sense([0] * 6, nexus=n2) == (0x06, 0x2A, 0x01)  # MODE PARAMETERS CHANGED
    assert isinstance(n2, ItNexus)


def test_mode_select10_caching_with_block_descriptor(h: Harness) -> None:
    page = bytes([0x08, 18]) + bytes(18)  # WCE off
    plist = struct.pack(">HBBBBH", 0, 0, 0, 0, 0, 8) + struct.pack(">II", 0, BS) + page
    r = h.run([0x55, 0x10, 0, 0, 0, 0, 0, 0, len(plist), 0], plist)
    assert r.status == Status.GOOD and not h.lu.mode.wce


@pytest.mark.parametrize(("plist", "sense"), [
    (bytes(4) + bytes([0x01, 10, 0x00]) + bytes(9), (0x05, 0x26, 0x00)),  # unchangeable bit
    (bytes(4) + bytes([0x03, 2, 0, 0]), (0x05, 0x26, 0x00)),  # unknown page
    (bytes(4) + bytes([0x0A, 4, 0, 0, 0, 0]), (0x05, 0x26, 0x00)),  # wrong page length
    (bytes([0, 0, 0, 8]) + struct.pack(">II", 0, 4096), (0x05, 0x26, 0x00)),  # block length
    (bytes(3), (0x05, 0x1A, 0x00)),
])
def test_mode_select_invalid(h: Harness, plist: bytes, sense: tuple[int, int, int]) -> None:
    assert h.sense([0x15, 0x10, 0, 0, len(plist), 0], plist) == sense


def test_mode_select_save_pages_not_supported(h: Harness) -> None:
    assert h.sense([0x15, 0x11, 0, 0, 0, 0]) == INVALID_FIELD


# REPORT SUPPORTED OPERATION CODES
def rsoc(option: int, opcode: int = 0, sa: int = 0, rctd: bool = False,
         alloc: int = 65535) -> bytes:
    return bytes([0xA3, 0x0C, (0x80 if rctd else 0) | option, opcode]) + \
        struct.pack(">HI", sa, alloc) + b"\0\0"


def test_rsoc_all(h: Harness) -> None:
    d = bytes(h.run(rsoc(0)).data)
    assert struct.unpack_from(">I", d)[0] == len(d) - 4
    rows = [struct.unpack_from(">BxHxBH", d, p) for p in range(4, len(d), 8)]
    ops = {(op, sa if flags & 1 else None) for op, sa, flags, _ in rows}
    assert {(0x28, None), (0x2A, None), (0x9E, 0x10), (0xA3, 0x0C), (0x12, None)} <= ops
    for op, sa, flags, cdb_len in rows:
        one = bytes(h.run(rsoc(2 if flags & 1 else 1, op, sa)).data)
        assert one[1] & 0x07 == 3 and struct.unpack_from(">H", one, 2)[0] == cdb_len
        assert one[4] == op and len(one) == 4 + cdb_len


def test_rsoc_rctd(h: Harness) -> None:
    d = bytes(h.run(rsoc(0, rctd=True)).data)
    assert len(d) - 4 == 20 * (len(d) // 20) and d[4 + 5] & 0x02
    one = bytes(h.run(rsoc(1, 0x28, rctd=True)).data)
    assert one[1] & 0x80 and len(one) == 4 + 10 + 12


def test_rsoc_unsupported_and_invalid(h: Harness) -> None:
    assert bytes(h.run(rsoc(1, 0xEE)).data)[1] & 0x07 == 1
    assert h.sense(rsoc(1, 0x9E)) == INVALID_FIELD  # has service actions
    assert h.sense(rsoc(2, 0x28)) == INVALID_FIELD  # has none
    assert h.sense(rsoc(7)) == INVALID_FIELD


def test_unknown_opcode_and_service_action(h: Harness) -> None:
    assert h.sense([0xEE] + [0] * 9) == (0x05, 0x20, 0x00)
    assert h.sense([0x9E, 0x1F] + [0] * 14) == INVALID_FIELD
    assert h.sense([0x28] + [0] * 9, lun=0) == (0x05, 0x20, 0x00)  # controller: no READ


# RESERVE / RELEASE (SPC-2)
def test_reserve6_two_initiators(h: Harness) -> None:
    n2 = h.new_nexus("n2")
    assert h.run([0x16, 0, 0, 0, 0, 0]).status == Status.GOOD
    assert h.run([0x16, 0, 0, 0, 0, 0]).status == Status.GOOD
    assert h.run([0x16, 0, 0, 0, 0, 0], nexus=n2).status == Status.RESERVATION_CONFLICT
    assert h.run([0x17, 0, 0, 0, 0, 0], nexus=n2).status == Status.GOOD
    assert h.run(mode_sense6()).status == Status.GOOD
    assert h.run(mode_sense6(), nexus=n2).status == Status.RESERVATION_CONFLICT
    assert h.run(inquiry(), nexus=n2).status == Status.GOOD
    assert h.run([0x17, 0, 0, 0, 0, 0]).status == Status.GOOD
    assert h.run([0x16, 0, 0, 0, 0, 0], nexus=n2).status == Status.GOOD
    h.target.remove_nexus(n2)  # nexus loss releases it
    assert h.run(mode_sense6()).status == Status.GOOD


def test_reservation_released_by_lu_reset(h: Harness) -> None:
    n2 = h.new_nexus("n2")
    h.run([0x16, 0, 0, 0, 0, 0], nexus=n2)
    assert h.tmf(tmf.Function.LOGICAL_UNIT_RESET, RAW_LUN1) == tmf.ServiceResponse.FUNCTION_COMPLETE
    assert h.sense([0] * 6) == (0x06, 0x29, 0x03)
    assert h.run([0] * 6).status == Status.GOOD


def test_send_diagnostic(h: Harness) -> None:
    assert h.run([0x1D, 0x04, 0, 0, 0, 0]).status == Status.GOOD
    assert h.sense([0x1D, 0x24, 0, 0, 0, 0]) == INVALID_FIELD
