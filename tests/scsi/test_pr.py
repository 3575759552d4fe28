"""Persistent reservations (SPC-4 5.9): PR IN/OUT service actions and access rules."""

from __future__ import annotations

import struct

import pytest

from pytgt.scsi import ItNexus, Status
from pytgt.scsi.pr import PrType

from .conftest import BS, Harness, cdb10

K1, K2 = 0x1111, 0x2222


def prout(action: int, key: int = 0, sa_key: int = 0, ptype: int = 0, flags: int = 0,
          length: int = 24) -> tuple[bytes, bytes]:
    cdb = bytes([0x5F, action, ptype]) + bytes(2) + length.to_bytes(4, "big") + b"\0"
    return cdb, struct.pack(">QQ4xBx2x", key, sa_key, flags)


def prin(action: int, alloc: int = 1024) -> bytes:
    return bytes([0x5E, action]) + bytes(5) + alloc.to_bytes(2, "big") + b"\0"


def out(h: Harness, nexus: ItNexus, *args: int, **kw: int) -> int:
    cdb, data = prout(*args, **kw)
    r = h.run(cdb, data, nexus=nexus)
    return r.status


def keys(h: Harness) -> tuple[int, list[int]]:
    d = bytes(h.run(prin(0)).data)
    gen, n = struct.unpack_from(">II", d)
    return gen, [struct.unpack_from(">Q", d, 8 + i)[0] for i in range(0, n, 8)]


def reservation(h: Harness) -> tuple[int, int] | None:
    d = bytes(h.run(prin(1)).data)
    if struct.unpack_from(">I", d, 4)[0] == 0:
        return None
    key, scope_type = struct.unpack_from(">Q4xxB", d, 8)
    return key, scope_type & 0x0F


@pytest.fixture
def n2(h: Harness) -> ItNexus:
    return h.new_nexus("n2")


def test_register_read_keys_unregister(h: Harness, n2: ItNexus) -> None:
    assert keys(h) == (0, [])
    assert out(h, h.nexus, 0, 0, K1) == Status.GOOD
    assert out(h, n2, 6, 0, K2) == Status.GOOD  # REGISTER AND IGNORE EXISTING KEY
    gen, got = keys(h)
    assert gen == 2 and sorted(got) == [K1, K2]
    assert out(h, h.nexus, 0, K2, 0) == Status.RESERVATION_CONFLICT  # wrong key
    assert out(h, h.nexus, 0, K1, 0x3333) == Status.GOOD  # change key
    assert out(h, n2, 0, K2, 0) == Status.GOOD  # unregister
    assert keys(h) == (4, [0x3333])
    assert out(h, n2, 0, 5, 7) == Status.RESERVATION_CONFLICT  # unregistered with a key


def test_reserve_release_and_read_reservation(h: Harness, n2: ItNexus) -> None:
    out(h, h.nexus, 0, 0, K1)
    out(h, n2, 0, 0, K2)
    assert out(h, h.nexus, 1, K2, ptype=PrType.WRITE_EXCLUSIVE) == Status.RESERVATION_CONFLICT
    assert out(h, h.nexus, 1, K1, ptype=PrType.WRITE_EXCLUSIVE) == Status.GOOD
    assert reservation(h) == (K1, 1)
    assert out(h, h.nexus, 1, K1, ptype=PrType.WRITE_EXCLUSIVE) == Status.GOOD  # again
    assert out(h, n2, 1, K2, ptype=PrType.WRITE_EXCLUSIVE) == Status.RESERVATION_CONFLICT
    assert out(h, n2, 2, K2, ptype=PrType.WRITE_EXCLUSIVE) == Status.GOOD  # not holder: no-op
    assert reservation(h) == (K1, 1)
    assert h.sense(*prout(2, K1, ptype=PrType.EXCLUSIVE_ACCESS)) == (0x05, 0x26, 0x04)
    assert out(h, h.nexus, 2, K1, ptype=PrType.WRITE_EXCLUSIVE) == Status.GOOD
    assert reservation(h) is None


