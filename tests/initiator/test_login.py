"""Initiator login against hand-built Login Responses (RFC 7143 6, 11.12, 11.13, 12.1.3)."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from pytgt.initiator.core import InitiatorConnection
from pytgt.initiator.errors import LoginFailed, NegotiationError, UsageError
from pytgt.initiator.events import CommandComplete, ConnectionClosed, LoginComplete, RequestFailed
from pytgt.initiator.options import InitiatorOptions
from pytgt.initiator.scsi import cdb_write16
from pytgt.iscsi.constants import RESERVED_TAG
from pytgt.iscsi.keys import (
    KEY_TABLE,
    MARKER_INTERVALS,
    SESSION_WIDE,
    Key,
    Rule,
    Sender,
    SessionParams,
    Use,
)
from pytgt.iscsi.login import TargetLogin
from pytgt.iscsi.pdu import R2T, LoginRequest, ScsiCommand, ScsiResponse
from pytgt.iscsi.text import decode_text, encode_text

from .test_pair import IQN as PAIR_IQN
from .test_pair import StubPolicy
from .util import IQN, Peer, logged_in, login_rsp, text


def start(**kw: object) -> tuple[InitiatorConnection, Peer, LoginRequest]:
    kw.setdefault("target_name", IQN)
    conn = InitiatorConnection(InitiatorOptions(**kw))  # type: ignore[arg-type]
    peer = Peer(conn)
    conn.start_login()
    (req,) = peer.sent()
    return conn, peer, req


def test_first_request_security_stage() -> None:
    conn, peer, req = start(initiator_name="iqn.x:i", isid=0x800000123400, cmd_sn=5)
    assert isinstance(req, LoginRequest)
    assert (req.csg, req.nsg, req.transit, req.cont) == (0, 1, True, False)
    assert (req.isid, req.tsih, req.cmd_sn, req.itt) == (0x800000123400, 0, 5, 0)
    assert text(req) == {"InitiatorName": "iqn.x:i", "SessionType": "Normal",
                         "TargetName": IQN, "AuthMethod": "None"}


def test_discovery_session_keys() -> None:
    conn, peer, req = start(target_name=None)
    assert text(req)["SessionType"] == "Discovery"
    assert "TargetName" not in text(req)
    peer.feed(login_rsp(req, [("AuthMethod", "None")]))
    (op,) = peer.sent()
    assert set(text(op)) == {"HeaderDigest", "DataDigest", "MaxRecvDataSegmentLength"}


def test_operational_negotiation_applies_answers() -> None:
    conn, peer, req = start(header_digest=True, immediate_data=True, initial_r2t=False,
                            max_burst_length=65536, first_burst_length=32768,
                            max_recv_data_segment_length=16384)
    assert peer.feed(login_rsp(req, [("AuthMethod", "None"), ("TargetPortalGroupTag", "1")])) == []
    (op,) = peer.sent()
    assert (op.csg, op.nsg, op.transit) == (1, 3, True)
    keys = text(op)
    assert keys["HeaderDigest"] == "CRC32C" and keys["DataDigest"] == "None"
    assert keys["InitialR2T"] == "No" and keys["ImmediateData"] == "Yes"
    assert keys["MaxRecvDataSegmentLength"] == "16384"
    answers = [("HeaderDigest", "CRC32C"), ("DataDigest", "None"), ("InitialR2T", "Yes"),
               ("ImmediateData", "No"), ("MaxBurstLength", "32768"),
               ("FirstBurstLength", "16384"), ("MaxRecvDataSegmentLength", "4096"),
               ("TargetAlias", "disk")]
    (ev,) = peer.feed(login_rsp(op, answers, nsg=3, stat_sn=1, tsih=9))
    assert isinstance(ev, LoginComplete) and ev.tsih == 9
    n = conn.negotiated
    assert n.header_digest and not n.data_digest and n.initial_r2t and not n.immediate_data
    assert (n.max_burst_length, n.first_burst_length) == (32768, 16384)
    assert (n.max_xmit_data_segment_length, n.max_recv_data_segment_length) == (4096, 16384)
    assert n.target_alias == "disk" and n.target_portal_group_tag == 1
    assert conn.full_feature and conn.exp_stat_sn == 2 and conn.framer.header_digest


def test_login_failure_status() -> None:
    conn, peer, req = start()
    events = peer.feed(login_rsp(req, [], transit=False, status=0x0203))
    assert isinstance(events[0], RequestFailed) and isinstance(events[0].error, LoginFailed)
    assert events[0].error.status == 0x0203
    assert (events[0].error.status_class, events[0].error.status_detail) == (2, 3)
    assert isinstance(events[-1], ConnectionClosed) and conn.closed


def test_redirect_reports_target_address() -> None:
    conn, peer, req = start()
    (ev, _) = peer.feed(login_rsp(req, [("TargetAddress", "10.0.0.1:3260,1")], transit=False,
                                  status=0x0101))
    assert ev.error.redirect == "10.0.0.1:3260,1"


def test_answer_out_of_rule_fails_login() -> None:
    conn, peer, req = start(max_burst_length=65536)
    peer.feed(login_rsp(req, [("AuthMethod", "None")]))
    (op,) = peer.sent()
    (ev, closed) = peer.feed(login_rsp(op, [("MaxBurstLength", "131072")], nsg=3))
    assert isinstance(ev.error, NegotiationError) and isinstance(closed, ConnectionClosed)


def test_target_offered_key_is_answered_then_login_completes() -> None:
    conn, peer, req = start(max_outstanding_r2t=4)
    peer.feed(login_rsp(req, [("AuthMethod", "None")]))
    (op,) = peer.sent()
    # The target answers nothing yet, offers a lower MaxOutstandingR2T... stays in stage 1
    assert peer.feed(login_rsp(op, [("MaxOutstandingR2T", "1"), ("X-vendor-key", "1"),
                                    ("OFMarker", "Yes")], transit=False)) == []
    (again,) = peer.sent()
    assert (again.csg, again.nsg, again.transit) == (1, 3, True)
    # unknown keys are not understood; OFMarker is answered by its rule (AND, ours No)
    assert text(again) == {"X-vendor-key": "NotUnderstood", "OFMarker": "No"}
    assert conn.negotiated.max_outstanding_r2t == 1
    (ev,) = peer.feed(login_rsp(again, [], nsg=3))
    assert isinstance(ev, LoginComplete)


def test_text_continuation_in_login() -> None:
    conn, peer, req = start()
    first = replace(login_rsp(req, [], transit=False), cont=True, data=b"AuthMe")
    assert peer.feed(first) == []
    (empty,) = peer.sent()
    assert empty.data == b"" and not empty.transit and empty.csg == 0
    rest = replace(login_rsp(req, [], transit=True), data=b"thod=None\0")
    assert peer.feed(rest) == []
    (op,) = peer.sent()
    assert op.csg == 1 and conn.login.peer_keys["AuthMethod"] == "None"


@pytest.mark.parametrize("mutual", [False, True])
def test_chap_md5(mutual: bool) -> None:
    conn, peer, req = start(chap=("alice", "secret-12345"),
                            mutual_chap=("tgt", "tsecret-1234") if mutual else None)
    assert text(req)["AuthMethod"] == "CHAP,None" and not req.transit
    peer.feed(login_rsp(req, [("AuthMethod", "CHAP")], transit=False))
    (a,) = peer.sent()
    assert text(a) == {"CHAP_A": "5"} and not a.transit
    challenge = bytes(range(16))
    peer.feed(login_rsp(req, [("CHAP_A", "5"), ("CHAP_I", "7"),
                              ("CHAP_C", "0x" + challenge.hex())], transit=False))
    (r,) = peer.sent()
    keys = text(r)
    assert keys["CHAP_N"] == "alice" and r.transit and r.nsg == 1
    want = hashlib.md5(bytes([7]) + b"secret-12345" + challenge).hexdigest()
    assert keys["CHAP_R"] == "0x" + want
    answer: list[tuple[str, str]] = []
    if mutual:
        ident, chal = int(keys["CHAP_I"]), bytes.fromhex(keys["CHAP_C"][2:])
        resp = hashlib.md5(bytes([ident]) + b"tsecret-1234" + chal).hexdigest()
        answer = [("CHAP_N", "tgt"), ("CHAP_R", "0x" + resp)]
    assert peer.feed(login_rsp(req, answer)) == []
    (op,) = peer.sent()
    assert op.csg == 1


@pytest.mark.parametrize(("challenge", "why"), [
    ([("CHAP_A", "5"), ("CHAP_I", "7"), ("CHAP_C", "0x")], "bad CHAP challenge"),  # empty
    ([("CHAP_A", "5"), ("CHAP_I", "7"), ("CHAP_C", "0bAB$$CD==")], "bad CHAP challenge"),
    ([("CHAP_A", "5"), ("CHAP_I", "7"), ("CHAP_C", "0x" + "ab" * 1025)], "bad CHAP challenge"),
    ([("CHAP_A", "5"), ("CHAP_I", "263"), ("CHAP_C", "0x" + "ab" * 16)], "bad CHAP challenge"),
    ([("CHAP_A", "7"), ("CHAP_I", "7"), ("CHAP_C", "0x" + "ab" * 16)], "CHAP_A"),
])
def test_malformed_chap_challenge_fails_the_login(challenge: list[tuple[str, str]],
                                                  why: str) -> None:
    """The target's CHAP_C goes through the target's own decoding and bounds (0x/0b,
    1..1024 bytes; CHAP_I one octet): no CHAP_R is computed over a bad challenge."""
    conn, peer, req = start(chap=("alice", "secret-12345"))
    peer.feed(login_rsp(req, [("AuthMethod", "CHAP")], transit=False))
    peer.sent()
    failed, closed = peer.feed(login_rsp(req, challenge, transit=False))
    assert isinstance(failed, RequestFailed) and isinstance(failed.error, NegotiationError)
    assert why in str(failed.error)
    assert isinstance(closed, ConnectionClosed) and peer.sent() == []


@pytest.mark.parametrize("response", ["0x", "0bAB$$CD==", "zz", "0x" + "00" * 1025])
def test_malformed_mutual_chap_response_fails_the_login(response: str) -> None:
    conn, peer, req = start(chap=("a", "secret-12345"), mutual_chap=("t", "tsecret-1234"))
    peer.feed(login_rsp(req, [("AuthMethod", "CHAP")], transit=False))
    peer.sent()
    peer.feed(login_rsp(req, [("CHAP_A", "5"), ("CHAP_I", "1"), ("CHAP_C", "0x" + "ab" * 16)],
                        transit=False))
    peer.sent()
    failed, closed = peer.feed(login_rsp(req, [("CHAP_N", "t"), ("CHAP_R", response)]))
    assert isinstance(failed.error, NegotiationError) and "bad CHAP_R" in str(failed.error)
    assert isinstance(closed, ConnectionClosed)


def test_mutual_chap_wrong_target_response_fails() -> None:
    conn, peer, req = start(chap=("a", "secret-12345"), mutual_chap=("t", "tsecret-1234"))
    peer.feed(login_rsp(req, [("AuthMethod", "CHAP")], transit=False))
    peer.sent()
    peer.feed(login_rsp(req, [("CHAP_A", "5"), ("CHAP_I", "1"), ("CHAP_C", "0x00ff")],
                        transit=False))
    peer.sent()
    events = peer.feed(login_rsp(req, [("CHAP_N", "t"), ("CHAP_R", "0x" + "00" * 16)]))
    assert isinstance(events[0].error, NegotiationError)


def test_logged_in_helper_window() -> None:
    conn, peer = logged_in(window=4)
    assert (conn.cmd_sn, conn.exp_cmd_sn, conn.max_cmd_sn, conn.tsih) == (1, 1, 4, 7)


# -- a connection joining a session (MaxConnections > 1, RFC 7143 5.3.4) ------------------
SESSION_ISID = 0x800000ABCD00
# What the leading connection negotiated: session-wide (LO) values plus its own
# connection values, which the joining connection must not take.
SESSIONS = {
    "no-immediate": SessionParams(
        immediate_data=False, initial_r2t=True, max_burst_length=16384,
        first_burst_length=8192, max_connections=2, default_time2wait=0,
        default_time2retain=0, max_outstanding_r2t=1, header_digest=True,
        data_digest=True, max_recv_data_segment_length=65536,
        max_xmit_data_segment_length=65536),
    "unsolicited": SessionParams(
        immediate_data=True, initial_r2t=False, max_burst_length=16384,
        first_burst_length=8192, max_connections=4, default_time2wait=5,
        default_time2retain=7, max_outstanding_r2t=2, header_digest=True,
        max_xmit_data_segment_length=65536),
}


def join(session: SessionParams | None, *answers: tuple[str, str],
         **kw: object) -> tuple[InitiatorConnection, Peer, list[object]]:
    """A connection joining session 9 (CID 1) whose login the target completes with
    ``answers``; the events of the final Login Response."""
    conn, peer, req = start(isid=SESSION_ISID, tsih=9, cid=1, session=session, **kw)
    assert (req.tsih, req.cid) == (9, 1)
    assert peer.feed(login_rsp(req, [("AuthMethod", "None")], tsih=9)) == []
    (op,) = peer.sent()
    assert op.tsih == 9
    # only the connection's own keys are negotiated: no leading-only key (13)
    assert set(text(op)) == {"HeaderDigest", "DataDigest", "MaxRecvDataSegmentLength"}
    final = login_rsp(op, [("HeaderDigest", "None"), ("DataDigest", "None"), *answers],
                      nsg=3, stat_sn=4, tsih=9, exp_cmd_sn=17, max_cmd_sn=48)
    return conn, peer, peer.feed(final, byte_at_a_time=True)


@pytest.mark.parametrize("name", list(SESSIONS))
def test_joining_connection_takes_the_session_wide_values(name: str) -> None:
    session = SESSIONS[name]
    # our own proposals for session-wide keys are moot on a joining connection
    conn, peer, events = join(session, ("MaxRecvDataSegmentLength", "4096"),
                              immediate_data=not session.immediate_data,
                              initial_r2t=not session.initial_r2t, max_burst_length=512,
                              first_burst_length=512, max_recv_data_segment_length=16384)
    assert [type(e) for e in events] == [LoginComplete] and conn.tsih == 9
    n = conn.negotiated
    assert {a: getattr(n, a) for a in SESSION_WIDE} == {a: getattr(session, a)
                                                        for a in SESSION_WIDE}
    # the connection keys are this connection's own (13.1, 13.12)
    assert (n.header_digest, n.data_digest) == (False, False)
    assert (n.max_recv_data_segment_length, n.max_xmit_data_segment_length) == (16384, 4096)
    assert not conn.framer.header_digest and conn.cmd_sn == 17


def test_joined_write_without_immediate_data_waits_for_r2t() -> None:
    """Session: ImmediateData=No, InitialR2T=Yes; the joined connection's WRITE carries
    no data and sends only what R2Ts ask for, at its own MaxXmitDataSegmentLength."""
    conn, peer, _ = join(SESSIONS["no-immediate"], ("MaxRecvDataSegmentLength", "4096"))
    data = bytes(range(256)) * 80  # 20480 bytes
    itt = conn.send_command(1, cdb_write16(0, 40), data_out=data)
    (cmd,) = peer.sent()
    assert isinstance(cmd, ScsiCommand)
    assert (cmd.cmd_sn, len(cmd.data), cmd.final, cmd.write) == (17, 0, True, True)
    peer.feed(R2T(itt, 5, 0, 0, 16384, exp_cmd_sn=18, max_cmd_sn=48))  # MaxBurstLength
    outs = peer.sent()
    assert [(o.ttt, o.data_sn, o.buffer_offset, len(o.data), o.final) for o in outs] == [
        (5, 0, 0, 4096, False), (5, 1, 4096, 4096, False), (5, 2, 8192, 4096, False),
        (5, 3, 12288, 4096, True)]
    peer.feed(R2T(itt, 6, 1, 16384, 4096, exp_cmd_sn=18, max_cmd_sn=48))
    (last,) = peer.sent()
    assert b"".join(bytes(o.data) for o in [*outs, last]) == data
    (ev,) = peer.feed(ScsiResponse(itt, 0, 0, 5, 18, 48))
    assert isinstance(ev, CommandComplete) and ev.result.ok


def test_joined_write_sends_unsolicited_data_up_to_the_sessions_first_burst() -> None:
    """Session: ImmediateData=Yes, InitialR2T=No, FirstBurstLength=8192 (not the
    default 65536): immediate plus unsolicited Data-Out stop at 8192 bytes."""
    conn, peer, _ = join(SESSIONS["unsolicited"], ("MaxRecvDataSegmentLength", "4096"))
    itt = conn.send_command(1, cdb_write16(0, 40), data_out=bytes(20480))
    cmd, *outs = peer.sent()
    assert (len(cmd.data), cmd.final) == (4096, False)
    assert [(o.ttt, o.buffer_offset, len(o.data), o.final) for o in outs] == [
        (RESERVED_TAG, 4096, 4096, True)]
    assert itt == cmd.itt


def test_joining_without_the_session_parameters_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="session"):
        InitiatorConnection(InitiatorOptions(target_name=IQN, tsih=9, cid=1))


@pytest.mark.parametrize("key", ["ImmediateData", "InitialR2T", "MaxBurstLength",
                                 "FirstBurstLength", "MaxConnections", "ErrorRecoveryLevel"])
def test_leading_only_key_from_the_target_fails_a_joining_login(key: str) -> None:
    value = "No" if key in ("ImmediateData", "InitialR2T") else "1"
    conn, peer, events = join(SESSIONS["no-immediate"], (key, value))
    assert isinstance(events[0], RequestFailed)
    assert isinstance(events[0].error, NegotiationError) and key in str(events[0].error)
    assert isinstance(events[-1], ConnectionClosed) and conn.closed


# -- one key table: an offer gets the same answer from the target and from us (13) ---------
def target_answer(discovery: bool, name: str, value: str) -> str | None:
    """What TargetLogin answers when an initiator offers ``name=value`` (default settings)."""
    lg = TargetLogin(StubPolicy(), "127.0.0.1")
    first = [("InitiatorName", "iqn.2026-11.org.pytgt:i")]
    first += [("SessionType", "Discovery")] if discovery else [("TargetName", PAIR_IQN)]
    rsp = lg.receive(LoginRequest(1, SESSION_ISID, 0, 0, 1, 0, False, False, 1, 0, 0, 0,
                                  encode_text([*first, (name, value)])))
    return dict(decode_text(rsp.data)).get(name)


def initiator_answer(discovery: bool, name: str, value: str) -> str | None:
    """What we answer when the target offers ``name=value`` in the operational stage."""
    conn, peer, req = start(target_name=None if discovery else IQN)
    peer.feed(login_rsp(req, [("AuthMethod", "None")]))
    (op,) = peer.sent()
    agreed = [(k, v) for k, v in text(op).items() if k != "MaxRecvDataSegmentLength"]
    assert peer.feed(login_rsp(op, [*agreed, (name, value)], transit=False)) == []
    (again,) = peer.sent()
    return text(again).get(name)


def offer_values(key: Key) -> list[str]:
    """Valid and invalid offers of ``key``."""
    if key.boolean:
        return ["Yes", "No", "yes"]
    if key.numeric:
        return [str(key.low), key.default, str(key.high), str(key.high + 1), "0x10", "many"]
    if key.rule is Rule.LIST:
        return [*key.values, ",".join(reversed(key.values)), "Bogus"]
    return ["1", "Irrelevant"]


# every key both sides may offer; each in the session types where we do not propose it
# ourselves (then the target's key would be the answer to our offer, not an offer)
OFFERED = [(discovery, key) for key in KEY_TABLE for discovery in (True, False)
           if key.sender is Sender.BOTH and key.use is not Use.SECURITY
           and (key.rule is not Rule.DECLARATIVE or key.name in MARKER_INTERVALS)
           and key.name not in ("HeaderDigest", "DataDigest")
           and (discovery or key.use is not Use.LO or key.name in (
               "TaskReporting", "iSCSIProtocolLevel"))]


@pytest.mark.parametrize(("discovery", "key"), OFFERED,
                         ids=[f"{'discovery' if d else 'normal'}-{k.name}" for d, k in OFFERED])
def test_the_same_table_answers_an_offer_from_either_side(discovery: bool, key: Key) -> None:
    for value in offer_values(key):
        assert initiator_answer(discovery, key.name, value) == target_answer(
            discovery, key.name, value), value


def test_either_side_offers_cover_the_operational_keys() -> None:
    names = {k.name for _, k in OFFERED}
    assert {"MaxBurstLength", "ErrorRecoveryLevel", "TaskReporting", "iSCSIProtocolLevel",
            "OFMarker", "IFMarkInt", "MaxConnections", "InitialR2T"} <= names
    assert initiator_answer(False, "X-com.example.key", "1") == target_answer(
        False, "X-com.example.key", "1") == "NotUnderstood"
