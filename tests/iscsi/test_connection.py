"""TargetConnection driven in memory with hand-built PDUs: login, discovery, NOP,
a SCSI command, logout (RFC 7143 6, 11)."""

from __future__ import annotations

from typing import Any

import pytest

from pytgt.iscsi.connection import TargetConnection
from pytgt.iscsi.constants import RESERVED_TAG, LoginStatus, RejectReason, TmfFunction
from pytgt.iscsi.events import (
    CommandReady,
    ConnectionClosed,
    SessionEnded,
    SessionStarted,
    TaskManagement,
)
from pytgt.iscsi.framer import Framer
from pytgt.iscsi.pdu import (
    R2T,
    DataIn,
    DataOut,
    LoginRequest,
    LoginResponse,
    LogoutRequest,
    LogoutResponse,
    NopIn,
    NopOut,
    Reject,
    ScsiCommand,
    ScsiResponse,
    TaskMgmtRequest,
    TaskMgmtResponse,
    TextRequest,
    TextResponse,
    decode_pdu,
)
from pytgt.iscsi.session import SessionTable
from pytgt.iscsi.text import decode_text, encode_text

from .test_login import INAME, ISID, TNAME, FakePolicy, FakeTarget

ADDRESS = "127.0.0.1"


class Policy(FakePolicy):
    """FakePolicy plus the discovery answer the connection asks for."""

    def send_targets(self, initiator_name: str, address: str, value: str,
                     session_type: str, local_address: str = "") -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for t in self.targets.values():
            if value in ("All", t.name) and initiator_name in t.acl:
                out += [("TargetName", t.name), ("TargetAddress", "127.0.0.1:3260,1")]
        return out


class Peer:
    """The initiator's end of the wire: frames PDUs in, decodes PDUs out."""

    def __init__(self, *targets: FakeTarget) -> None:
        self.sessions = SessionTable()
        self.policy = Policy(*(targets or (FakeTarget(TNAME),)))
        self.conn = TargetConnection(self.policy, self.sessions, ADDRESS)
        self.tx = Framer()
        self.rx = Framer(1 << 24)

    def send(self, pdu: Any) -> list[Any]:
        """Send one PDU; return the events it caused."""
        self.conn.receive_data(b"".join(bytes(b) for b in self.tx.frame(pdu.encode(), pdu.data)))
        return self.events()

    def events(self) -> list[Any]:
        out = []
        while (ev := self.conn.next_event()) is not None:
            out.append(ev)
        return out

    def recv(self) -> list[Any]:
        """The PDUs the target sent since the last call, decoded."""
        for buf in self.conn.data_to_send():
            self.rx.receive_data(buf)
        out = []
        while (frame := self.rx.next_frame()) is not None:
            out.append(decode_pdu(frame.bhs, frame.data, frame.ahs))
        return out

    def digests(self, header: bool, data: bool) -> None:
        for f in (self.tx, self.rx):
            f.header_digest, f.data_digest = header, data


FIRST = [("InitiatorName", INAME), ("TargetName", TNAME), ("SessionType", "Normal"),
         ("AuthMethod", "None")]
OPS = [("HeaderDigest", "None"), ("DataDigest", "None"), ("MaxRecvDataSegmentLength", "8192"),
       ("ImmediateData", "Yes"), ("InitialR2T", "Yes"), ("MaxBurstLength", "262144"),
       ("FirstBurstLength", "65536")]


def login(peer: Peer, first: list[tuple[str, str]] = FIRST,
          ops: list[tuple[str, str]] = OPS) -> tuple[LoginResponse, list[Any]]:
    assert peer.send(LoginRequest(1, ISID, 0, 0, 5, 100, True, False, 0, 1,
                                  data=encode_text(first))) == []
    (rsp1,) = peer.recv()
    assert isinstance(rsp1, LoginResponse)
    assert (rsp1.status_class, rsp1.transit, rsp1.csg, rsp1.nsg) == (0, True, 0, 1)
    assert rsp1.stat_sn == 100 and rsp1.itt == 1 and rsp1.isid == ISID
    events = peer.send(LoginRequest(1, ISID, 0, 0, 5, 101, True, False, 1, 3,
                                    data=encode_text(ops)))
    (rsp2,) = peer.recv()
    assert isinstance(rsp2, LoginResponse)
    return rsp2, events