@pytest.mark.parametrize(("ptype", "reg_read", "reg_write", "unreg_read", "unreg_write"), [
    (PrType.EXCLUSIVE_ACCESS, False, False, False, False),
    (PrType.WRITE_EXCLUSIVE, True, False, True, False),
    (PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY, True, True, False, False),
    (PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY, True, True, True, False),
    (PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS, True, True, False, False),
    (PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS, True, True, True, False),
])
def test_access_by_type(h: Harness, n2: ItNexus, ptype: int, reg_read: bool, reg_write: bool,
                        unreg_read: bool, unreg_write: bool) -> None:
    def can(nexus: ItNexus, write: bool) -> bool:
        cdb = cdb10(0x2A if write else 0x28, 0, 1)
        return h.run(cdb, bytes(BS), nexus=nexus).status == Status.GOOD

    out(h, h.nexus, 6, 0, K1)
    out(h, n2, 6, 0, K2)
    assert out(h, h.nexus, 1, K1, ptype=ptype) == Status.GOOD
    all_reg = ptype in (PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS,
                        PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS)
    assert reservation(h) == (0 if all_reg else K1, ptype)
    assert can(h.nexus, False) and can(h.nexus, True)
    assert (can(n2, False), can(n2, True)) == (reg_read, reg_write)
    assert out(h, n2, 0, K2, 0) == Status.GOOD
    assert (can(n2, False), can(n2, True)) == (unreg_read, unreg_write)
    assert h.run([0x12, 0, 0, 0, 36, 0], nexus=n2).status == Status.GOOD
    assert h.run([0x25] + [0] * 9, nexus=n2).status == Status.GOOD
    assert out(h, h.nexus, 2, K1, ptype=ptype) == Status.GOOD
    assert can(n2, True)


def test_clear(h: Harness, n2: ItNexus) -> None:
    out(h, h.nexus, 0, 0, K1)
    out(h, n2, 0, 0, K2)
    out(h, h.nexus, 1, K1, ptype=PrType.EXCLUSIVE_ACCESS)
    assert out(h, n2, 3, K2) == Status.GOOD
    assert h.sense([0] * 6) == (0x06, 0x2A, 0x03)  # RESERVATIONS PREEMPTED for the other
    assert keys(h)[1] == [] and reservation(h) is None


def test_preempt_takes_the_reservation(h: Harness, n2: ItNexus) -> None:
    out(h, h.nexus, 0, 0, K1)
    out(h, n2, 0, 0, K2)
    out(h, h.nexus, 1, K1, ptype=PrType.WRITE_EXCLUSIVE)
    assert out(h, n2, 4, K2, K1, ptype=PrType.EXCLUSIVE_ACCESS) == Status.GOOD
    assert h.sense([0] * 6) == (0x06, 0x2A, 0x05)  # REGISTRATIONS PREEMPTED
    assert keys(h)[1] == [K2] and reservation(h) == (K2, 3)
    assert h.run(cdb10(0x28, 0, 1)).status == Status.RESERVATION_CONFLICT
    assert out(h, n2, 4, K2, 0x9999, ptype=1) == Status.RESERVATION_CONFLICT  # no such key
    assert h.sense(*prout(4, K2, 0, 1), nexus=n2) == (0x05, 0x26, 0x00)


def test_preempt_removes_registration_without_reservation(h: Harness, n2: ItNexus) -> None:
    out(h, h.nexus, 0, 0, K1)
    out(h, n2, 0, 0, K2)
    assert out(h, h.nexus, 5, K1, K2, ptype=1) == Status.GOOD  # PREEMPT AND ABORT
    assert keys(h)[1] == [K1] and reservation(h) is None


def test_report_capabilities_and_full_status(h: Harness, n2: ItNexus) -> None:
    d = bytes(h.run(prin(2)).data)
    assert d[2] == 0x1C  # no state directory: no PTPL_C, and APTPL=1 is refused
    assert h.sense(*prout(0, 0, K1, flags=0x01)) == (0x05, 0x26, 0x00)  # APTPL

    async def saver(_pr: object) -> None:
        pass

    h.lu.pr.saver = saver
    d = bytes(h.run(prin(2)).data)
    assert struct.unpack_from(">H", d)[0] == 8 and d[3] == 0x80 and d[2] == 0x1D  # + PTPL_A
    assert struct.unpack_from(">H", d, 4)[0] == 0xEA01
    out(h, h.nexus, 0, 0, K1)
    out(h, h.nexus, 1, K1, ptype=PrType.WRITE_EXCLUSIVE)
    d = bytes(h.run(prin(3)).data)
    key, flags, ptype, rtp, tid_len = struct.unpack_from(">Q4xBB4xHI", d, 8)
    assert (key, flags, ptype, rtp) == (K1, 1, 1, 1)
    assert d[32] == 0x45 and d[36:36 + tid_len].rstrip(b"\0") == \
        b"iqn.2024-01.test:n1,i,0x23d000000001"


