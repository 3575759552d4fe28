"""The key table and the one-key negotiation rules (RFC 7143 6.2, 13)."""

from __future__ import annotations

import pytest

from pytgt.iscsi.keys import (
    KEYS,
    KNOWN_KEYS,
    LOCAL_SETTINGS,
    REJECT,
    TARGET_DEFAULTS,
    Rule,
    SessionParams,
    Use,
    accepts,
    check_value,
    negotiate,
    parse_bool,
    parse_number,
    settable,
    target_values,
)


@pytest.mark.parametrize(("text", "value"), [
    ("0", 0), ("8192", 8192), ("0x2000", 8192), ("0X2000", 8192), ("16777215", 2**24 - 1),
])
def test_parse_number(text: str, value: int) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize("text", ["", "0x", "-1", "+5", "1.5", "12a", " 1", "0b10", "١٢"])
def test_parse_number_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_number(text)


@pytest.mark.parametrize(("text", "value"), [("Yes", True), ("No", False)])
def test_parse_bool(text: str, value: bool) -> None:
    assert parse_bool(text) is value


@pytest.mark.parametrize("text", ["yes", "no", "YES", "True", "1", ""])
def test_parse_bool_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_bool(text)


# (key, initiator offer, our value, answer) -- 6.2.2 lists, 6.2.4 numbers and booleans
NEGOTIATIONS = [
    ("HeaderDigest", "CRC32C,None", "CRC32C,None", "CRC32C"),
    ("HeaderDigest", "None,CRC32C", "CRC32C,None", "None"),
    ("HeaderDigest", "CRC32C", "None", REJECT),
    ("HeaderDigest", "FOO,None", "CRC32C,None", "None"),
    ("DataDigest", "None", "CRC32C", REJECT),
    ("DataDigest", "CRC32C,", "CRC32C,None", REJECT),  # empty list item
    ("MaxConnections", "8", "1", "1"),
    ("MaxConnections", "0", "1", REJECT),
    ("MaxConnections", "65536", "1", REJECT),
    ("InitialR2T", "No", "Yes", "Yes"),  # OR
    ("InitialR2T", "No", "No", "No"),
    ("InitialR2T", "Yes", "No", "Yes"),
    ("ImmediateData", "Yes", "Yes", "Yes"),  # AND
    ("ImmediateData", "Yes", "No", "No"),
    ("ImmediateData", "No", "Yes", "No"),
    ("ImmediateData", "yes", "Yes", REJECT),
    ("MaxBurstLength", "1048576", "262144", "262144"),  # min: clipped
    ("MaxBurstLength", "16384", "262144", "16384"),
    ("MaxBurstLength", "0x4000", "262144", "16384"),
    ("MaxBurstLength", "511", "262144", REJECT),
    ("MaxBurstLength", "16777216", "262144", REJECT),
    ("MaxBurstLength", "big", "262144", REJECT),
    ("FirstBurstLength", "262144", "65536", "65536"),
    ("DefaultTime2Wait", "0", "2", "2"),  # max
    ("DefaultTime2Wait", "10", "2", "10"),
    ("DefaultTime2Wait", "3601", "2", REJECT),
    ("DefaultTime2Retain", "0", "20", "0"),  # min
    ("DefaultTime2Retain", "60", "20", "20"),
    ("MaxOutstandingR2T", "16", "1", "1"),
    ("DataPDUInOrder", "No", "Yes", "Yes"),  # OR (13.19)
    ("DataSequenceInOrder", "No", "Yes", "Yes"),  # OR (13.20)
    ("DataSequenceInOrder", "No", "No", "No"),
    ("ErrorRecoveryLevel", "2", "0", "0"),
    ("ErrorRecoveryLevel", "3", "0", REJECT),
    ("TaskReporting", "ResponseFence,RFC3720", "RFC3720", "RFC3720"),
    ("TaskReporting", "FastAbort", "RFC3720", REJECT),
    ("iSCSIProtocolLevel", "2", "1", "1"),
    ("iSCSIProtocolLevel", "0", "1", "0"),
    ("iSCSIProtocolLevel", "32", "1", REJECT),
    ("OFMarker", "Yes", "No", "No"),
    ("IFMarker", "No", "No", "No"),
    ("AuthMethod", "CHAP,None", "None", "None"),
    ("AuthMethod", "KRB5,CHAP", "CHAP", "CHAP"),
    ("AuthMethod", "None", "CHAP", REJECT),
]


