"""Target login stages and negotiation (RFC 7143 6, 11.12, 11.13, 12.1.3, 13)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytgt.iscsi.chap import decode_binary, encode_binary
from pytgt.iscsi.constants import LoginStatus
from pytgt.iscsi.errors import LoginError
from pytgt.iscsi.login import MAX_LOGIN_SEGMENT, TargetLogin
from pytgt.iscsi.pdu import LoginRequest
from pytgt.iscsi.policy import BasePolicy, LoginFailure
from pytgt.iscsi.text import decode_text, encode_text

INAME = "iqn.2026-01.org.example:host"
TNAME = "iqn.2026-01.org.example:disk1"
ISID = 0x23D000000001


@dataclass
class FakeTarget:
    name: str
    alias: str = ""
    acl: set[str] = field(default_factory=lambda: {INAME})
    ready: bool = True
    settings: dict[str, str] = field(default_factory=dict)
    accounts: dict[str, str] = field(default_factory=dict)  # CHAP user -> secret
    mutual: tuple[str, str] | None = None


class FakePolicy(BasePolicy[FakeTarget]):
    """A TargetPolicy over a dict of FakeTargets."""

    def __init__(self, *targets: FakeTarget, ready: bool = True) -> None:
        self.targets = {t.name: t for t in targets}
        self.ready = ready

    def find_target(self, name: str) -> FakeTarget | None:
        return self.targets.get(name)

    def target_allows(self, target: FakeTarget, initiator_name: str, address: str) -> bool:
        return initiator_name in target.acl and address.startswith("127.")

    def target_ready(self, target: FakeTarget | None) -> bool:
        return self.ready and (target is None or target.ready)

    def target_settings(self, target: FakeTarget | None) -> dict[str, str]:
        return dict(target.settings) if target else {}

    def target_alias(self, target: FakeTarget | None) -> str:
        return target.alias if target else ""

    def auth_required(self, target: FakeTarget | None) -> bool:
        return bool(target and target.accounts)

    def chap_secret(self, target: FakeTarget | None, user: str) -> str | None:
        return target.accounts.get(user) if target else None

    def chap_mutual_account(self, target: FakeTarget | None) -> tuple[str, str] | None:
        return target.mutual if target else None


def counter_bytes() -> Any:
    """Deterministic 'random' bytes: 0x01, 0x02, ..."""
    state = [0]

    def take(n: int) -> bytes:
        out = bytes((state[0] + i + 1) & 0xFF for i in range(n))
        state[0] += n
        return out
    return take


def make(target: FakeTarget | None = None, *, ready: bool = True, tpgt: int = 1,
         address: str = "127.0.0.1") -> TargetLogin:
    target = target or FakeTarget(TNAME)
    return TargetLogin(FakePolicy(target, ready=ready), address, portal_group_tag=tpgt,
                       random_bytes=counter_bytes())


def req(pairs: list[tuple[str, str]] | bytes = (), *, csg: int = 0, nsg: int = 1,
        transit: bool = True, cont: bool = False, tsih: int = 0, cid: int = 0,
        isid: int = ISID, vmax: int = 0, vmin: int = 0) -> LoginRequest:
    data = pairs if isinstance(pairs, bytes) else encode_text(list(pairs))
    return LoginRequest(0x10, isid, tsih, cid, 1, 0, transit, cont, csg, nsg, vmax, vmin, data)


FIRST = [("InitiatorName", INAME), ("TargetName", TNAME), ("SessionType", "Normal"),
         ("AuthMethod", "None")]
DISCOVERY = [("InitiatorName", INAME), ("SessionType", "Discovery"), ("AuthMethod", "None")]


def answers(rsp: Any) -> list[tuple[str, str]]:
    return decode_text(rsp.data)


def fail_status(lg: TargetLogin, request: LoginRequest) -> LoginStatus:
    with pytest.raises(LoginError) as info:
        lg.receive(request)
    rsp = lg.failure(request, info.value)
    assert (rsp.transit, rsp.cont, rsp.data, rsp.final_ok) == (False, False, b"", False)
    assert rsp.csg == request.csg
    return rsp.status


# -- a whole login ------------------------------------------------------------------

def test_security_then_operational_then_full_feature() -> None:
    lg = make(FakeTarget(TNAME, alias="disk one"))
    assert not lg.started
    rsp = lg.receive(req(FIRST, csg=0, nsg=1))
    assert lg.started
    assert (rsp.status, rsp.transit, rsp.csg, rsp.nsg, rsp.final_ok) == (0, True, 0, 1, False)
    assert rsp.data == (b"AuthMethod=None\0TargetAlias=disk one\0TargetPortalGroupTag=1\0")
    ops = [("HeaderDigest", "None"), ("DataDigest", "None"),
           ("MaxRecvDataSegmentLength", "65536"), ("MaxBurstLength", "1048576"),
           ("FirstBurstLength", "262144"), ("ImmediateData", "Yes"), ("InitialR2T", "No"),
           ("MaxOutstandingR2T", "1"), ("DefaultTime2Wait", "0"), ("DefaultTime2Retain", "0"),
           ("ErrorRecoveryLevel", "0"), ("MaxConnections", "1")]
    rsp = lg.receive(req(ops, csg=1, nsg=3))
    assert (rsp.status, rsp.transit, rsp.csg, rsp.nsg, rsp.final_ok) == (0, True, 1, 3, True)
    assert rsp.data == (
        b"HeaderDigest=None\0DataDigest=None\0MaxBurstLength=262144\0"
        b"FirstBurstLength=65536\0ImmediateData=Yes\0InitialR2T=Yes\0MaxOutstandingR2T=1\0"
        b"DefaultTime2Wait=2\0DefaultTime2Retain=0\0ErrorRecoveryLevel=0\0MaxConnections=1\0"
        b"MaxRecvDataSegmentLength=262144\0")
    p = lg.negotiated
    assert (p.max_recv_data_segment_length, p.max_xmit_data_segment_length) == (262144, 65536)
    assert (p.max_burst_length, p.first_burst_length) == (262144, 65536)
    assert (p.immediate_data, p.initial_r2t, p.default_time2wait) == (True, True, 2)
    assert (p.header_digest, p.data_digest) == (False, False)
    assert lg.initiator_name == INAME and lg.target_name == TNAME
    assert lg.session_type == "Normal" and lg.target is not None


def test_security_straight_to_full_feature_keeps_defaults() -> None:
    lg = make()
    rsp = lg.receive(req(FIRST, csg=0, nsg=3))
    assert rsp.final_ok and rsp.nsg == 3
    assert lg.negotiated.max_recv_data_segment_length == 8192  # never declared: default
    assert lg.negotiated.max_xmit_data_segment_length == 8192


def test_operational_stage_first() -> None:
    lg = make()
    first = [kv for kv in FIRST if kv[0] != "AuthMethod"] + [("HeaderDigest", "CRC32C,None"),
                                                              ("DataDigest", "CRC32C")]
    rsp = lg.receive(req(first, csg=1, nsg=3))
    assert rsp.final_ok
    assert rsp.data == (b"HeaderDigest=CRC32C\0DataDigest=CRC32C\0TargetPortalGroupTag=1\0"
                        b"MaxRecvDataSegmentLength=262144\0")
    assert lg.negotiated.header_digest and lg.negotiated.data_digest


def test_target_holds_transit_until_initiator_transits() -> None:
    lg = make()
    rsp = lg.receive(req(FIRST, transit=False))
    assert (rsp.transit, rsp.nsg) == (False, 0)
    rsp = lg.receive(req([], csg=0, nsg=1))
    assert rsp.transit and rsp.nsg == 1 and rsp.data == b""  # TPGT only in the first
    rsp = lg.receive(req([("HeaderDigest", "None")], csg=1, transit=False))
    assert not rsp.transit and not rsp.final_ok
    rsp = lg.receive(req([], csg=1, nsg=3))
    assert rsp.final_ok and rsp.data == b""  # MaxRecvDataSegmentLength declared once


def test_discovery_login() -> None:
    lg = make()
    rsp = lg.receive(req(DISCOVERY, csg=0, nsg=1))
    assert rsp.data == b"AuthMethod=None\0"  # no TargetPortalGroupTag for discovery
    ops = [("HeaderDigest", "None"), ("MaxRecvDataSegmentLength", "32768"),
           ("MaxBurstLength", "16384"), ("FirstBurstLength", "8192"), ("ImmediateData", "No"),
           ("InitialR2T", "No"), ("MaxConnections", "1"), ("DataPDUInOrder", "Yes"),
           ("DefaultTime2Wait", "2"), ("ErrorRecoveryLevel", "0")]
    rsp = lg.receive(req(ops, csg=1, nsg=3))
    assert rsp.final_ok
    assert answers(rsp) == [
        ("HeaderDigest", "None"), ("MaxBurstLength", "Irrelevant"),
        ("FirstBurstLength", "Irrelevant"), ("ImmediateData", "Irrelevant"),
        ("InitialR2T", "Irrelevant"), ("MaxConnections", "Irrelevant"),
        ("DataPDUInOrder", "Irrelevant"), ("DefaultTime2Wait", "2"),
        ("ErrorRecoveryLevel", "0"), ("MaxRecvDataSegmentLength", "262144")]
    assert lg.session_type == "Discovery" and lg.target is None and lg.target_name == ""
    assert lg.negotiated.max_burst_length == 262144  # untouched default
    assert lg.negotiated.max_xmit_data_segment_length == 32768


def test_discovery_ignores_target_name() -> None:
    lg = make()
    rsp = lg.receive(req([*DISCOVERY, ("TargetName", "iqn.nowhere")], csg=0, nsg=3))
    assert rsp.final_ok and lg.target_name == ""


# -- one key at a time in the operational stage -------------------------------------

def operational(pairs: list[tuple[str, str]], target: FakeTarget | None = None,
                **kw: Any) -> tuple[TargetLogin, list[tuple[str, str]]]:
    lg = make(target, **kw)
    lg.receive(req(FIRST, csg=0, nsg=1))
    rsp = lg.receive(req(pairs, csg=1, nsg=3))
    got = answers(rsp)
    assert got[-1][0] == "MaxRecvDataSegmentLength"
    return lg, got[:-1]


@pytest.mark.parametrize(("pairs", "expect", "attr", "value"), [
    ([("MaxBurstLength", "4096")], [("MaxBurstLength", "4096")], "max_burst_length", 4096),
    ([("MaxBurstLength", "100")], [("MaxBurstLength", "Reject")], "max_burst_length", 262144),
    # FirstBurstLength never exceeds MaxBurstLength (13.14)
    ([("MaxBurstLength", "4096"), ("FirstBurstLength", "65536")],
     [("MaxBurstLength", "4096"), ("FirstBurstLength", "4096")], "first_burst_length", 4096),
    ([("FirstBurstLength", "65536"), ("MaxBurstLength", "4096")],
     [("FirstBurstLength", "4096"), ("MaxBurstLength", "4096")], "first_burst_length", 4096),
    ([("MaxBurstLength", "4096")], [("MaxBurstLength", "4096")], "first_burst_length", 4096),
    # FirstBurstLength is Irrelevant with InitialR2T=Yes and ImmediateData=No (13.14)
    ([("InitialR2T", "Yes"), ("ImmediateData", "No"), ("FirstBurstLength", "4096")],
     [("InitialR2T", "Yes"), ("ImmediateData", "No"), ("FirstBurstLength", "Irrelevant")],
     "first_burst_length", 65536),
    ([("MaxRecvDataSegmentLength", "512")], [], "max_xmit_data_segment_length", 512),
    ([("MaxRecvDataSegmentLength", "511")], [("MaxRecvDataSegmentLength", "Reject")],
     "max_xmit_data_segment_length", 8192),
    ([("HeaderDigest", "MD5")], [("HeaderDigest", "Reject")], "header_digest", False),
    ([("DataDigest", "CRC32C")], [("DataDigest", "CRC32C")], "data_digest", True),
    ([("ErrorRecoveryLevel", "2")], [("ErrorRecoveryLevel", "0")], "error_recovery_level", 0),
    ([("MaxConnections", "4")], [("MaxConnections", "1")], "max_connections", 1),
    ([("DataSequenceInOrder", "No")], [("DataSequenceInOrder", "Yes")],
     "data_sequence_in_order", True),
    ([("iSCSIProtocolLevel", "2")], [("iSCSIProtocolLevel", "1")], "iscsi_protocol_level", 1),
    ([("TaskReporting", "FastAbort,RFC3720")], [("TaskReporting", "RFC3720")],
     "task_reporting", "RFC3720"),
    ([("InitiatorAlias", "host one")], [], "max_burst_length", 262144),
])
def test_operational_key(pairs: list[tuple[str, str]], expect: list[tuple[str, str]],
                         attr: str, value: object) -> None:
    lg, got = operational(pairs)
    assert got == expect
    assert getattr(lg.negotiated, attr) == value


@pytest.mark.parametrize(("pairs", "expect"), [
    ([("X-com.example.Foo", "1")], [("X-com.example.Foo", "NotUnderstood")]),
    ([("X#Bar", "1")], [("X#Bar", "NotUnderstood")]),
    ([("Bogus", "1")], [("Bogus", "NotUnderstood")]),
    ([("IFMarker", "Yes"), ("OFMarker", "No")], [("IFMarker", "No"), ("OFMarker", "No")]),
    ([("OFMarkInt", "2048~8192"), ("IFMarkInt", "1")],
     [("OFMarkInt", "Irrelevant"), ("IFMarkInt", "Irrelevant")]),
    ([("SendTargets", "All")], [("SendTargets", "Reject")]),
    ([("TargetAddress", "1.2.3.4")], [("TargetAddress", "Reject")]),
    ([("TargetPortalGroupTag", "1")], [("TargetPortalGroupTag", "Reject")]),
    ([("MaxBurstLength", "Irrelevant")], []),  # an answer to nothing we offered
])
def test_special_answers(pairs: list[tuple[str, str]], expect: list[tuple[str, str]]) -> None:
    assert operational(pairs)[1] == expect


def test_initiator_alias_recorded() -> None:
    lg, _ = operational([("InitiatorAlias", "host one")])
    assert lg.initiator_alias == "host one"


def test_admin_overrides_declared_and_negotiated() -> None:
    settings = {"MaxRecvDataSegmentLength": "65536", "HeaderDigest": "CRC32C",
                "MaxBurstLength": "131072"}
    lg = make(FakeTarget(TNAME, settings=settings))
    lg.receive(req(FIRST, csg=0, nsg=1))
    rsp = lg.receive(req([("HeaderDigest", "CRC32C,None"), ("MaxBurstLength", "262144")],
                         csg=1, nsg=3))
    assert rsp.final_ok
    assert answers(rsp) == [("HeaderDigest", "CRC32C"), ("MaxBurstLength", "131072"),
                            ("MaxRecvDataSegmentLength", "65536")]
    assert lg.negotiated.max_recv_data_segment_length == 65536


def test_max_xmit_setting_caps_what_we_send() -> None:
    target = FakeTarget(TNAME, settings={"MaxXmitDataSegmentLength": "16384", "nop_count": "3"})
    lg, _ = operational([("MaxRecvDataSegmentLength", "65536")], target)
    assert lg.negotiated.max_xmit_data_segment_length == 16384
    lg, _ = operational([("MaxRecvDataSegmentLength", "4096")], target)
    assert lg.negotiated.max_xmit_data_segment_length == 4096


def test_target_offers_keys_it_cannot_leave_at_default() -> None:
    settings = {"ImmediateData": "No", "MaxBurstLength": "65536", "FirstBurstLength": "16384"}
    lg = make(FakeTarget(TNAME, settings=settings))
    lg.receive(req(FIRST, csg=0, nsg=1))
    rsp = lg.receive(req([("HeaderDigest", "None")], csg=1, nsg=3))
    # the initiator did not offer them; we do, and hold T=0 for its answers (6.2)
    assert not rsp.transit
    assert answers(rsp) == [("HeaderDigest", "None"), ("MaxRecvDataSegmentLength", "262144"),
                            ("ImmediateData", "No"), ("MaxBurstLength", "65536"),
                            ("FirstBurstLength", "16384")]
    rsp = lg.receive(req([("ImmediateData", "No"), ("MaxBurstLength", "32768"),
                          ("FirstBurstLength", "Irrelevant")], csg=1, nsg=3))
    assert rsp.final_ok and rsp.data == b""
    p = lg.negotiated
    assert (p.immediate_data, p.max_burst_length, p.first_burst_length) == (False, 32768, 32768)


@pytest.mark.parametrize(("offer", "answer", "ok"), [
    (None, "CRC32C", True), (None, "Reject", False), ("None", None, False),
    ("CRC32C,None", None, True),
])
def test_required_digest(offer: str | None, answer: str | None, ok: bool) -> None:
    lg = make(FakeTarget(TNAME, settings={"HeaderDigest": "CRC32C"}))
    lg.receive(req(FIRST, csg=0, nsg=1))
    pairs = [] if offer is None else [("HeaderDigest", offer)]
    if answer is not None:
        rsp = lg.receive(req(pairs, csg=1, nsg=3))
        assert ("HeaderDigest", "CRC32C") in answers(rsp) and not rsp.transit
        pairs = [("HeaderDigest", answer)]
    if ok:
        assert lg.receive(req(pairs, csg=1, nsg=3)).final_ok
        assert lg.negotiated.header_digest
    else:
        assert fail_status(lg, req(pairs, csg=1, nsg=3)) == LoginStatus.INITIATOR_ERROR


def test_offer_answer_must_fit_the_rule() -> None:
    lg = make(FakeTarget(TNAME, settings={"MaxBurstLength": "65536"}))
    lg.receive(req(FIRST, csg=0, nsg=1))
    lg.receive(req([], csg=1, nsg=3))
    assert fail_status(lg, req([("MaxBurstLength", "131072")], csg=1, nsg=3)) == 0x0200


def test_resent_key_gets_the_same_answer() -> None:
    # libiscsi sends InitiatorName again in the operational stage; a repeat with the
    # same value is answered again, a different value is an initiator error.
    lg = make()
    lg.receive(req([*FIRST, ("HeaderDigest", "None")], csg=0, nsg=1))
    rsp = lg.receive(req([("InitiatorName", INAME), ("HeaderDigest", "None")], csg=1, nsg=3))
    assert answers(rsp)[0] == ("HeaderDigest", "None") and rsp.final_ok


@pytest.mark.parametrize("pairs", [
    [("HeaderDigest", "CRC32C")], [("InitiatorName", "iqn.other")],
    [("SessionType", "Discovery")], [("TargetName", "iqn.other")],
])
def test_renegotiation_is_an_initiator_error(pairs: list[tuple[str, str]]) -> None:
    lg = make()
    lg.receive(req([*FIRST, ("HeaderDigest", "None")], csg=0, nsg=1))
    assert fail_status(lg, req(pairs, csg=1, nsg=3)) == LoginStatus.INITIATOR_ERROR


# -- failures ---------------------------------------------------------------------

def without(name: str) -> list[tuple[str, str]]:
    return [kv for kv in FIRST if kv[0] != name]


@pytest.mark.parametrize(("request_", "status"), [
    (req(FIRST, vmin=1), LoginStatus.UNSUPPORTED_VERSION),
    (req(without("InitiatorName")), LoginStatus.MISSING_PARAMETER),
    (req([*without("InitiatorName"), ("InitiatorName", "")]), LoginStatus.MISSING_PARAMETER),
    (req(without("TargetName")), LoginStatus.MISSING_PARAMETER),
    (req([*without("SessionType"), ("SessionType", "Boot")]),
     LoginStatus.SESSION_TYPE_NOT_SUPPORTED),
    (req([*without("TargetName"), ("TargetName", "iqn.nope")]), LoginStatus.NOT_FOUND),
    (req([("InitiatorName", "iqn.stranger"), *without("InitiatorName")]),
     LoginStatus.AUTHORIZATION_FAILURE),
    (req([("InitiatorName", "iqn." + "x" * 220), *without("InitiatorName")]),
     LoginStatus.INITIATOR_ERROR),
    (req(FIRST, transit=True, cont=True), LoginStatus.INITIATOR_ERROR),
    (req(FIRST, csg=2, nsg=3), LoginStatus.INITIATOR_ERROR),
    (req(FIRST, csg=3, nsg=3), LoginStatus.INITIATOR_ERROR),
    (req(FIRST, csg=0, nsg=2), LoginStatus.INITIATOR_ERROR),
    (req(FIRST, csg=0, nsg=0), LoginStatus.INITIATOR_ERROR),
    (req(FIRST, csg=1, nsg=1), LoginStatus.INITIATOR_ERROR),
    (req([*FIRST, ("HeaderDigest", "None"), ("HeaderDigest", "None")]),
     LoginStatus.INITIATOR_ERROR),
    (req(b"InitiatorName\0"), LoginStatus.INITIATOR_ERROR),
    (req(b"InitiatorName=\xff\xfe\0"), LoginStatus.INITIATOR_ERROR),
    (req(b"=x\0"), LoginStatus.INITIATOR_ERROR),
    (req([*FIRST, ("MaxBurstLength", "4096")], csg=1, nsg=3, tsih=5),
     LoginStatus.INITIATOR_ERROR),  # leading-only key on a non-leading connection
    (req([*FIRST, ("FirstBurstLength", "4096")], csg=1, nsg=3, tsih=5),
     LoginStatus.INITIATOR_ERROR),
    (req([*without("AuthMethod"), ("MaxBurstLength", "4096")], csg=1, nsg=3, tsih=5),
     LoginStatus.INITIATOR_ERROR),
    (req([*without("AuthMethod"), ("AuthMethod", "None")], csg=1, nsg=3),
     LoginStatus.INITIATOR_ERROR),  # security key in the operational stage
    (req([*FIRST, ("CHAP_A", "5")]), LoginStatus.INITIATOR_ERROR),  # CHAP without CHAP
])
def test_first_request_failures(request_: LoginRequest, status: LoginStatus) -> None:
    assert fail_status(make(), request_) == status


def test_acl_sees_the_address() -> None:
    assert fail_status(make(address="10.0.0.1"), req(FIRST)) == 0x0202


def test_target_not_ready() -> None:
    assert fail_status(make(FakeTarget(TNAME, ready=False)), req(FIRST)) == 0x0301
    assert fail_status(make(ready=False), req(DISCOVERY)) == 0x0301


def test_bad_target_settings_are_a_target_error() -> None:
    lg = make(FakeTarget(TNAME, settings={"MaxBurstLength": "1"}))
    assert fail_status(lg, req(FIRST)) == LoginStatus.TARGET_ERROR


@pytest.mark.parametrize("change", [{"isid": ISID + 1}, {"tsih": 7}, {"cid": 1}, {"vmax": 1}])
def test_identity_must_not_change(change: dict[str, int]) -> None:
    lg = make()
    lg.receive(req(FIRST, transit=False))
    assert fail_status(lg, req([], **change)) == LoginStatus.INITIATOR_ERROR


def test_stage_must_match() -> None:
    lg = make()
    lg.receive(req(FIRST, transit=False))  # still in the security stage
    assert fail_status(lg, req([], csg=1, nsg=3)) == LoginStatus.INITIATOR_ERROR
    lg = make()
    lg.receive(req(FIRST, csg=0, nsg=1))  # now in the operational stage
    assert fail_status(lg, req([], csg=0, nsg=1)) == LoginStatus.INITIATOR_ERROR


def test_no_request_after_the_end() -> None:
    lg = make()
    assert lg.receive(req(FIRST, csg=0, nsg=3)).final_ok
    with pytest.raises(LoginError):
        lg.receive(req([], csg=0, nsg=3))


def test_failure_echoes_stages() -> None:
    lg = make()
    r = req(FIRST, csg=1, nsg=3)
    rsp = lg.failure(r, LoginError(LoginStatus.OUT_OF_RESOURCES))
    assert (rsp.status, rsp.csg, rsp.nsg, rsp.transit) == (0x0302, 1, 3, False)


# -- continuation -----------------------------------------------------------------

def test_request_continuation_is_gathered() -> None:
    lg = make()
    body = encode_text(FIRST)
    cut = body.index(b"TargetName") + 5  # split inside a key
    rsp = lg.receive(req(body[:cut], transit=False, cont=True))
    assert (rsp.status, rsp.transit, rsp.cont, rsp.data, rsp.csg) == (0, False, False, b"", 0)
    assert not lg.initiator_name  # nothing decoded yet
    rsp = lg.receive(req(body[cut:], csg=0, nsg=1))
    assert rsp.transit and answers(rsp)[0] == ("AuthMethod", "None")
    assert lg.target_name == TNAME


def test_request_text_is_bounded() -> None:
    lg = make()
    chunk = b"X-pad=" + b"a" * 8000 + b"\0"
    with pytest.raises(LoginError):
        for _ in range(10):
            lg.receive(req(chunk, transit=False, cont=True))


def test_long_response_is_split() -> None:
    lg = make()
    lg.receive(req(FIRST, csg=0, nsg=1))
    unknown = [(f"X-k{i:04d}", "v" * 40) for i in range(800)]
    body = encode_text([(k, "NotUnderstood") for k, _ in unknown])
    rsp = lg.receive(req(unknown, csg=1, nsg=3))
    pieces = [rsp]
    while rsp.cont:
        assert not rsp.transit and len(rsp.data) == MAX_LOGIN_SEGMENT
        rsp = lg.receive(req([], csg=1, nsg=3))
        pieces.append(rsp)
    assert len(pieces) == 3 and pieces[-1].final_ok
    got = b"".join(p.data for p in pieces)
    assert got == body + b"MaxRecvDataSegmentLength=262144\0"


def test_text_while_pulling_a_response_is_an_error() -> None:
    lg = make()
    lg.receive(req(FIRST, csg=0, nsg=1))
    lg.receive(req([(f"X-k{i:04d}", "v" * 40) for i in range(400)], csg=1, nsg=3))
    assert fail_status(lg, req([("HeaderDigest", "None")], csg=1, nsg=3)) == 0x0200


# -- CHAP ---------------------------------------------------------------------------

SECRET = "twelve-bytes-secret"
CHAP_TARGET = FakeTarget(TNAME, accounts={"alice": SECRET})


def chap_login(algorithms: str = "5", target: FakeTarget = CHAP_TARGET) -> tuple[
        TargetLogin, dict[str, str]]:
    lg = make(target)
    first = [*without("AuthMethod"), ("AuthMethod", "CHAP,None")]
    rsp = lg.receive(req(first, csg=0, nsg=1))
    assert not rsp.transit
    assert answers(rsp)[0] == ("AuthMethod", "CHAP")
    rsp = lg.receive(req([("CHAP_A", algorithms)], csg=0, nsg=1))
    assert not rsp.transit
    return lg, dict(answers(rsp))


@pytest.mark.parametrize(("offer", "code", "hash_name"), [
    ("5", "5", "md5"), ("7,5", "7", "sha256"), ("99,6", "6", "sha1"), ("8", "8", "sha3_256"),
])
def test_chap_one_way(offer: str, code: str, hash_name: str) -> None:
    lg, got = chap_login(offer)
    assert got["CHAP_A"] == code and got["CHAP_I"] == "1"
    challenge = decode_binary(got["CHAP_C"])
    assert challenge[0] == 2 and len(challenge) >= 16  # deterministic test randomness
    ident = int(got["CHAP_I"])
    r = hashlib.new(hash_name, bytes([ident]) + SECRET.encode() + challenge).digest()
    rsp = lg.receive(req([("CHAP_N", "alice"), ("CHAP_R", encode_binary(r))], csg=0, nsg=1))
    assert rsp.transit and rsp.nsg == 1 and rsp.data == b""
    assert lg.auth_method == "CHAP"


def test_chap_base64_response() -> None:
    import base64
    lg, got = chap_login()
    r = hashlib.md5(bytes([1]) + SECRET.encode() + decode_binary(got["CHAP_C"])).digest()
    rsp = lg.receive(req([("CHAP_N", "alice"), ("CHAP_R", "0b" + base64.b64encode(r).decode())],
                         csg=0, nsg=3))
    assert rsp.final_ok


@pytest.mark.parametrize(("user", "response"), [
    ("alice", "0x" + "00" * 16), ("bob", None), ("alice", "0xzz"), ("alice", "nothex"),
])
def test_chap_failures(user: str, response: str | None) -> None:
    lg, got = chap_login()
    if response is None:
        r = hashlib.md5(bytes([1]) + SECRET.encode() + decode_binary(got["CHAP_C"])).digest()
        response = encode_binary(r)
    status = fail_status(lg, req([("CHAP_N", user), ("CHAP_R", response)], csg=0, nsg=1))
    assert status == LoginStatus.AUTHENTICATION_FAILURE


def test_chap_mutual() -> None:
    target = FakeTarget(TNAME, accounts={"alice": SECRET}, mutual=("tgt", "target-secret-1"))
    lg, got = chap_login(target=target)
    r = hashlib.md5(bytes([1]) + SECRET.encode() + decode_binary(got["CHAP_C"])).digest()
    mine = bytes(range(100, 116))
    rsp = lg.receive(req([("CHAP_N", "alice"), ("CHAP_R", encode_binary(r)), ("CHAP_I", "9"),
                          ("CHAP_C", encode_binary(mine))], csg=0, nsg=1))
    want = hashlib.md5(bytes([9]) + b"target-secret-1" + mine).digest()
    assert answers(rsp) == [("CHAP_N", "tgt"), ("CHAP_R", encode_binary(want))]
    assert rsp.transit


@pytest.mark.parametrize("mutual", [None, ("tgt", SECRET)])
def test_chap_mutual_refused(mutual: tuple[str, str] | None) -> None:
    target = FakeTarget(TNAME, accounts={"alice": SECRET}, mutual=mutual)
    lg, got = chap_login(target=target)
    r = hashlib.md5(bytes([1]) + SECRET.encode() + decode_binary(got["CHAP_C"])).digest()
    pairs = [("CHAP_N", "alice"), ("CHAP_R", encode_binary(r)), ("CHAP_I", "9"),
             ("CHAP_C", "0x" + "ab" * 16)]
    assert fail_status(lg, req(pairs, csg=0, nsg=1)) == LoginStatus.AUTHENTICATION_FAILURE


def test_chap_reflected_challenge_refused() -> None:
    target = FakeTarget(TNAME, accounts={"alice": SECRET}, mutual=("tgt", "target-secret-1"))
    lg, got = chap_login(target=target)
    r = hashlib.md5(bytes([1]) + SECRET.encode() + decode_binary(got["CHAP_C"])).digest()
    pairs = [("CHAP_N", "alice"), ("CHAP_R", encode_binary(r)), ("CHAP_I", "1"),
             ("CHAP_C", got["CHAP_C"])]
    assert fail_status(lg, req(pairs, csg=0, nsg=1)) == LoginStatus.AUTHENTICATION_FAILURE


@pytest.mark.parametrize(("pairs", "status"), [
    ([("CHAP_A", "1,2")], LoginStatus.AUTHENTICATION_FAILURE),
    ([("CHAP_A", "5"), ("CHAP_N", "alice")], LoginStatus.INITIATOR_ERROR),
    ([("CHAP_N", "alice")], LoginStatus.INITIATOR_ERROR),
])
def test_chap_bad_algorithm_step(pairs: list[tuple[str, str]], status: LoginStatus) -> None:
    lg = make(CHAP_TARGET)
    lg.receive(req([*without("AuthMethod"), ("AuthMethod", "CHAP")], csg=0, nsg=1))
    assert fail_status(lg, req(pairs, csg=0, nsg=1)) == status


def test_chap_response_needs_name_and_response() -> None:
    lg, _ = chap_login()
    assert fail_status(lg, req([("CHAP_R", "0x00")], csg=0, nsg=1)) == 0x0200


@pytest.mark.parametrize(("first", "csg"), [
    ([*without("AuthMethod"), ("AuthMethod", "None")], 0),  # only CHAP is acceptable
    (without("AuthMethod"), 0),  # transit without authenticating
    (without("AuthMethod"), 1),  # skipping the security stage
])
def test_auth_required(first: list[tuple[str, str]], csg: int) -> None:
    lg = make(CHAP_TARGET)
    assert fail_status(lg, req(first, csg=csg, nsg=3)) == LoginStatus.AUTHENTICATION_FAILURE


def test_auth_required_waits_without_transit() -> None:
    lg = make(CHAP_TARGET)
    rsp = lg.receive(req(without("AuthMethod"), transit=False))
    assert not rsp.transit  # nothing agreed yet, but the initiator did not ask to move


class DiscoveryAuthPolicy(FakePolicy):
    """Discovery sessions need CHAP too (tgt's discovery accounts)."""

    def auth_required(self, target: FakeTarget | None) -> bool:
        return True

    def chap_secret(self, target: FakeTarget | None, user: str) -> str | None:
        return SECRET if target is None and user == "disc" else None


def test_discovery_chap() -> None:
    lg = TargetLogin(DiscoveryAuthPolicy(FakeTarget(TNAME)), "127.0.0.1",
                     random_bytes=counter_bytes())
    rsp = lg.receive(req([*DISCOVERY[:2], ("AuthMethod", "CHAP,None")], csg=0, nsg=1))
    assert answers(rsp) == [("AuthMethod", "CHAP")] and not rsp.transit
    got = dict(answers(lg.receive(req([("CHAP_A", "5")], csg=0, nsg=1))))
    r = hashlib.md5(bytes([1]) + SECRET.encode() + decode_binary(got["CHAP_C"])).digest()
    rsp = lg.receive(req([("CHAP_N", "disc"), ("CHAP_R", encode_binary(r))], csg=0, nsg=3))
    assert rsp.final_ok and lg.session_type == "Discovery"


def test_chap_not_offered_when_not_required() -> None:
    lg = make()
    rsp = lg.receive(req([*without("AuthMethod"), ("AuthMethod", "CHAP,None")], csg=0, nsg=1))
    assert answers(rsp)[0] == ("AuthMethod", "None") and rsp.transit


# -- every (stage, flags, text) sequence: a reply or a LoginError, never a crash --------

_PAIRS = st.sampled_from([
    ("InitiatorName", INAME), ("TargetName", TNAME), ("SessionType", "Normal"),
    ("SessionType", "Discovery"), ("AuthMethod", "None"), ("AuthMethod", "CHAP"),
    ("CHAP_A", "5"), ("CHAP_N", "alice"), ("CHAP_R", "0x00"), ("HeaderDigest", "CRC32C"),
    ("MaxBurstLength", "4096"), ("FirstBurstLength", "x"), ("X-a", "b"),
    ("MaxRecvDataSegmentLength", "1024"), ("ImmediateData", "No"), ("TargetAlias", "t"),
])
_TEXT = st.one_of(st.lists(_PAIRS, max_size=6).map(encode_text), st.binary(max_size=40))
_REQUEST = st.tuples(st.integers(0, 3), st.integers(0, 3), st.booleans(), st.booleans(),
                     _TEXT)


@settings(max_examples=400, deadline=None)
@given(st.lists(_REQUEST, min_size=1, max_size=6), st.booleans())
def test_any_request_sequence(requests: list[tuple[int, int, bool, bool, bytes]],
                              auth: bool) -> None:
    target = FakeTarget(TNAME, accounts={"alice": SECRET} if auth else {})
    lg = make(target)
    for csg, nsg, transit, cont, data in requests:
        r = req(data, csg=csg, nsg=nsg, transit=transit, cont=cont)
        try:
            rsp = lg.receive(r)
        except LoginError as err:
            assert lg.failure(r, err).status == err.status != LoginStatus.SUCCESS
            return
        assert rsp.status == LoginStatus.SUCCESS and rsp.csg == csg
        assert not (rsp.transit and rsp.cont)
        if rsp.transit:  # 6.3: the target moves only where the initiator asked
            assert transit and rsp.nsg == nsg and lg.stage == nsg
            assert not (auth and lg.auth_method != "CHAP")
        if rsp.final_ok:
            assert lg.initiator_name == INAME
            return


# -- chap.py on its own -------------------------------------------------------------

@given(st.binary(min_size=1, max_size=1024))
def test_binary_values_round_trip(data: bytes) -> None:
    import base64

    assert decode_binary(encode_binary(data)) == data
    assert decode_binary("0b" + base64.b64encode(data).decode()) == data
    assert decode_binary("0X" + data.hex().upper()) == data


@pytest.mark.parametrize("value", ["", "0x", "0b", "12", "0xg0", "0b!!", "0x" + "00" * 1025])
def test_binary_values_rejected(value: str) -> None:
    with pytest.raises(ValueError):
        decode_binary(value)


def test_chap_target_alone() -> None:
    from pytgt.iscsi.chap import ALGORITHMS, ChapTarget

    chap = ChapTarget({"u": "s" * 12}.get, random_bytes=counter_bytes())
    got = dict(chap.step({"CHAP_A": "7"}))
    algo = ALGORITHMS[7]
    assert got == {"CHAP_A": "7", "CHAP_I": "1", "CHAP_C": encode_binary(bytes(range(2, 34)))}
    r = algo.response(1, b"s" * 12, bytes(range(2, 34)))
    assert chap.step({"CHAP_N": "u", "CHAP_R": encode_binary(r)}) == []
    assert chap.done and chap.user == "u"
    with pytest.raises(LoginError):
        chap.step({"CHAP_A": "5"})


# -- the policy's neutral defaults and the hooks every policy has ----------------------------
class RecordingPolicy(BasePolicy[FakeTarget]):
    """Only a target lookup and a back-off; BasePolicy answers the rest."""

    def __init__(self, *, permitted: bool = True) -> None:
        self.target = FakeTarget(TNAME)
        self.permitted = permitted
        self.failures: list[tuple[FakeTarget | None, LoginFailure]] = []

    def find_target(self, name: str) -> FakeTarget | None:
        return self.target if name == TNAME else None

    def login_permitted(self, address: str, initiator_name: str) -> bool:
        return self.permitted

    def login_failed(self, target: FakeTarget | None, failure: LoginFailure) -> None:
        self.failures.append((target, failure))


def test_base_policy_discovery_logs_in_without_authentication() -> None:
    lg: TargetLogin[FakeTarget] = TargetLogin(BasePolicy(), "127.0.0.1")
    rsp = lg.receive(req(DISCOVERY, csg=0, nsg=3))
    assert rsp.final_ok and lg.target is None and lg.auth_method == "None"


def test_base_policy_acl_refuses_like_an_empty_tgt_acl() -> None:
    policy = RecordingPolicy()
    lg = TargetLogin(policy, "127.0.0.1")
    assert fail_status(lg, req(FIRST)) == LoginStatus.AUTHORIZATION_FAILURE
    ((target, failure),) = policy.failures
    assert target is None  # refused before the target was the login's
    assert (failure.initiator_name, failure.target_name, failure.held_off) == (
        INAME, TNAME, False)


def test_login_permitted_false_holds_off_before_the_lookup() -> None:
    policy = RecordingPolicy(permitted=False)
    lg = TargetLogin(policy, "192.0.2.9")
    assert fail_status(lg, req(FIRST)) == LoginStatus.SERVICE_UNAVAILABLE
    ((_target, failure),) = policy.failures
    assert (failure.address, failure.held_off, failure.target_name) == ("192.0.2.9", True, "")


# -- redirection (11.13.5: status class 1 with TargetAddress) --------------------------------
class RedirectingPolicy(FakePolicy):
    def __init__(self, moved: tuple[str, bool] | None, *targets: FakeTarget,
                 ready: bool = True) -> None:
        super().__init__(*targets, ready=ready)
        self.moved = moved

    def target_redirect(self, target: FakeTarget) -> tuple[str, bool] | None:
        return self.moved


@pytest.mark.parametrize(("permanent", "status"), [
    (False, LoginStatus.TARGET_MOVED_TEMPORARILY), (True, LoginStatus.TARGET_MOVED_PERMANENTLY)])
def test_redirected_login_answers_target_address(permanent: bool, status: LoginStatus) -> None:
    lg = TargetLogin(RedirectingPolicy(("10.0.0.2:3261", permanent), FakeTarget(TNAME),
                                       ready=False),  # a drained target may be offline too
                     "127.0.0.1", random_bytes=counter_bytes())
    request = req(FIRST)
    with pytest.raises(LoginError) as info:
        lg.receive(request)
    rsp = lg.failure(request, info.value)
    assert rsp.status == status and int(rsp.status) >> 8 == 1
    assert answers(rsp) == [("TargetAddress", "10.0.0.2:3261")]
    assert (rsp.transit, rsp.cont, rsp.final_ok) == (False, False, False)


def test_redirect_is_not_offered_to_strangers_or_discovery() -> None:
    policy = RedirectingPolicy(("10.0.0.2:3260", False), FakeTarget(TNAME))
    stranger = [("InitiatorName", "iqn.2026-11.org.x:other"), *FIRST[1:]]
    lg = TargetLogin(policy, "127.0.0.1", random_bytes=counter_bytes())
    assert fail_status(lg, req(stranger)) == LoginStatus.AUTHORIZATION_FAILURE
    lg = TargetLogin(policy, "127.0.0.1", random_bytes=counter_bytes())
    assert lg.receive(req(DISCOVERY)).status == LoginStatus.SUCCESS
