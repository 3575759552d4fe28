"""The iSCSI text key table as data, and the rules that negotiate one key (RFC 7143 6.2, 13).

Each :class:`Key` row names a key as spelled on the wire, its result rule
(:class:`Rule`), RFC default, valid range, where it may be used (:class:`Use`),
who may send it, whether it only applies to Normal sessions, and the
:class:`SessionParams` attribute it sets. The rules do not depend on who offers
(13): the target (iscsi/login.py) and the initiator (initiator/login.py) answer an
offer with :func:`negotiate`, check the answer to their own offer with
:func:`valid_answer` and keep the results in one :class:`SessionParams`.
:func:`target_values` merges an admin's overrides into the target's defaults.
Nothing here knows about PDUs or login stages.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields, replace

MAX_DATA_SEGMENT = (1 << 24) - 1  # 13.12: 512 to 2**24 - 1

# The constants an acceptor may answer instead of a value (6.2).
NOT_UNDERSTOOD = "NotUnderstood"
IRRELEVANT = "Irrelevant"
REJECT = "Reject"
ANSWER_CONSTANTS = frozenset({NOT_UNDERSTOOD, IRRELEVANT, REJECT})


class Rule(enum.Enum):
    """How the result of a key is computed (6.2.2, 6.2.3, 6.2.4)."""

    DECLARATIVE = "declarative"  # the sender states a value; never answered
    MIN = "min"  # numerical, result = min(offer, ours)
    MAX = "max"  # numerical, result = max(offer, ours)
    AND = "and"  # boolean, result = offer AND ours
    OR = "or"  # boolean, result = offer OR ours
    LIST = "list"  # first value of the offer's list that the acceptor supports


class Use(enum.Enum):
    """Where a key may appear (13, "Use:" lines)."""

    LO = "leading only"  # login, leading connection only (session-wide)
    IO = "initialize only"  # login only, per connection
    ALL = "all"  # login and full feature phase
    FFP = "full feature only"  # SendTargets
    SECURITY = "security stage"  # AuthMethod and the authentication keys (12)


class Sender(enum.Flag):
    """Who may send a key ("Senders:" lines)."""

    INITIATOR = enum.auto()
    TARGET = enum.auto()
    BOTH = INITIATOR | TARGET


@dataclass(frozen=True, slots=True)
class Key:
    """One row of the key table."""

    name: str
    rule: Rule
    default: str
    use: Use
    sender: Sender = Sender.BOTH
    low: int = 0
    high: int = 0
    normal_only: bool = False  # "Irrelevant when: SessionType=Discovery"
    attr: str | None = None  # SessionParams attribute this key sets
    values: tuple[str, ...] = ()  # the values a LIST key may take

    @property
    def numeric(self) -> bool:
        return self.rule in (Rule.MIN, Rule.MAX) or (self.rule is Rule.DECLARATIVE
                                                     and self.high > 0)

    @property
    def boolean(self) -> bool:
        return self.rule in (Rule.AND, Rule.OR)


_I, _T = Sender.INITIATOR, Sender.TARGET
_DIGESTS = ("CRC32C", "None")

KEY_TABLE: tuple[Key, ...] = (
    # 12, 13.1 .. 13.6: security, digests, identities
    Key("AuthMethod", Rule.LIST, "None", Use.SECURITY,
        values=("None", "CHAP", "KRB5", "SPKM1", "SPKM2", "SRP")),
    Key("CHAP_A", Rule.DECLARATIVE, "", Use.SECURITY),
    Key("CHAP_I", Rule.DECLARATIVE, "", Use.SECURITY),
    Key("CHAP_C", Rule.DECLARATIVE, "", Use.SECURITY),
    Key("CHAP_N", Rule.DECLARATIVE, "", Use.SECURITY),
    Key("CHAP_R", Rule.DECLARATIVE, "", Use.SECURITY),
    Key("HeaderDigest", Rule.LIST, "None", Use.IO, attr="header_digest", values=_DIGESTS),
    Key("DataDigest", Rule.LIST, "None", Use.IO, attr="data_digest", values=_DIGESTS),
    Key("MaxConnections", Rule.MIN, "1", Use.LO, low=1, high=65535, normal_only=True,
        attr="max_connections"),
    Key("SendTargets", Rule.DECLARATIVE, "", Use.FFP, _I),
    Key("TargetName", Rule.DECLARATIVE, "", Use.ALL, Sender.BOTH),
    Key("InitiatorName", Rule.DECLARATIVE, "", Use.IO, _I),
    Key("TargetAlias", Rule.DECLARATIVE, "", Use.ALL, _T, attr="target_alias"),
    Key("InitiatorAlias", Rule.DECLARATIVE, "", Use.ALL, _I),
    Key("TargetAddress", Rule.DECLARATIVE, "", Use.ALL, _T),
    Key("TargetPortalGroupTag", Rule.DECLARATIVE, "", Use.IO, _T, 0, 65535,
        attr="target_portal_group_tag"),
    # 13.10 .. 13.21: operational keys
    Key("InitialR2T", Rule.OR, "Yes", Use.LO, normal_only=True, attr="initial_r2t"),
    Key("ImmediateData", Rule.AND, "Yes", Use.LO, normal_only=True, attr="immediate_data"),
    Key("MaxRecvDataSegmentLength", Rule.DECLARATIVE, "8192", Use.ALL, Sender.BOTH, 512,
        MAX_DATA_SEGMENT),
    Key("MaxBurstLength", Rule.MIN, "262144", Use.LO, low=512, high=MAX_DATA_SEGMENT,
        normal_only=True, attr="max_burst_length"),
    Key("FirstBurstLength", Rule.MIN, "65536", Use.LO, low=512, high=MAX_DATA_SEGMENT,
        normal_only=True, attr="first_burst_length"),
    Key("DefaultTime2Wait", Rule.MAX, "2", Use.LO, low=0, high=3600,
        attr="default_time2wait"),
    Key("DefaultTime2Retain", Rule.MIN, "20", Use.LO, low=0, high=3600,
        attr="default_time2retain"),
    Key("MaxOutstandingR2T", Rule.MIN, "1", Use.LO, low=1, high=65535, normal_only=True,
        attr="max_outstanding_r2t"),
    Key("DataPDUInOrder", Rule.OR, "Yes", Use.LO, normal_only=True, attr="data_pdu_in_order"),
    Key("DataSequenceInOrder", Rule.OR, "Yes", Use.LO, normal_only=True,
        attr="data_sequence_in_order"),
    Key("ErrorRecoveryLevel", Rule.MIN, "0", Use.LO, low=0, high=2,
        attr="error_recovery_level"),
    Key("SessionType", Rule.DECLARATIVE, "Normal", Use.LO, _I),
    # 13.23, 13.24 (RFC 7143 additions)
    Key("TaskReporting", Rule.LIST, "RFC3720", Use.LO, normal_only=True,
        attr="task_reporting", values=("RFC3720", "ResponseFence", "FastAbort")),
    Key("iSCSIProtocolLevel", Rule.MIN, "1", Use.LO, low=0, high=31, normal_only=True,
        attr="iscsi_protocol_level"),
    # RFC 3720 A.3 markers, obsolete in RFC 7143 (still sent by some initiators)
    Key("OFMarker", Rule.AND, "No", Use.IO),
    Key("IFMarker", Rule.AND, "No", Use.IO),
    Key("OFMarkInt", Rule.DECLARATIVE, "", Use.IO),
    Key("IFMarkInt", Rule.DECLARATIVE, "", Use.IO),
)

KEYS: dict[str, Key] = {k.name: k for k in KEY_TABLE}
KNOWN_KEYS: frozenset[str] = frozenset(KEYS)
SECURITY_KEYS = frozenset(k.name for k in KEY_TABLE if k.use is Use.SECURITY)
IDENTITY_KEYS = frozenset({"InitiatorName", "TargetName", "SessionType"})
MARKER_INTERVALS = frozenset({"OFMarkInt", "IFMarkInt"})
# SessionParams attributes of the leading-only keys: one value for all of a session's
# connections (13, "Use: LO"); a connection joining the session takes them over.
SESSION_WIDE: tuple[str, ...] = tuple(k.attr for k in KEY_TABLE
                                      if k.use is Use.LO and k.attr is not None)

# What this target declares or accepts unless the admin overrides it (target_settings).
# HeaderDigest/DataDigest list what we accept, in no particular preference.
TARGET_DEFAULTS: dict[str, str] = {
    "HeaderDigest": "CRC32C,None",
    "DataDigest": "CRC32C,None",
    "MaxConnections": "1",
    "InitialR2T": "Yes",
    "ImmediateData": "Yes",
    "MaxRecvDataSegmentLength": "262144",
    "MaxBurstLength": "262144",
    "FirstBurstLength": "65536",
    "DefaultTime2Wait": "2",
    "DefaultTime2Retain": "20",
    "MaxOutstandingR2T": "1",
    "DataPDUInOrder": "Yes",
    "DataSequenceInOrder": "Yes",
    "ErrorRecoveryLevel": "0",
    "TaskReporting": "RFC3720",
    "iSCSIProtocolLevel": "1",
    "OFMarker": "No",
    "IFMarker": "No",
}


def parse_number(value: str) -> int:
    """A numerical value (6.1): decimal or ``0x`` hexadecimal; raises ValueError."""
    if value[:2] in ("0x", "0X"):
        digits, base = value[2:], 16
    else:
        digits, base = value, 10
    if not digits or not digits.isascii() or not digits.isalnum() or len(digits) > 16:
        raise ValueError(f"not a number: {value!r}")
    return int(digits, base)


def parse_bool(value: str) -> bool:
    """``Yes``/``No`` exactly (6.1); raises ValueError."""
    if value == "Yes":
        return True
    if value == "No":
        return False
    raise ValueError(f"not a boolean: {value!r}")


def format_bool(flag: bool) -> str:
    return "Yes" if flag else "No"


def check_value(key: Key, value: str) -> int | bool | str:
    """The typed value of ``value`` for ``key``; raises ValueError if invalid or out of range."""
    if key.boolean:
        return parse_bool(value)
    if key.numeric:
        n = parse_number(value)
        if not key.low <= n <= key.high:
            raise ValueError(f"{key.name}={n} outside {key.low}..{key.high}")
        return n
    if key.rule is Rule.LIST:
        items = value.split(",")
        if not all(items):
            raise ValueError(f"empty item in {key.name}={value!r}")
        return value
    return value


def negotiate(key: Key, offer: str, ours: str) -> str:
    """The acceptor's answer to ``key=offer`` given our value ``ours`` (6.2), whichever
    side offered.

    Returns the result value, or ``Reject`` when the offer is not a valid value
    (or, for lists, names nothing we support).
    """
    try:
        theirs = check_value(key, offer)
    except ValueError:
        return REJECT
    if key.rule is Rule.LIST:
        supported = ours.split(",")
        # Unknown list items are skipped; the first one we support wins (6.2.2).
        return next((v for v in str(theirs).split(",") if v in supported), REJECT)
    mine = check_value(key, ours)
    if key.rule is Rule.MIN:
        return str(min(int(theirs), int(mine)))
    if key.rule is Rule.MAX:
        return str(max(int(theirs), int(mine)))
    if key.rule is Rule.AND:
        return format_bool(bool(theirs) and bool(mine))
    if key.rule is Rule.OR:
        return format_bool(bool(theirs) or bool(mine))
    raise ValueError(f"{key.name} is declarative")


def valid_answer(key: Key, offer: str, answer: str) -> bool:
    """Whether ``answer`` obeys the rule of ``key`` as the answer to our ``offer`` (6.2):
    a value the acceptor could have computed, e.g. for MIN no more than we offered, for
    a list one of the values we listed. The answer constants are handled by the caller.
    """
    return answer not in ANSWER_CONSTANTS and negotiate(key, answer, offer) == answer


def accepts(key: Key, ours: str, current: str) -> bool:
    """Whether the value ``current`` (e.g. the RFC default) is one we would also agree to.

    When it is not, the target offers ``ours`` itself so that the result changes.
    """
    if key.rule is Rule.LIST:
        return current in ours.split(",")
    return negotiate(key, current, ours) == current


# Settings that are not wire keys: tgt's cap on the data segments we send (the
# initiator's MaxRecvDataSegmentLength is used only up to this).
MAX_XMIT_SETTING = "MaxXmitDataSegmentLength"
LOCAL_SETTINGS: dict[str, str] = {MAX_XMIT_SETTING: "262144"}


def target_values(settings: dict[str, str]) -> dict[str, str]:
    """Our offered/declared values: :data:`TARGET_DEFAULTS` and :data:`LOCAL_SETTINGS`
    with the admin's overrides. Settings of other layers (``nop_interval``,
    ``MaxQueueCmd``, tgt's iSER keys, ...) are ignored here.

    Raises ValueError naming the first override with an invalid value.
    """
    out = {**TARGET_DEFAULTS, **LOCAL_SETTINGS}
    for name, value in settings.items():
        if name in LOCAL_SETTINGS:
            check_value(KEYS["MaxRecvDataSegmentLength"], value)
        elif name in TARGET_DEFAULTS:
            key = KEYS[name]
            check_value(key, value)
            if key.rule is Rule.LIST and not set(value.split(",")) <= set(key.values):
                raise ValueError(f"{name}={value} names an unsupported value")
        else:
            continue
        out[name] = value
    return out


def settable(name: str) -> bool:
    """Whether :func:`target_values` uses an admin override of ``name``."""
    return name in TARGET_DEFAULTS or name in LOCAL_SETTINGS


@dataclass(slots=True)
class SessionParams:
    """The operational values in force once login completes (RFC defaults until negotiated),
    on either side of the connection.

    ``max_recv_data_segment_length`` is what we declared (the largest data segment we
    accept); ``max_xmit_data_segment_length`` is what the peer declared it receives (on
    the target, capped by its MaxXmitDataSegmentLength setting). ``target_alias`` and
    ``target_portal_group_tag`` are the target's declarations as the initiator saw them.
    ``extra`` holds the results of keys without an attribute (e.g. OFMarker).
    """

    header_digest: bool = False
    data_digest: bool = False
    max_recv_data_segment_length: int = 8192
    max_xmit_data_segment_length: int = 8192
    max_burst_length: int = 262144
    first_burst_length: int = 65536
    immediate_data: bool = True
    initial_r2t: bool = True
    max_outstanding_r2t: int = 1
    max_connections: int = 1
    error_recovery_level: int = 0
    data_pdu_in_order: bool = True
    data_sequence_in_order: bool = True
    default_time2wait: int = 2
    default_time2retain: int = 20
    task_reporting: str = "RFC3720"
    iscsi_protocol_level: int = 1
    target_alias: str = ""
    target_portal_group_tag: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def set(self, key: Key, value: str) -> None:
        """Record the result ``value`` of ``key`` (already validated by :func:`negotiate`)."""
        if key.attr is None:
            self.extra[key.name] = value
        elif key.name in ("HeaderDigest", "DataDigest"):
            setattr(self, key.attr, value == "CRC32C")
        elif key.boolean:
            setattr(self, key.attr, parse_bool(value))
        elif key.numeric:
            setattr(self, key.attr, parse_number(value))
        else:
            setattr(self, key.attr, value)

    def value_of(self, key: Key) -> str:
        """The current value of ``key`` as it would appear on the wire."""
        if key.attr is None:
            return self.extra.get(key.name, key.default)
        v = getattr(self, key.attr)
        if v is None:
            return key.default
        if key.name in ("HeaderDigest", "DataDigest"):
            return "CRC32C" if v else "None"
        if isinstance(v, bool):
            return format_bool(v)
        return str(v)

    def as_dict(self) -> dict[str, object]:
        """The typed values by attribute name (``extra`` aside)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}

    def for_connection(self, conn: SessionParams) -> SessionParams:
        """Session-wide values from ``self`` with the per-connection ones of ``conn``
        (digests and data segment lengths), for a connection joining a session (6.3.6)."""
        return replace(self, header_digest=conn.header_digest, data_digest=conn.data_digest,
                       max_recv_data_segment_length=conn.max_recv_data_segment_length,
                       max_xmit_data_segment_length=conn.max_xmit_data_segment_length,
                       extra=dict(self.extra))
