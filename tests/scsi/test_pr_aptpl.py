"""SPEC_I_PT, ALL_TG_PT, REGISTER AND MOVE and APTPL (SPC-4 5.9) in memory, with the
APTPL saver an embedding program hands in (pytgtd's files: tests/daemon/test_aptpl.py)."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from pytgt.scsi import ItNexus, Status, create_lu, pr_state
from pytgt.scsi.pr import PersistentReservations, PrType
from pytgt.scsi.transport_id import TransportIdError, encode_transport_id, parse_transport_id
from pytgt.stores.memory import MemoryStore

from .conftest import Harness
from .test_pr import K1, K2, keys, out, prin, reservation

N3 = "iqn.2024-01.test:n3"


def spec_i_pt(key: int, sa_key: int, *tids: bytes, flags: int = 0x08) -> tuple[bytes, bytes]:
    body = b"".join(tids)
    data = struct.pack(">QQ4xBx2xI", key, sa_key, flags, len(body)) + body
    cdb = bytes([0x5F, 0, 0, 0, 0]) + len(data).to_bytes(4, "big") + b"\0"
    return cdb, data


def move(key: int, sa_key: int, tid: bytes, rel: int = 1, unreg: bool = False,
         aptpl: bool = False) -> tuple[bytes, bytes]:
    data = struct.pack(">QQxBHI", key, sa_key, (2 if unreg else 0) | aptpl, rel, len(tid)) + tid
    cdb = bytes([0x5F, 7, 0]) + bytes(2) + len(data).to_bytes(4, "big") + b"\0"
    return cdb, data


def nexus(h: Harness, key: str, isid: int = 0x23D000000001, rel: int = 1) -> ItNexus:
    name = f"iqn.2024-01.test:{key.split('@')[0]}"
    n = ItNexus(key, name, initiator_port=f"{name},i,{isid:#014x}", relative_port=rel)
    h.target.add_nexus(n)
    for lun in list(h.target.luns):
        while h.run([0] * 6, lun=lun, nexus=n).sense:
            pass
    return n


# -- TransportIDs -------------------------------------------------------------------------
@pytest.mark.parametrize("port", [N3, f"{N3},i,0x23d000000001"])
def test_transport_id_round_trip(port: str) -> None:
    raw = encode_transport_id(port)
    assert len(raw) % 4 == 0 and len(raw) >= 24
    assert raw[0] == (0x45 if ",i," in port else 0x05)
    assert parse_transport_id(raw + b"trailing", 0) == (port, len(raw))


def test_transport_id_isid_is_canonical() -> None:
    raw = b"\x45\0\0\x28" + f"{N3},I,0x23D000000001".encode().ljust(40, b"\0")
    assert parse_transport_id(raw)[0] == f"{N3},i,0x23d000000001"


@pytest.mark.parametrize(("raw", "offset"), [
    (b"\x45\0\0", 0),  # truncated header
    (b"\x46\0\0\x14" + bytes(20), 0),  # not iSCSI (SRP)
    (b"\x85\0\0\x14" + b"x" * 20, 0),  # format 10b
    (b"\x05\0\0\x10" + b"iqn.x\0".ljust(16, b"\0"), 2),  # shorter than 20
    (b"\x05\0\0\x18" + b"iqn.x\0".ljust(20, b"\0"), 2),  # longer than the data
    (b"\x05\0\0\x14" + b"x" * 20, 4),  # no NUL
    (b"\x45\0\0\x14" + b"iqn.x\0".ljust(20, b"\0"), 4),  # 01b without ISID
    (b"\x05\0\0\x14" + b"iqn.x,i,0x1\0".ljust(20, b"\0"), 4),  # 00b with ISID
])
def test_transport_id_errors(raw: bytes, offset: int) -> None:
    with pytest.raises(TransportIdError) as err:
        parse_transport_id(raw)
    assert err.value.offset == offset


# -- SPEC_I_PT ----------------------------------------------------------------------------
def test_spec_i_pt_registers_the_named_ports(h: Harness) -> None:
    port3 = f"{N3},i,0x23d000000001"
    cdb, data = spec_i_pt(0, K1, encode_transport_id(port3))
    assert h.run(cdb, data).status == Status.GOOD
    assert keys(h) == (1, [K1, K1])
    n3 = nexus(h, "n3")  # logs in later: already registered
    assert out(h, n3, 1, K1, ptype=PrType.WRITE_EXCLUSIVE) == Status.GOOD
    assert reservation(h) == (K1, PrType.WRITE_EXCLUSIVE)
    other_isid = nexus(h, "n3@2", isid=0x23D000000002)
    assert out(h, other_isid, 0, K1, 0) == Status.RESERVATION_CONFLICT  # another port


def test_spec_i_pt_format_00b_covers_every_isid(h: Harness) -> None:
    cdb, data = spec_i_pt(0, K1, encode_transport_id(N3))
    assert h.run(cdb, data).status == Status.GOOD
    for i, isid in enumerate((1, 2)):
        n = nexus(h, f"n3@{i}", isid=isid)
        assert out(h, n, 0, K1, K1) == Status.GOOD  # registered: key "changed" to itself


@pytest.mark.parametrize(("build", "sense"), [
    (lambda: spec_i_pt(0, K1, b"\x46\0\0\x14" + bytes(20)), (0x05, 0x26, 0x00)),
    (lambda: (spec_i_pt(0, K1)[0][:5] + (40).to_bytes(4, "big") + b"\0",
              spec_i_pt(0, K1, encode_transport_id(N3))[1][:40]), (0x05, 0x1A, 0x00)),
    (lambda: (bytes([0x5F, 0, 0, 0, 0, 0, 0, 0, 26, 0]), bytes(26)), (0x05, 0x1A, 0x00)),
])
def test_spec_i_pt_errors(h: Harness, build: object, sense: tuple[int, int, int]) -> None:
    cdb, data = build()  # type: ignore[operator]
    assert h.sense(cdb, data) == sense
    assert keys(h) == (0, [])  # nothing registered


def test_spec_i_pt_from_a_registered_nexus_or_for_a_registered_port(h: Harness) -> None:
    out(h, h.nexus, 0, 0, K1)
    assert h.sense(*spec_i_pt(K1, K2, encode_transport_id(N3))) == (0x05, 0x26, 0x00)
    n2 = nexus(h, "n2")
    cdb, data = spec_i_pt(0, K2, encode_transport_id(h.nexus.initiator_port))
    assert h.sense(cdb, data, nexus=n2) == (0x05, 0x26, 0x00)
    assert keys(h) == (1, [K1])


# -- ALL_TG_PT ----------------------------------------------------------------------------
def test_all_tg_pt_registers_every_target_port(h: Harness) -> None:
    assert out(h, h.nexus, 0, 0, K1, flags=0x04) == Status.GOOD
    elsewhere = ItNexus("n1@2", h.nexus.initiator_name,
                        initiator_port=h.nexus.initiator_port, relative_port=2)
    h.target.add_nexus(elsewhere)
    h.run([0] * 6, nexus=elsewhere)
    assert out(h, elsewhere, 1, K1, ptype=PrType.EXCLUSIVE_ACCESS) == Status.GOOD
    assert h.run([0x28] + [0] * 7 + [1, 0], nexus=h.nexus).status == Status.GOOD  # holder
    d = bytes(h.run(prin(3)).data)
    _key, flags, _t, rtp, _l = struct.unpack_from(">Q4xBB4xHI", d, 8)
    assert flags == 0x03 and rtp == 0  # ALL_TG_PT, R_HOLDER


def test_all_tg_pt_is_ignored_outside_register(h: Harness) -> None:
    out(h, h.nexus, 0, 0, K1)
    assert out(h, h.nexus, 1, K1, ptype=1, flags=0x05) == Status.GOOD  # ALL_TG_PT, APTPL


# -- REGISTER AND MOVE ----------------------------------------------------------------------
def test_register_and_move(h: Harness) -> None:
    n2 = nexus(h, "n2")
    out(h, h.nexus, 0, 0, K1)
    assert h.run(*move(K1, K2, encode_transport_id(n2.initiator_port))).status \
        == Status.RESERVATION_CONFLICT  # no reservation to move
    out(h, h.nexus, 1, K1, ptype=PrType.EXCLUSIVE_ACCESS)
    assert h.sense(*move(K1, K2, encode_transport_id(h.nexus.initiator_port))) \
        == (0x05, 0x26, 0x00)  # to itself
    assert h.sense(*move(K1, 0, encode_transport_id(n2.initiator_port))) == (0x05, 0x26, 0x00)
    assert h.run(*move(K1, K2, encode_transport_id(n2.initiator_port), unreg=True)).status \
        == Status.GOOD
    assert reservation(h) == (K2, PrType.EXCLUSIVE_ACCESS)
    assert keys(h)[1] == [K2]
    assert h.run([0x28] + [0] * 7 + [1, 0], nexus=n2).status == Status.GOOD
    assert h.run([0x28] + [0] * 7 + [1, 0]).status == Status.RESERVATION_CONFLICT


# -- APTPL: the saver the embedding program hands in ----------------------------------------
class MemorySaver:
    """An AptplSaver that keeps the last state in memory (pytgtd's writes files)."""

    def __init__(self) -> None:
        self.saved: dict[str, Any] | None = None
        self.calls = 0

    async def __call__(self, pr: PersistentReservations, /) -> None:
        self.calls += 1
        self.saved = pr_state.to_dict(pr) if pr.aptpl else None


def test_aptpl_state_goes_to_the_saver_and_back(h: Harness) -> None:
    saver = MemorySaver()
    h.lu.pr.saver = saver
    n2 = nexus(h, "n2")
    assert out(h, n2, 0, 0, K2) == Status.GOOD
    assert saver.calls == 0  # APTPL never set: nothing to keep
    assert out(h, h.nexus, 0, 0, K1, flags=0x01) == Status.GOOD
    assert out(h, h.nexus, 1, K1, ptype=PrType.WRITE_EXCLUSIVE) == Status.GOOD
    assert saver.calls == 2 and saver.saved is not None
    lu = create_lu("disk", 1, MemoryStore(1 << 20), tid=1)  # "power loss"
    pr_state.load_into(lu.pr, saver.saved)
    assert lu.pr.registrations == h.lu.pr.registrations
    assert (lu.pr.type, lu.pr.holder, lu.pr.generation, lu.pr.aptpl) == \
        (h.lu.pr.type, h.lu.pr.holder, h.lu.pr.generation, True)
    assert out(h, n2, 0, K2, K2) == Status.GOOD  # APTPL=0 registered: forget it
    assert saver.calls == 3 and saver.saved is None