@pytest.fixture
def peer() -> Peer:
    p = Peer()
    rsp, events = login(p)
    assert (rsp.status_class, rsp.status_detail, rsp.transit, rsp.csg, rsp.nsg) == (0, 0, True,
                                                                                     1, 3)
    assert rsp.stat_sn == 101 and rsp.tsih != 0
    assert (rsp.exp_cmd_sn, rsp.max_cmd_sn) == (5, 5 + 127)
    assert [type(e) for e in events] == [SessionStarted]
    return p


def test_login_to_full_feature(peer: Peer) -> None:
    conn = peer.conn
    assert conn.full_feature and conn.session is not None
    s = conn.session
    assert (s.initiator_name, s.target_name, s.session_type) == (INAME, TNAME, "Normal")
    assert conn.framer.max_data_segment_length == 262144  # our declaration
    assert conn.limits.max_xmit_data_segment_length == 8192  # the initiator's
    assert s.params is not None and s.params.max_recv_data_segment_length == 262144


def test_login_response_text() -> None:
    p = Peer(FakeTarget(TNAME, alias="disk one"))
    p.send(LoginRequest(1, ISID, 0, 0, 5, 100, True, False, 0, 1, data=encode_text(FIRST)))
    (rsp,) = p.recv()
    assert decode_text(rsp.data) == [("AuthMethod", "None"), ("TargetAlias", "disk one"),
                                     ("TargetPortalGroupTag", "1")]


@pytest.mark.parametrize(("first", "status"), [
    ([("InitiatorName", INAME), ("TargetName", "iqn.nope")], LoginStatus.NOT_FOUND),
    ([("TargetName", TNAME)], LoginStatus.MISSING_PARAMETER),
    ([("InitiatorName", "iqn.stranger"), ("TargetName", TNAME)],
     LoginStatus.AUTHORIZATION_FAILURE),
])
def test_login_failure_closes(first: list[tuple[str, str]], status: LoginStatus) -> None:
    p = Peer()
    events = p.send(LoginRequest(7, ISID, 0, 0, 5, 100, True, False, 0, 1,
                                 data=encode_text(first)))
    (rsp,) = p.recv()
    assert isinstance(rsp, LoginResponse)
    assert (rsp.status_class << 8 | rsp.status_detail) == status
    assert (rsp.transit, rsp.data, rsp.itt, rsp.tsih) == (False, b"", 7, 0)
    assert [type(e) for e in events] == [ConnectionClosed]
    assert p.conn.closed and not p.sessions.sessions


def test_unsupported_version_closes() -> None:
    p = Peer()
    p.send(LoginRequest(7, ISID, 0, 0, 5, 100, True, False, 0, 1, version_min=2,
                        data=encode_text(FIRST)))
    (rsp,) = p.recv()
    assert (rsp.status_class, rsp.status_detail) == (2, 5)
    assert p.conn.closed


def test_other_pdu_during_login_drops() -> None:
    p = Peer()
    events = p.send(NopOut(1, data=b"x"))
    assert p.recv() == [] and [type(e) for e in events] == [ConnectionClosed]


def test_login_continuation_through_the_connection() -> None:
    p = Peer()
    body = encode_text(FIRST)
    p.send(LoginRequest(1, ISID, 0, 0, 5, 100, False, True, 0, 0, data=body[:20]))
    (ack,) = p.recv()
    assert (ack.status_class, ack.cont, ack.transit, ack.data) == (0, False, False, b"")
    p.send(LoginRequest(1, ISID, 0, 0, 5, 101, True, False, 0, 3, data=body[20:]))
    (rsp,) = p.recv()
    assert rsp.transit and rsp.nsg == 3 and p.conn.full_feature


def test_digests_apply_after_login() -> None:
    p = Peer()
    ops = [("HeaderDigest", "CRC32C"), ("DataDigest", "CRC32C,None")]
    rsp, events = login(p, ops=ops)
    assert ("HeaderDigest", "CRC32C") in decode_text(rsp.data)
    assert p.conn.framer.header_digest and p.conn.framer.data_digest
    p.digests(True, True)
    p.send(NopOut(0x42, RESERVED_TAG, 5, 102, data=b"ping"))
    (nop,) = p.recv()
    assert isinstance(nop, NopIn) and bytes(nop.data) == b"ping"