@pytest.mark.parametrize(("name", "offer", "ours", "answer"), NEGOTIATIONS)
def test_negotiate(name: str, offer: str, ours: str, answer: str) -> None:
    assert negotiate(KEYS[name], offer, ours) == answer


def test_negotiate_declarative_is_an_error() -> None:
    with pytest.raises(ValueError):
        negotiate(KEYS["MaxRecvDataSegmentLength"], "8192", "8192")


def test_table_is_consistent() -> None:
    for key in KEYS.values():
        if key.rule in (Rule.MIN, Rule.MAX):
            assert key.low <= parse_number(key.default) <= key.high, key.name
        if key.rule in (Rule.AND, Rule.OR):
            parse_bool(key.default)
        if key.attr is not None:
            assert hasattr(SessionParams(), key.attr), key.name
            assert SessionParams().value_of(key) == key.default, key.name
    for name, value in TARGET_DEFAULTS.items():
        check_value(KEYS[name], value)
    assert {"SendTargets", "TargetAddress", "X-com.example"} & KNOWN_KEYS == {
        "SendTargets", "TargetAddress"}
    assert KEYS["MaxBurstLength"].use is Use.LO
    assert KEYS["HeaderDigest"].use is Use.IO


@pytest.mark.parametrize(("name", "ours", "current", "ok"), [
    ("MaxBurstLength", "262144", "262144", True),
    ("MaxBurstLength", "65536", "262144", False),  # we must offer the smaller value
    ("MaxBurstLength", "1048576", "262144", True),  # a min key can't grow unasked
    ("ImmediateData", "No", "Yes", False),
    ("InitialR2T", "No", "Yes", True),
    ("DefaultTime2Wait", "5", "2", False),
    ("HeaderDigest", "CRC32C", "None", False),
    ("HeaderDigest", "CRC32C,None", "None", True),
])
def test_accepts(name: str, ours: str, current: str, ok: bool) -> None:
    assert accepts(KEYS[name], ours, current) is ok


def test_target_values_overrides() -> None:
    got = target_values({"MaxRecvDataSegmentLength": "65536", "HeaderDigest": "CRC32C,None",
                         "ImmediateData": "No"})
    assert got["MaxRecvDataSegmentLength"] == "65536"
    assert got["ImmediateData"] == "No"
    assert got["MaxBurstLength"] == "262144"
    assert target_values({}) == {**TARGET_DEFAULTS, **LOCAL_SETTINGS}


def test_target_values_ignores_other_layers_settings() -> None:
    # what pytgtadm --op update accepts for a target (tgt's list) but login does not use
    other = {"nop_interval": "5", "MaxQueueCmd": "64", "OFMarkInt": "Reject",
             "RDMAExtensions": "Yes", "TargetRecvDataSegmentLength": "8192"}
    assert target_values(other) == {**TARGET_DEFAULTS, **LOCAL_SETTINGS}
    assert not settable("nop_interval") and settable("MaxXmitDataSegmentLength")
    assert target_values({"MaxXmitDataSegmentLength": "4096"})[
        "MaxXmitDataSegmentLength"] == "4096"


@pytest.mark.parametrize("settings", [
    {"MaxBurstLength": "10"}, {"ImmediateData": "maybe"}, {"HeaderDigest": "MD5"},
    {"MaxXmitDataSegmentLength": "1"},
])
def test_target_values_rejects(settings: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        target_values(settings)


@pytest.mark.parametrize(("name", "value", "attr", "result"), [
    ("HeaderDigest", "CRC32C", "header_digest", True),
    ("DataDigest", "None", "data_digest", False),
    ("ImmediateData", "No", "immediate_data", False),
    ("MaxBurstLength", "0x4000", "max_burst_length", 16384),
    ("TaskReporting", "RFC3720", "task_reporting", "RFC3720"),
])
def test_session_params_set(name: str, value: str, attr: str, result: object) -> None:
    p = SessionParams()
    p.set(KEYS[name], value)
    assert getattr(p, attr) == result


def test_session_params_for_connection() -> None:
    session = SessionParams(max_burst_length=4096, header_digest=False)
    conn = SessionParams(header_digest=True, max_xmit_data_segment_length=1024,
                         max_burst_length=999)
    merged = session.for_connection(conn)
    assert merged.max_burst_length == 4096
    assert merged.header_digest is True
    assert merged.max_xmit_data_segment_length == 1024
