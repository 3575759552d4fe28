"""SANITIZE (SBC-4 5.30): parameter checks, the background operation and its interplay
with other commands, reservations, write protection, resets and failure mode."""

from __future__ import annotations

import asyncio
import errno
import struct

import pytest

from pytgt.scsi import Status, sanitize, tmf
from pytgt.stores.base import StoreIOError

from .conftest import BLOCKS, BS, Harness, cdb10

INVALID_FIELD = (0x05, 0x24, 0x00)
INVALID_PARAM = (0x05, 0x26, 0x00)
IN_PROGRESS = (0x02, 0x04, 0x1B)
FAILED = (0x03, 0x31, 0x03)
OVERWRITE, BLOCK_ERASE, CRYPTO_ERASE, EXIT_FAILURE_MODE = 0x01, 0x02, 0x03, 0x1F
TUR = [0] * 6


def san(sa: int, length: int = 0, immed: bool = False, ause: bool = False) -> bytes:
    return bytes([0x48, sa | (0x80 if immed else 0) | (0x20 if ause else 0), 0, 0, 0, 0, 0,
                  *length.to_bytes(2, "big"), 0])


def overwrite_params(pattern: bytes, count: int = 1, invert: bool = False) -> bytes:
    return bytes([count | (0x80 if invert else 0), 0]) + struct.pack(">H", len(pattern)) + pattern


def read(h: Harness, lba: int, n: int = 1) -> bytes:
    r = h.run(cdb10(0x28, lba, n))
    assert r.status == Status.GOOD, r.sense
    return bytes(r.data)


def finish(h: Harness) -> None:
    op = h.lu.sanitizing
    if op is not None and op.task is not None:
        h.loop.run_until_complete(op.task)


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sanitize, "OVERWRITE_RATE", 0)


def test_overwrite_fills_every_block_with_the_pattern(h: Harness) -> None:
    h.run(cdb10(0x2A, 0, 1), b"a" * BS)
    params = overwrite_params(b"\x12\x34\x56")
    assert h.run(san(OVERWRITE, len(params)), params).status == Status.GOOD
    block = (b"\x12\x34\x56" * BS)[:BS]
    assert read(h, 0) == block and read(h, BLOCKS - 1) == block
    assert h.lu.sanitizing is None and h.run(TUR).status == Status.GOOD


def test_overwrite_with_invert_and_two_passes_ends_inverted(h: Harness) -> None:
    params = overwrite_params(b"\x0f" * BS, count=2, invert=True)
    assert h.run(san(OVERWRITE, len(params)), params).status == Status.GOOD
    assert read(h, 7) == b"\xf0" * BS


@pytest.mark.parametrize("length", [0, 1, 2, 3, 4, BS + 5])
def test_overwrite_parameter_list_length(h: Harness, length: int) -> None:
    params = overwrite_params(b"\xaa" * BS) + bytes(8)
    assert h.sense(san(OVERWRITE, length), params[:length]) == INVALID_FIELD


@pytest.mark.parametrize("params", [
    overwrite_params(b"\xaa" * BS, count=0),  # OVERWRITE COUNT 0
    b"\x01\x00\x00\x00" + b"\xaa" * BS,  # INITIALIZATION PATTERN LENGTH 0
    b"\x01\x00" + struct.pack(">H", BS + 4) + b"\xaa" * BS,  # longer than a block
    b"\x01\x00" + struct.pack(">H", 8) + b"\xaa" * 4,  # longer than the list
    b"\x21\x00" + struct.pack(">H", 4) + b"\xaa" * 4,  # TEST field set
])
def test_overwrite_bad_parameters(h: Harness, params: bytes) -> None:
    assert h.sense(san(OVERWRITE, len(params)), params) == INVALID_PARAM
    assert h.lu.sanitizing is None


@pytest.mark.parametrize("byte", [1, 2, 3, 4, 5, 6])
def test_reserved_cdb_fields(h: Harness, byte: int) -> None:
    params = overwrite_params(b"\xaa" * 4)
    cdb = bytearray(san(OVERWRITE, len(params)))
    cdb[byte] |= 0x40
    assert h.sense(bytes(cdb), params) == INVALID_FIELD