def test_discovery_send_targets() -> None:
    p = Peer(FakeTarget(TNAME), FakeTarget("iqn.2026-01.org.example:hidden", acl=set()))
    first = [("InitiatorName", INAME), ("SessionType", "Discovery"), ("AuthMethod", "None")]
    rsp, events = login(p, first=first, ops=[("MaxRecvDataSegmentLength", "8192"),
                                             ("MaxBurstLength", "4096")])
    assert rsp.transit and rsp.nsg == 3
    assert decode_text(rsp.data) == [("MaxBurstLength", "Irrelevant"),
                                     ("MaxRecvDataSegmentLength", "262144")]
    assert [type(e) for e in events] == [SessionStarted]
    assert events[0].session.session_type == "Discovery"
    p.send(TextRequest(0x20, RESERVED_TAG, 5, 102, data=encode_text([("SendTargets", "All")])))
    (text,) = p.recv()
    assert isinstance(text, TextResponse) and text.final and text.itt == 0x20
    assert decode_text(text.data) == [("TargetName", TNAME),
                                      ("TargetAddress", "127.0.0.1:3260,1")]
    assert text.stat_sn == 102 and text.exp_cmd_sn == 6
    # discovery sessions carry no SCSI commands (11.3 via 4.3)
    p.send(ScsiCommand(0x21, bytes(6), cmd_sn=6))
    (reject,) = p.recv()
    assert reject.opcode == 0x3F


def test_text_unknown_and_known_keys(peer: Peer) -> None:
    peer.send(TextRequest(0x30, RESERVED_TAG, 5, 102, data=encode_text(
        [("X-com.example.Foo", "1"), ("Bogus", "2"), ("HeaderDigest", "CRC32C")])))
    (text,) = peer.recv()
    assert decode_text(text.data) == [("X-com.example.Foo", "NotUnderstood"),
                                      ("Bogus", "NotUnderstood"), ("HeaderDigest", "Reject")]


def test_nop_ping(peer: Peer) -> None:
    peer.send(NopOut(0x42, RESERVED_TAG, 5, 102, lun=0, immediate=True, data=b"hello"))
    (nop,) = peer.recv()
    assert isinstance(nop, NopIn)
    assert (nop.itt, nop.ttt, nop.stat_sn, bytes(nop.data)) == (0x42, RESERVED_TAG, 102,
                                                                b"hello")
    assert (nop.exp_cmd_sn, nop.max_cmd_sn) == (5, 5 + 127)


def test_scsi_read_command(peer: Peer) -> None:
    cdb = bytes([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0])  # READ(10), one block
    events = peer.send(ScsiCommand(0x50, cdb, lun=0, expected_data_transfer_length=512,
                                   cmd_sn=5, exp_stat_sn=102, read=True))
    assert [type(e) for e in events] == [CommandReady]
    task = events[0].task
    assert task.command.cdb[:10] == cdb and task.itt == 0x50
    peer.conn.complete_command(task, 0, b"\xab" * 512)
    (data_in,) = peer.recv()
    assert isinstance(data_in, DataIn)
    assert data_in.final and data_in.status_present and data_in.status == 0
    assert bytes(data_in.data) == b"\xab" * 512 and data_in.stat_sn == 102
    assert data_in.exp_cmd_sn == 6


