"""Inputs the fuzzers found, kept as exact regression tests (one per bug)."""

from __future__ import annotations

import pytest

from pytgt.iscsi.framer import Framer
from pytgt.iscsi.pdu import DataOut, NopOut


@pytest.mark.timeout(10)
def test_framer_receive_data_past_a_completed_own_segment() -> None:
    """fuzz_connection, stream s05 cut into 1..64-byte pieces: Framer.receive_data spun
    forever when one call carried the end of a big data segment (read into its own
    buffer) and the start of the next PDU: the full segment buffer offered 0 bytes."""
    big = DataOut(itt=1, ttt=2, data=bytes(20000), data_sn=0, buffer_offset=0, final=True)
    nop = NopOut(itt=3, cmd_sn=1, exp_stat_sn=1, immediate=True)
    stream = big.encode() + big.data + nop.encode()
    f = Framer(65536)
    f.receive_data(stream[:1000])
    assert f.next_frame() is None  # the segment now gets its own buffer
    f.receive_data(stream[1000:])  # rest of the segment + the NOP-Out header
    first, second = f.next_frame(), f.next_frame()
    assert first is not None and len(first.data) == 20000
    assert second is not None and second.bhs == nop.encode()
    assert f.next_frame() is None


def test_chap_a_with_a_non_ascii_digit_fails_the_login() -> None:
    """fuzz_chap: ``CHAP_A=²`` passed str.isdigit() and int() raised ValueError out of the
    login (the connection died without a Login Response, with a traceback in the log)."""
    from pytgt.iscsi.chap import ChapTarget
    from pytgt.iscsi.errors import LoginError

    with pytest.raises(LoginError):
        ChapTarget(lambda user: None).step({"CHAP_A": "\u00b2"})


def test_malformed_login_text_fails_the_initiators_login() -> None:
    """fuzz_initiator_login: a Login Response whose text has an empty pair made
    decode_text's ProtocolError escape InitiatorConnection.receive_data (the caller got
    an exception instead of RequestFailed and ConnectionClosed)."""
    from fuzz.targets import fuzz_initiator_login, login_responses
    from pytgt.initiator.errors import ProtocolViolation
    from pytgt.initiator.events import ConnectionClosed, RequestFailed

    data = b"\x00\x81\x00\x00\x10\x00uthMethod=None\x00"
    (rsp,) = login_responses(data[1:])
    assert rsp.data == b"\x00uthMethod=None\x00"  # an empty pair first
    fuzz_initiator_login(data)  # the invariant holds

    from pytgt.initiator.core import InitiatorConnection
    from pytgt.initiator.options import InitiatorOptions
    from pytgt.iscsi.framer import Framer

    conn = InitiatorConnection(InitiatorOptions(target_name="iqn.2026-11.org.pytgt:x"))
    conn.start_login()
    conn.receive_data(b"".join(bytes(b) for b in Framer(8192).frame(rsp.encode(), rsp.data)))
    failed, closed = conn.next_event(), conn.next_event()
    assert isinstance(failed, RequestFailed) and isinstance(failed.error, ProtocolViolation)
    assert isinstance(closed, ConnectionClosed) and conn.closed