@pytest.mark.parametrize("sa", [0x00, 0x04, 0x10, 0x1E])
def test_invalid_service_action(h: Harness, sa: int) -> None:
    assert h.sense(san(sa)) == INVALID_FIELD


@pytest.mark.parametrize("sa", [BLOCK_ERASE, CRYPTO_ERASE, EXIT_FAILURE_MODE])
def test_only_overwrite_takes_a_parameter_list(h: Harness, sa: int) -> None:
    h.lu.update_params({"thin_provisioning": "1"})
    assert h.sense(san(sa, 8), bytes(8)) == INVALID_FIELD


def rsoc_all(h: Harness) -> set[tuple[int, int]]:
    d = bytes(h.run([0xA3, 0x0C, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0]).data)
    out, pos = set(), 4
    while pos < len(d):
        op, sa, flags = d[pos], struct.unpack_from(">H", d, pos + 2)[0], d[pos + 5]
        out.add((op, sa if flags & 0x01 else -1))
        pos += 8 + (12 if flags & 0x02 else 0)
    return out


def test_erase_only_on_thin_lus_and_rsoc_says_so(h: Harness) -> None:
    assert {(0x48, OVERWRITE), (0x48, EXIT_FAILURE_MODE)} <= rsoc_all(h)
    assert (0x48, BLOCK_ERASE) not in rsoc_all(h) and (0x48, CRYPTO_ERASE) not in rsoc_all(h)
    assert h.sense(san(BLOCK_ERASE)) == INVALID_FIELD
    one = [0xA3, 0x0C, 0x02, 0x48, 0, BLOCK_ERASE, 0, 0, 0, 64, 0, 0]
    assert bytes(h.run(one).data)[1] & 0x07 == 0x01  # not supported
    assert bytes(h.run(bytes([0x12, 1, 0xB1, 0, 64, 0])).data)[7] == 0  # WABEREQ/WACEREQ 0
    h.lu.update_params({"thin_provisioning": "1"})
    assert {(0x48, BLOCK_ERASE), (0x48, CRYPTO_ERASE)} <= rsoc_all(h)
    assert bytes(h.run(one).data)[1] & 0x07 == 0x03
    assert bytes(h.run(bytes([0x12, 1, 0xB1, 0, 64, 0])).data)[7] == 0x50


@pytest.mark.parametrize("sa", [BLOCK_ERASE, CRYPTO_ERASE])
def test_erase_deallocates_everything(h: Harness, sa: int) -> None:
    h.lu.update_params({"thin_provisioning": "1"})
    h.run(cdb10(0x2A, 0, 1), b"a" * BS)
    h.run(cdb10(0x2A, BLOCKS - 1, 1), b"a" * BS)
    assert h.run(san(sa)).status == Status.GOOD
    assert read(h, 0) == bytes(BS) and read(h, BLOCKS - 1) == bytes(BS)


def test_in_progress_refuses_all_but_inquiry_report_luns_request_sense(
        h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sanitize, "OVERWRITE_RATE", 4 * BLOCKS * BS)  # about 1/4 s
    other = h.new_nexus("n2")
    params = overwrite_params(b"\x55")
    assert h.run(san(OVERWRITE, len(params), immed=True), params).status == Status.GOOD
    assert h.lu.sanitizing is not None
    assert h.sense(TUR) == IN_PROGRESS
    assert h.sense(cdb10(0x28, 0, 1)) == IN_PROGRESS
    assert h.sense([0x1B, 1, 0, 0, 0x02, 0]) == IN_PROGRESS  # START STOP UNIT
    assert h.sense(san(OVERWRITE, len(params)), params) == IN_PROGRESS
    assert h.run([0x12, 0, 0, 0, 96, 0]).status == Status.GOOD
    assert h.run([0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]).status == Status.GOOD
    sense = bytes(h.run([0x03, 0, 0, 0, 18, 0]).data)  # REQUEST SENSE: progress indication
    assert (sense[2], sense[12], sense[13], sense[15] & 0x80) == (0x02, 0x04, 0x1B, 0x80)
    assert h.sense(TUR, nexus=other) == IN_PROGRESS
    h.tmf(tmf.Function.LOGICAL_UNIT_RESET, 1 << 48)  # resets do not stop a sanitize (SBC-4 4.11)
    h.tmf(tmf.Function.TARGET_COLD_RESET)
    assert h.sense(TUR) == (0x06, 0x29, 0x01)
    assert h.sense(TUR) == IN_PROGRESS
    finish(h)
    assert h.run(TUR).status == Status.GOOD
    assert read(h, BLOCKS - 1) == b"\x55" * BS