@pytest.mark.parametrize(("read", "write", "data", "write_length"), [
    (False, False, b"\xab" * 512, None),  # READ(10) without the R bit (Linux: EDTL 0)
    (False, False, b"", 512),  # WRITE(10) without the W bit
    (False, True, b"\xab" * 512, 0),  # READ(10) flagged as a write
])
def test_no_data_in_without_the_r_bit(peer: Peer, read: bool, write: bool, data: bytes,
                                      write_length: int | None) -> None:
    """RFC 7143 11.4.5.1: Data-In goes only to a command with the R bit; what a command
    without R or W would have moved is a residual overflow (the Linux initiator fails
    the connection on a Data-In it did not ask for)."""
    cdb = bytes([0x28 if data else 0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0])
    events = peer.send(ScsiCommand(0x52, cdb, expected_data_transfer_length=512 if write
                                   else 0, cmd_sn=5, exp_stat_sn=102, read=read, write=write,
                                   data=b"\1" * 512 if write else b""))
    (ready,) = events
    peer.conn.complete_command(ready.task, 0, data, write_length=write_length)
    (rsp,) = peer.recv()
    assert isinstance(rsp, ScsiResponse), rsp
    if write:
        assert (rsp.underflow, rsp.residual_count) == (True, 512)
    else:
        assert (rsp.overflow, rsp.residual_count) == (True, 512)


def test_scsi_write_with_immediate_data_and_r2t(peer: Peer) -> None:
    cdb = bytes([0x2A, 0, 0, 0, 0, 0, 0, 0, 2, 0])  # WRITE(10), two blocks
    events = peer.send(ScsiCommand(0x51, cdb, expected_data_transfer_length=1024, cmd_sn=5,
                                   write=True, data=b"\1" * 512))
    assert events == []
    (r2t,) = peer.recv()
    assert isinstance(r2t, R2T)
    assert (r2t.itt, r2t.buffer_offset, r2t.desired_data_transfer_length) == (0x51, 512, 512)
    events = peer.send(DataOut(0x51, r2t.ttt, 0, 512, b"\2" * 512, final=True))
    assert [type(e) for e in events] == [CommandReady]
    assert bytes(events[0].task.data_out_buffer()) == b"\1" * 512 + b"\2" * 512
    peer.conn.complete_command(events[0].task, 0)
    (rsp,) = peer.recv()
    assert isinstance(rsp, ScsiResponse) and rsp.status == 0 and rsp.itt == 0x51


@pytest.mark.parametrize("function", [TmfFunction.ABORT_TASK, TmfFunction.ABORT_TASK_SET,
                                      TmfFunction.LOGICAL_UNIT_RESET])
def test_data_out_for_an_aborted_write_is_dropped_quietly(peer: Peer, function: int) -> None:
    """The initiator may still be sending a write's Data-Out when the TMF aborts it: those
    PDUs are dropped (no Reject, connection kept); an ITT never seen is still rejected."""
    cdb = bytes([0x2A, 0, 0, 0, 0, 0, 0, 0, 2, 0])  # WRITE(10), two blocks
    assert peer.send(ScsiCommand(0x51, cdb, expected_data_transfer_length=1024, cmd_sn=5,
                                 write=True, data=b"\1" * 512)) == []
    (r2t,) = peer.recv()
    assert isinstance(r2t, R2T)
    (tmf,) = peer.send(TaskMgmtRequest(0x70, function, referenced_task_tag=0x51, cmd_sn=6,
                                       exp_stat_sn=102, ref_cmd_sn=5))
    assert isinstance(tmf, TaskManagement) and [t.itt for t in tmf.aborted] == [0x51]
    peer.conn.complete_tmf(tmf.itt, 0)
    (rsp,) = peer.recv()
    assert isinstance(rsp, TaskMgmtResponse) and rsp.response == 0
    assert peer.send(DataOut(0x51, r2t.ttt, 0, 512, b"\2" * 512, final=True)) == []
    assert peer.recv() == [] and not peer.conn.closed
    peer.send(DataOut(0x99, r2t.ttt, 0, 512, b"\2" * 512, final=True))
    (reject,) = peer.recv()
    assert isinstance(reject, Reject) and reject.reason == RejectReason.INVALID_PDU_FIELD
    peer.send(NopOut(0x42, RESERVED_TAG, 6, 103, immediate=True, data=b"ok"))
    (nop,) = peer.recv()
    assert isinstance(nop, NopIn) and bytes(nop.data) == b"ok"