@pytest.mark.parametrize(("cdb_data", "sense"), [
    (prout(0, 0, K1, length=20), (0x05, 0x1A, 0x00)),
    (prout(0, 0, K1, flags=0x08), (0x05, 0x1A, 0x00)),  # SPEC_I_PT without a list
    (prout(1, 0, K1, flags=0x08), (0x05, 0x26, 0x00)),  # SPEC_I_PT on RESERVE
    (prout(8, 0, K1), (0x05, 0x24, 0x00)),  # no such service action
])
def test_prout_invalid(h: Harness, cdb_data: tuple[bytes, bytes],
                       sense: tuple[int, int, int]) -> None:
    assert h.sense(*cdb_data) == sense


def test_prin_invalid_action(h: Harness) -> None:
    assert h.sense(prin(9)) == (0x05, 0x24, 0x00)


def test_registrations_survive_relogin_and_block_spc2(h: Harness, n2: ItNexus) -> None:
    n = ItNexus("n3", "iqn.2024-01.test:n3", initiator_port="iqn.2024-01.test:n3,i,0x1")
    h.target.add_nexus(n)
    h.run([0] * 6, nexus=n)
    out(h, n, 0, 0, K1)
    h.target.remove_nexus(n)
    again = ItNexus("n3b", "iqn.2024-01.test:n3", initiator_port="iqn.2024-01.test:n3,i,0x1")
    h.target.add_nexus(again)
    h.run([0] * 6, nexus=again)
    assert out(h, again, 0, K1, 0) == Status.GOOD  # still registered under the same port
    out(h, n2, 0, 0, K2)
    assert h.run([0x16, 0, 0, 0, 0, 0]).status == Status.RESERVATION_CONFLICT


def test_holder_unregistering_releases(h: Harness, n2: ItNexus) -> None:
    out(h, h.nexus, 0, 0, K1)
    out(h, n2, 0, 0, K2)
    out(h, h.nexus, 1, K1, ptype=PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY)
    assert out(h, h.nexus, 0, K1, 0) == Status.GOOD
    assert h.sense([0] * 6, nexus=n2) == (0x06, 0x2A, 0x04)  # RESERVATIONS RELEASED
    assert reservation(h) is None


def test_all_registrants_reservation_lasts_until_the_last_registrant(h: Harness,
                                                                     n2: ItNexus) -> None:
    out(h, h.nexus, 0, 0, K1)
    out(h, n2, 0, 0, K2)
    out(h, h.nexus, 1, K1, ptype=PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS)
    assert out(h, h.nexus, 0, K1, 0) == Status.GOOD
    assert reservation(h) == (0, PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS)
    assert h.run(cdb10(0x28, 0, 1)).status == Status.RESERVATION_CONFLICT  # not registered
    assert out(h, n2, 0, K2, 0) == Status.GOOD
    assert reservation(h) is None


def test_preempt_all_registrants_with_zero_key(h: Harness, n2: ItNexus) -> None:
    out(h, h.nexus, 0, 0, K1)
    out(h, n2, 0, 0, K2)
    out(h, h.nexus, 1, K1, ptype=PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS)
    assert out(h, n2, 4, K2, 0, ptype=PrType.WRITE_EXCLUSIVE) == Status.GOOD
    assert h.sense([0] * 6) == (0x06, 0x2A, 0x05)
    assert keys(h)[1] == [K2] and reservation(h) == (K2, PrType.WRITE_EXCLUSIVE)


@pytest.mark.parametrize(("action", "ptype_byte", "sense"), [
    (1, 0x10 | PrType.WRITE_EXCLUSIVE, (0x05, 0x24, 0x00)),  # scope not LU_SCOPE
    (1, 0x02, (0x05, 0x24, 0x00)),  # type 2 is reserved
    (4, 0x09, (0x05, 0x24, 0x00)),
])
def test_prout_invalid_scope_or_type(h: Harness, action: int, ptype_byte: int,
                                     sense: tuple[int, int, int]) -> None:
    out(h, h.nexus, 0, 0, K1)
    cdb, data = prout(action, K1, K2, ptype_byte)
    assert h.sense(cdb, data) == sense


def test_prout_short_data(h: Harness) -> None:
    cdb, data = prout(0, 0, K1)
    assert h.sense(cdb, data[:10]) == (0x05, 0x1A, 0x00)
    assert h.target.expected_data_out(1 << 48, cdb) == 24


def test_aptpl_save_failure_is_a_hardware_error(h: Harness) -> None:
    """The state directory is full or gone: the initiator learns the state is not saved."""
    async def failing_saver(_pr: object) -> None:
        raise OSError(28, "No space left on device")

    h.lu.pr.saver = failing_saver
    assert h.sense(*prout(0, 0, K1, flags=0x01)) == (0x04, 0x44, 0x00)