def test_reservation_conflict(h: Harness) -> None:
    other = h.new_nexus("n2")
    assert h.run([0x16, 0, 0, 0, 0, 0], nexus=other).status == Status.GOOD  # RESERVE(6)
    params = overwrite_params(b"\xaa")
    assert h.run(san(OVERWRITE, len(params)), params).status == Status.RESERVATION_CONFLICT
    assert h.run(san(EXIT_FAILURE_MODE)).status == Status.RESERVATION_CONFLICT
    assert h.lu.sanitizing is None


def test_write_protected(h: Harness) -> None:
    h.lu.update_params({"swp": "1"})
    params = overwrite_params(b"\xaa")
    assert h.sense(san(OVERWRITE, len(params)), params) == (0x07, 0x27, 0x00)


def broken_store(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    async def fail(offset: int, data: object) -> None:
        raise StoreIOError(errno.EIO)

    monkeypatch.setattr(h.store, "write", fail)


def test_failure_mode_until_a_sanitize_succeeds(h: Harness,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    params = overwrite_params(b"\xaa")
    with monkeypatch.context() as m:
        broken_store(h, m)
        assert h.sense(san(OVERWRITE, len(params)), params) == FAILED
    assert h.sense(cdb10(0x28, 0, 1)) == FAILED
    assert bytes(h.run([0x03, 0, 0, 0, 18, 0]).data)[2] == 0x03
    assert h.run([0x12, 0, 0, 0, 96, 0]).status == Status.GOOD
    assert h.sense(san(EXIT_FAILURE_MODE)) == INVALID_FIELD  # the failed one had no AUSE
    assert h.run(san(OVERWRITE, len(params)), params).status == Status.GOOD
    assert read(h, 0) == b"\xaa" * BS


def test_exit_failure_mode_after_a_failure_with_ause(h: Harness,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    params = overwrite_params(b"\xaa")
    with monkeypatch.context() as m:
        broken_store(h, m)
        r = h.run(san(OVERWRITE, len(params), immed=True, ause=True), params)
        assert r.status == Status.GOOD
        op = h.lu.sanitizing
        assert op is not None and op.task is not None
        h.loop.run_until_complete(_settle(op.task))
    assert h.sense(TUR) == FAILED
    assert h.run(san(EXIT_FAILURE_MODE)).status == Status.GOOD
    assert h.run(TUR).status == Status.GOOD and h.lu.sanitizing is None


async def _settle(fut: asyncio.Future[None]) -> None:
    await asyncio.wait([fut])


def test_exit_failure_mode_without_a_failure_is_harmless(h: Harness) -> None:
    assert h.run(san(EXIT_FAILURE_MODE)).status == Status.GOOD


def test_swp_is_changeable_by_mode_select(h: Harness) -> None:
    changeable = bytes(h.run([0x1A, 0x08, 0x4A, 0, 255, 0]).data)
    assert changeable[4 + 4] & 0x08  # control page byte 4: SWP
    page = bytearray(bytes(h.run([0x1A, 0x08, 0x0A, 0, 255, 0]).data)[4:])
    page[4] |= 0x08
    assert h.run([0x15, 0x10, 0, 0, 4 + len(page), 0], bytes(4) + bytes(page)).status == 0
    assert h.lu.write_protected
    assert h.sense(cdb10(0x2A, 0, 1), bytes(BS)) == (0x07, 0x27, 0x00)
    h.tmf(tmf.Function.LOGICAL_UNIT_RESET, 1 << 48)
    assert not h.lu.write_protected


def test_unmap_listed_only_when_thin(h: Harness) -> None:
    assert (0x42, -1) not in rsoc_all(h)
    assert h.sense([0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], bytes(24)) == (0x05, 0x20, 0x00)
    h.lu.update_params({"thin_provisioning": "1"})
    assert (0x42, -1) in rsoc_all(h)