def test_aborted_itts_are_remembered_within_a_bound(peer: Peer) -> None:
    cdb = bytes([0x2A, 0, 0, 0, 0, 0, 0, 0, 2, 0])
    for i in range(300):
        peer.send(ScsiCommand(0x1000 + i, cdb, expected_data_transfer_length=1024,
                              cmd_sn=5 + i, write=True, data=b"\1" * 512))
        peer.send(TaskMgmtRequest(0x70, TmfFunction.ABORT_TASK, referenced_task_tag=0x1000 + i,
                                  cmd_sn=6 + i, ref_cmd_sn=5 + i))
    assert len(peer.conn._aborted_itts) == 256
    assert 0x1000 not in peer.conn._aborted_itts and 0x1000 + 299 in peer.conn._aborted_itts


def test_logout(peer: Peer) -> None:
    events = peer.send(LogoutRequest(0x60, 0, 0, 5, 102))
    (rsp,) = peer.recv()
    assert isinstance(rsp, LogoutResponse)
    assert (rsp.itt, rsp.response, rsp.stat_sn, rsp.time2wait, rsp.time2retain) == (
        0x60, 0, 102, 2, 20)
    assert [type(e) for e in events] == [SessionEnded, ConnectionClosed]
    assert peer.conn.closed and not peer.sessions.sessions


def test_session_reinstatement() -> None:
    p1 = Peer()
    login(p1)
    old = p1.conn.session
    p2 = Peer()
    p2.sessions = p1.sessions
    p2.conn = TargetConnection(p2.policy, p1.sessions, ADDRESS)
    rsp, events = login(p2)
    assert rsp.transit and [type(e) for e in events] == [SessionStarted]
    assert events[0].reinstated is old and events[0].new_session
    assert rsp.tsih != old.tsih  # type: ignore[union-attr]


def test_text_declaration_in_full_feature(peer: Peer) -> None:
    peer.send(TextRequest(0x31, RESERVED_TAG, 5, 102, data=encode_text(
        [("MaxRecvDataSegmentLength", "4096"), ("InitiatorAlias", "h"),
         ("MaxRecvDataSegmentLength2", "1")])))
    (text,) = peer.recv()
    assert decode_text(text.data) == [("MaxRecvDataSegmentLength2", "NotUnderstood")]
    assert peer.conn.limits.max_xmit_data_segment_length == 4096
    peer.send(TextRequest(0x32, RESERVED_TAG, 6, 103, data=encode_text(
        [("MaxRecvDataSegmentLength", "100")])))
    (text,) = peer.recv()
    assert decode_text(text.data) == [("MaxRecvDataSegmentLength", "Reject")]
    assert peer.conn.limits.max_xmit_data_segment_length == 4096


def test_joining_connection_keeps_session_values() -> None:
    p1 = Peer()
    login(p1, ops=[*OPS[:5], ("MaxBurstLength", "16384")])
    session = p1.conn.session
    assert session is not None and session.params.max_burst_length == 16384
    session.params.max_connections = 2  # as if negotiated
    conn2 = TargetConnection(p1.policy, p1.sessions, ADDRESS)
    p2 = Peer()
    p2.conn, p2.sessions = conn2, p1.sessions
    first = [("InitiatorName", INAME), ("TargetName", TNAME), ("AuthMethod", "None")]
    p2.send(LoginRequest(1, ISID, session.tsih, 1, 5, 0, True, False, 0, 1,
                         data=encode_text(first)))
    (rsp,) = p2.recv()
    assert rsp.status_class == 0
    events = p2.send(LoginRequest(1, ISID, session.tsih, 1, 5, 0, True, False, 1, 3,
                                  data=encode_text([("MaxRecvDataSegmentLength", "4096")])))
    (rsp,) = p2.recv()
    assert (rsp.status_class, rsp.tsih) == (0, session.tsih)
    assert [type(e) for e in events] == [SessionStarted] and not events[0].new_session
    assert conn2.limits.max_burst_length == 16384  # the session's, not the default
    assert conn2.limits.max_xmit_data_segment_length == 4096  # this connection's own
    assert set(session.connections) == {0, 1}


def test_joining_unknown_session_fails() -> None:
    p = Peer()
    first = [("InitiatorName", INAME), ("TargetName", TNAME), ("AuthMethod", "None")]
    p.send(LoginRequest(1, ISID, 0x77, 1, 5, 0, True, False, 0, 3, data=encode_text(first)))
    (rsp,) = p.recv()
    assert (rsp.status_class, rsp.status_detail) == (2, 0x0A)
    assert p.conn.closed


