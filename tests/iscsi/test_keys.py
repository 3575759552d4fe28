"""The key table and the one-key negotiation rules (RFC 7143 6.2, 13)."""

from __future__ import annotations

import pytest

from pytgt.iscsi.keys import (
    ANSWER_CONSTANTS,
    KEY_TABLE,
    KEYS,
    KNOWN_KEYS,
    LOCAL_SETTINGS,
    REJECT,
    SESSION_WIDE,
    TARGET_DEFAULTS,
    Key,
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
    valid_answer,
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


# -- one table for both sides (13: the rules answer an offer from either side) ----------
NEGOTIABLE = [k for k in KEY_TABLE if k.rule is not Rule.DECLARATIVE]


def samples(key: Key) -> list[str]:
    """Valid values of ``key``: both booleans, range ends and default, lists."""
    if key.boolean:
        return ["Yes", "No"]
    if key.numeric:
        return sorted({str(key.low), str(key.high), key.default, str((key.low + key.high) // 2)})
    return [*key.values, ",".join(key.values), ",".join(reversed(key.values))]


@pytest.mark.parametrize("key", NEGOTIABLE, ids=lambda k: k.name)
def test_the_offerer_accepts_every_answer_the_acceptor_computes(key: Key) -> None:
    """Whoever offers, the acceptor's ``negotiate`` gives an answer that the offerer's
    ``valid_answer`` takes; for numbers and booleans the result does not depend on
    which side offered (6.2.4); a list answer is the offerer's first choice (6.2.2)."""
    for offer in samples(key):
        for ours in samples(key):
            answer = negotiate(key, offer, ours)
            if key.rule is Rule.LIST:
                supported = [v for v in offer.split(",") if v in ours.split(",")]
                assert answer == (supported[0] if supported else REJECT)
                if answer == REJECT:
                    continue
            else:
                assert answer == negotiate(key, ours, offer), (offer, ours)
            assert valid_answer(key, offer, answer), (offer, ours, answer)


@pytest.mark.parametrize("key", NEGOTIABLE, ids=lambda k: k.name)
def test_an_answer_outside_the_rule_or_range_is_refused(key: Key) -> None:
    bad = ["", "bogus", *ANSWER_CONSTANTS]
    if key.numeric:
        bad += [str(key.high + 1), "-1"]
    if key.rule is Rule.LIST:
        bad.append(",".join(key.values))  # an answer names one value
    for offer in samples(key):
        for answer in bad:
            assert not valid_answer(key, offer, answer), (offer, answer)


@pytest.mark.parametrize(("name", "offer", "answer", "ok"), [
    ("MaxBurstLength", "65536", "16384", True),  # MIN: no more than offered
    ("MaxBurstLength", "65536", "131072", False),
    ("DefaultTime2Wait", "2", "5", True),  # MAX: no less than offered
    ("DefaultTime2Wait", "2", "1", False),
    ("ImmediateData", "No", "Yes", False),  # AND: cannot turn on what we turned off
    ("ImmediateData", "Yes", "No", True),
    ("InitialR2T", "Yes", "No", False),  # OR: cannot turn off what we turned on
    ("InitialR2T", "No", "Yes", True),
    ("HeaderDigest", "None", "CRC32C", False),  # LIST: one of the values offered
    ("HeaderDigest", "CRC32C,None", "None", True),
])
def test_valid_answer(name: str, offer: str, answer: str, ok: bool) -> None:
    assert valid_answer(KEYS[name], offer, answer) is ok


def test_session_wide_are_the_leading_only_keys() -> None:
    assert set(SESSION_WIDE) == {
        "max_connections", "initial_r2t", "immediate_data", "max_burst_length",
        "first_burst_length", "default_time2wait", "default_time2retain",
        "max_outstanding_r2t", "data_pdu_in_order", "data_sequence_in_order",
        "error_recovery_level", "task_reporting", "iscsi_protocol_level"}


def test_session_params_records_the_targets_declarations() -> None:
    p = SessionParams()
    p.set(KEYS["TargetAlias"], "disk one")
    p.set(KEYS["TargetPortalGroupTag"], "0x10")
    assert (p.target_alias, p.target_portal_group_tag) == ("disk one", 16)
    assert p.value_of(KEYS["TargetPortalGroupTag"]) == "16"
    assert p.as_dict()["target_alias"] == "disk one" and "extra" not in p.as_dict()