# -- paired in memory with the project's initiator core (aioquic-style) -------------

def roundtrip(initiator: Any, target: TargetConnection, rounds: int = 20) -> tuple[
        list[Any], list[Any]]:
    """Move bytes both ways until both sides are quiet; return both sides' events."""
    ievents: list[Any] = []
    tevents: list[Any] = []
    for _ in range(rounds):
        moved = False
        for buf in initiator.data_to_send():
            target.receive_data(bytes(buf))
            moved = True
        while (ev := target.next_event()) is not None:
            tevents.append(ev)
        for buf in target.data_to_send():
            initiator.receive_data(bytes(buf))
            moved = True
        while (ev := initiator.next_event()) is not None:
            ievents.append(ev)
        if not moved:
            return ievents, tevents
    raise AssertionError("no quiet point")


def pair(target: FakeTarget | None = None, **options: Any) -> tuple[Any, TargetConnection,
                                                                    list[Any], list[Any]]:
    from pytgt.initiator.core import InitiatorConnection
    from pytgt.initiator.options import InitiatorOptions

    opts = InitiatorOptions(initiator_name=INAME, **{"target_name": TNAME, **options})
    initiator = InitiatorConnection(opts)
    conn = TargetConnection(Policy(target or FakeTarget(TNAME)), SessionTable(), ADDRESS)
    initiator.start_login()
    ievents, tevents = roundtrip(initiator, conn)
    return initiator, conn, ievents, tevents


@pytest.mark.parametrize("options", [
    {}, {"header_digest": True, "data_digest": True},
    {"immediate_data": False, "max_burst_length": 65536, "max_recv_data_segment_length": 4096},
])
def test_pair_login(options: dict[str, Any]) -> None:
    from pytgt.initiator.events import LoginComplete

    initiator, conn, ievents, tevents = pair(**options)
    assert [type(e) for e in ievents] == [LoginComplete], ievents
    assert [type(e) for e in tevents] == [SessionStarted]
    got, ours = ievents[0].negotiated, conn._login.negotiated
    for attr in ("header_digest", "data_digest", "immediate_data", "initial_r2t",
                 "max_burst_length", "first_burst_length", "max_outstanding_r2t",
                 "error_recovery_level", "default_time2wait", "default_time2retain"):
        assert getattr(got, attr) == getattr(ours, attr), attr
    assert got.max_xmit_data_segment_length == ours.max_recv_data_segment_length
    assert got.max_recv_data_segment_length == ours.max_xmit_data_segment_length
    nop = initiator.send_nop(b"abc")
    ievents, _ = roundtrip(initiator, conn)
    assert [(e.itt, e.data) for e in ievents] == [(nop, b"abc")]


@pytest.mark.parametrize("algorithms", [(5,), (7, 5), (8,), (6,)])
def test_pair_chap(algorithms: tuple[int, ...]) -> None:
    from pytgt.initiator.events import LoginComplete

    target = FakeTarget(TNAME, accounts={"alice": "alice-secret-12"})
    _, _, ievents, tevents = pair(target, chap=("alice", "alice-secret-12"),
                                  chap_algorithms=algorithms)
    assert [type(e) for e in ievents] == [LoginComplete], ievents
    assert [type(e) for e in tevents] == [SessionStarted]


def test_pair_mutual_chap() -> None:
    from pytgt.initiator.events import LoginComplete

    target = FakeTarget(TNAME, accounts={"alice": "alice-secret-12"},
                        mutual=("tgt", "target-secret-34"))
    _, _, ievents, _ = pair(target, chap=("alice", "alice-secret-12"),
                            mutual_chap=("tgt", "target-secret-34"))
    assert [type(e) for e in ievents] == [LoginComplete], ievents


def test_pair_chap_wrong_secret() -> None:
    from pytgt.initiator.events import RequestFailed

    target = FakeTarget(TNAME, accounts={"alice": "alice-secret-12"})
    _, conn, ievents, tevents = pair(target, chap=("alice", "wrong-secret-99"))
    assert isinstance(ievents[0], RequestFailed)
    assert conn.closed and [type(e) for e in tevents] == [ConnectionClosed]


def test_pair_discovery() -> None:
    from pytgt.initiator.events import LoginComplete, TextComplete

    initiator, conn, ievents, _ = pair(target_name=None)
    assert [type(e) for e in ievents] == [LoginComplete]
    itt = initiator.send_text([("SendTargets", "All")])
    ievents, _ = roundtrip(initiator, conn)
    assert [type(e) for e in ievents] == [TextComplete]
    assert ievents[0].itt == itt


def test_login_response_bytes() -> None:
    """The first Login Response, byte for byte (11.13)."""
    p = Peer()
    p.send(LoginRequest(0x11223344, ISID, 0, 0, 5, 100, True, False, 0, 1,
                        data=encode_text(FIRST)))
    raw = b"".join(bytes(b) for b in p.conn.data_to_send())
    body = b"AuthMethod=None\0TargetPortalGroupTag=1\0"
    bhs = bytes.fromhex(
        "23"  # opcode: Login Response
        "81"  # T=1, CSG=0, NSG=1
        "0000"  # Version-max, Version-active
        "00" + f"{len(body):06x}" +  # TotalAHSLength, DataSegmentLength
        f"{ISID:012x}" "0000"  # ISID, TSIH
        "11223344" "00000000"  # ITT, reserved
        f"{100:08x}" f"{5:08x}" f"{5:08x}"  # StatSN, ExpCmdSN, MaxCmdSN
        "0000" "0000" + "00" * 8)  # Status-Class/Detail, reserved
    assert raw == bhs + body + bytes(-len(body) % 4)


def _feed(conn: TargetConnection, wire: bytes, piece: int) -> None:
    """The buffered-protocol way: into the views get_buffer() hands out, ``piece`` at a time."""
    while wire:
        buf = conn.get_buffer()
        n = min(len(buf), len(wire), piece)
        buf[:n] = wire[:n]
        conn.buffer_updated(n)
        wire = wire[n:]


def test_data_out_received_in_place_into_the_task_buffer(peer: Peer) -> None:
    cdb = bytes([0x2A, 0, 0, 0, 0, 0, 0, 0, 32, 0])  # WRITE(10), 32 blocks
    events = peer.send(ScsiCommand(0x52, cdb, expected_data_transfer_length=16384, cmd_sn=5,
                                   write=True, data=b"\1" * 512))
    (r2t,) = peer.recv()
    assert (r2t.buffer_offset, r2t.desired_data_transfer_length) == (512, 16384 - 512)
    payloads = [bytes([2 + i]) * 8192 for i in range(2)]
    for i, (off, data) in enumerate([(512, payloads[0]), (512 + 8192, payloads[1][:7680])]):
        pdu = DataOut(0x52, r2t.ttt, i, off, data, final=i == 1)
        wire = b"".join(bytes(b) for b in peer.tx.frame(pdu.encode(), pdu.data))
        _feed(peer.conn, wire[:48], 48)  # the header alone: the data goes to the task
        assert events == [] and peer.events() == []
        view = peer.conn.get_buffer()
        assert len(view) == len(data) and view.obj is peer.conn.tasks[0x52]._buf
        _feed(peer.conn, wire[48:], 1000)
        events = peer.events()
    assert [type(e) for e in events] == [CommandReady]
    assert bytes(events[0].task.data_out_buffer()) == (
        b"\1" * 512 + payloads[0] + payloads[1][:7680])


def test_data_out_outside_its_burst_is_not_received_in_place(peer: Peer) -> None:
    cdb = bytes([0x2A, 0, 0, 0, 0, 0, 0, 0, 32, 0])
    peer.send(ScsiCommand(0x53, cdb, expected_data_transfer_length=16384, cmd_sn=5,
                          write=True))
    (r2t,) = peer.recv()
    pdu = DataOut(0x53, r2t.ttt + 1, 0, 0, b"\5" * 8192)  # a TTT never sent
    wire = b"".join(bytes(b) for b in peer.tx.frame(pdu.encode(), pdu.data))
    _feed(peer.conn, wire[:48], 48)
    peer.events()
    assert peer.conn.get_buffer().obj is not peer.conn.tasks[0x53]._buf
