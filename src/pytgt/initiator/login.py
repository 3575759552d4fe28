"""The initiator side of iSCSI login (RFC 7143 6, 11.12-11.13), sans-I/O.

Theory: the login is a short exchange of Login Requests and Responses that walks the
stages SecurityNegotiation (0) -> LoginOperationalNegotiation (1) -> FullFeaturePhase (3).
:class:`InitiatorLogin` builds each request and consumes each response; it never
touches a socket. Keys are negotiated by the rules of 6.2 (``_KEYS`` table below):
our proposals go out in stage 1, the target's answers are checked against the rule
and applied; keys the target offers on its own are answered by the same rule.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field, fields

from pytgt.initiator import chap
from pytgt.initiator.errors import LoginFailed, NegotiationError, UsageError
from pytgt.initiator.options import InitiatorOptions
from pytgt.iscsi.constants import LoginStage
from pytgt.iscsi.pdu import LoginRequest, LoginResponse
from pytgt.iscsi.text import decode_text, encode_text

SECURITY = LoginStage.SECURITY_NEGOTIATION
OPERATIONAL = LoginStage.LOGIN_OPERATIONAL_NEGOTIATION
FULL_FEATURE = LoginStage.FULL_FEATURE_PHASE
_MAX_EXCHANGES = 32
_SPECIAL = {"Reject", "Irrelevant", "NotUnderstood"}


@dataclass(slots=True)
class Negotiated:
    """Session and connection parameters in effect after login (RFC 7143 13).

    ``max_recv_data_segment_length`` is ours (what the target may send us);
    ``max_xmit_data_segment_length`` is the target's declaration (what we may send).
    ``keys`` holds every key=value the target answered, as on the wire.
    """

    header_digest: bool = False
    data_digest: bool = False
    max_recv_data_segment_length: int = 8192
    max_xmit_data_segment_length: int = 8192
    initial_r2t: bool = True
    immediate_data: bool = True
    max_burst_length: int = 262144
    first_burst_length: int = 65536
    max_outstanding_r2t: int = 1
    max_connections: int = 1
    default_time2wait: int = 2
    default_time2retain: int = 20
    error_recovery_level: int = 0
    data_pdu_in_order: bool = True
    data_sequence_in_order: bool = True
    target_alias: str = ""
    target_portal_group_tag: int | None = None
    keys: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "keys"}

    def inherit(self, session: Negotiated) -> None:
        """Take the session-wide (LO) values of ``session``: a connection joining it
        negotiates none of them and works by the session's (RFC 7143 13, 6.3.6)."""
        for attr in SESSION_WIDE:
            setattr(self, attr, getattr(session, attr))


# name -> (attribute, kind, rule, use) per RFC 7143 13.x; use "LO": leading only, the
# value is session-wide; "IO": negotiated on each connection
_KEYS: dict[str, tuple[str, str, str, str]] = {
    "HeaderDigest": ("header_digest", "digest", "list", "IO"),  # 13.1
    "DataDigest": ("data_digest", "digest", "list", "IO"),
    "MaxConnections": ("max_connections", "int", "min", "LO"),  # 13.2
    "InitialR2T": ("initial_r2t", "bool", "or", "LO"),  # 13.10
    "ImmediateData": ("immediate_data", "bool", "and", "LO"),  # 13.11
    "MaxBurstLength": ("max_burst_length", "int", "min", "LO"),  # 13.13
    "FirstBurstLength": ("first_burst_length", "int", "min", "LO"),  # 13.14
    "DefaultTime2Wait": ("default_time2wait", "int", "max", "LO"),  # 13.15
    "DefaultTime2Retain": ("default_time2retain", "int", "min", "LO"),  # 13.16
    "MaxOutstandingR2T": ("max_outstanding_r2t", "int", "min", "LO"),  # 13.17
    "DataPDUInOrder": ("data_pdu_in_order", "bool", "or", "LO"),  # 13.18
    "DataSequenceInOrder": ("data_sequence_in_order", "bool", "or", "LO"),  # 13.19
    "ErrorRecoveryLevel": ("error_recovery_level", "int", "min", "LO"),  # 13.20
}
SESSION_WIDE = tuple(row[0] for row in _KEYS.values() if row[3] == "LO")


def _fmt(kind: str, value: object) -> str:
    if kind == "bool":
        return "Yes" if value else "No"
    if kind == "digest":
        return "CRC32C" if value else "None"
    return str(value)


def _parse(kind: str, key: str, text: str) -> object:
    try:
        if kind == "bool":
            if text not in ("Yes", "No"):
                raise ValueError(text)
            return text == "Yes"
        if kind == "digest":
            if text not in ("CRC32C", "None"):
                raise ValueError(text)
            return text == "CRC32C"
        return int(text, 0)
    except ValueError:
        raise NegotiationError(f"bad value for {key}: {text!r}") from None


def _combine(rule: str, ours: object, theirs: object) -> object:
    """The result of a negotiation when the target offered and we answer (6.2.2)."""
    if rule in ("min", "max"):
        assert isinstance(ours, int) and isinstance(theirs, int)
        return min(ours, theirs) if rule == "min" else max(ours, theirs)
    if rule == "and":
        return bool(ours) and bool(theirs)
    if rule == "or":
        return bool(ours) or bool(theirs)
    return theirs


def _check_answer(rule: str, key: str, offered: object, answer: object) -> None:
    """The target's answer to our offer must obey the key's rule (6.2.2)."""
    bad = ((rule == "min" and answer > offered)  # type: ignore[operator]
           or (rule == "max" and answer < offered)  # type: ignore[operator]
           or (rule == "and" and answer and not offered)
           or (rule == "or" and offered and not answer)
           or (rule == "list" and answer != offered))
    if bad:
        raise NegotiationError(f"target answered {key}={_fmt_any(answer)} to our offer "
                               f"{_fmt_any(offered)}")


def _fmt_any(v: object) -> str:
    return ("Yes" if v else "No") if isinstance(v, bool) else str(v)


class InitiatorLogin:
    """Login Requests out, Login Responses in; ``done`` once full feature phase is reached.

    Call :meth:`first_request`, then :meth:`receive` for each response; it returns the
    next request or None when the login completed. Raises LoginFailed (status from the
    target) or NegotiationError (the target broke a rule).
    """

    def __init__(self, options: InitiatorOptions, itt: int = 0) -> None:
        self.options = options
        self.itt = itt
        self.stage = SECURITY
        self.negotiated = Negotiated(
            max_recv_data_segment_length=options.max_recv_data_segment_length)
        # a connection that joins a session (TSIH given, 5.3.4) negotiates no LO key
        self.joining = bool(options.tsih) and not options.discovery
        if self.joining:
            if options.session is None:
                raise UsageError("joining a session (tsih) needs the session's parameters "
                                 "(session=: the leading connection's negotiated values)")
            self.negotiated.inherit(options.session)
        self.done = False
        self.tsih = options.tsih
        self.exp_stat_sn = 0
        self.final_response: LoginResponse | None = None
        self._text = bytearray()
        self._offers: dict[str, object] = {}
        self._auth: str | None = None  # None, "None", "CHAP" (chosen by the target)
        self._chap_sent = False
        self._mutual: tuple[int, bytes] | None = None
        self._op_sent = False
        self._exchanges = 0

    # -- requests -----------------------------------------------------------------------
    def first_request(self) -> LoginRequest:
        o = self.options
        pairs = [("InitiatorName", o.initiator_name)]
        if o.initiator_alias:
            pairs.append(("InitiatorAlias", o.initiator_alias))
        pairs.append(("SessionType", "Discovery" if o.discovery else "Normal"))
        if o.target_name is not None:
            pairs.append(("TargetName", o.target_name))
        pairs.append(("AuthMethod", "CHAP,None" if o.chap else "None"))
        return self._request(pairs, transit=not o.chap, csg=SECURITY, nsg=OPERATIONAL)

    def _request(self, pairs: list[tuple[str, str]], *, transit: bool, csg: int,
                 nsg: int) -> LoginRequest:
        o = self.options
        return LoginRequest(self.itt, o.isid, self.tsih, o.cid, o.cmd_sn, self.exp_stat_sn,
                            transit, False, csg, nsg if transit else 0, 0, 0,
                            encode_text(pairs))

    def _operational_offer(self) -> list[tuple[str, str]]:
        o = self.options
        offers: dict[str, object] = {"HeaderDigest": o.header_digest,
                                     "DataDigest": o.data_digest}
        if not o.discovery and not self.joining:  # session-wide keys are leading-only (13)
            offers.update({
                "InitialR2T": o.initial_r2t, "ImmediateData": o.immediate_data,
                "MaxBurstLength": o.max_burst_length,
                "FirstBurstLength": o.first_burst_length,
                "MaxOutstandingR2T": o.max_outstanding_r2t,
                "MaxConnections": o.max_connections,
                "DefaultTime2Wait": o.default_time2wait,
                "DefaultTime2Retain": o.default_time2retain,
                "DataPDUInOrder": True, "DataSequenceInOrder": True,
                "ErrorRecoveryLevel": o.error_recovery_level,
            })
        self._offers = offers
        pairs = [(k, _fmt(_KEYS[k][1], v)) for k, v in offers.items()]
        pairs.append(("MaxRecvDataSegmentLength", str(o.max_recv_data_segment_length)))
        return pairs + list(o.extra_keys)

    # -- responses ----------------------------------------------------------------------
    def receive(self, rsp: LoginResponse) -> LoginRequest | None:
        """Consume one Login Response; the next request, or None when login is done."""
        self._exchanges += 1
        if self._exchanges > _MAX_EXCHANGES:
            raise NegotiationError("login does not converge")
        self.exp_stat_sn = (rsp.stat_sn + 1) & 0xFFFFFFFF
        self._text += rsp.data
        if rsp.status_class != 0:
            pairs = _safe_decode(bytes(self._text))
            redirect = dict(pairs).get("TargetAddress") if rsp.status_class == 1 else None
            raise LoginFailed(rsp.status_class, rsp.status_detail, redirect=redirect)
        if rsp.cont:  # 11.13.2: more text follows; ask for it with an empty request
            return self._request([], transit=False, csg=self.stage, nsg=0)
        pairs = decode_text(bytes(self._text))
        self._text.clear()
        if rsp.tsih:
            self.tsih = rsp.tsih
        if rsp.csg != self.stage:
            raise NegotiationError(f"target answered for stage {rsp.csg}, we are in {self.stage}")
        if self.stage == SECURITY:
            return self._security(rsp, pairs)
        return self._operational(rsp, pairs)

    def _security(self, rsp: LoginResponse, pairs: list[tuple[str, str]]) -> LoginRequest | None:
        keys = dict(pairs)
        self.negotiated.keys.update(keys)
        self._declaratives(keys)
        if "AuthMethod" in keys:
            self._auth = keys["AuthMethod"]
            if self._auth not in ("None", "CHAP") or (self._auth == "CHAP" and
                                                       not self.options.chap):
                raise NegotiationError(f"target chose AuthMethod={self._auth}")
        if "CHAP_N" in keys or "CHAP_R" in keys:
            self._verify_mutual(keys)
        if rsp.transit:
            if self._auth == "CHAP" and not self._chap_sent:
                raise NegotiationError("target left the security stage before CHAP")
            return self._advance(rsp.nsg)
        if self._auth == "CHAP" and "CHAP_C" in keys:
            return self._chap_answer(keys)
        if self._auth == "CHAP" and not self._chap_sent and "CHAP_A" not in keys:
            algs = ",".join(str(a) for a in self.options.chap_algorithms)
            return self._request([("CHAP_A", algs)], transit=False, csg=SECURITY, nsg=0)
        return self._request([], transit=True, csg=SECURITY, nsg=OPERATIONAL)

    def _chap_answer(self, keys: dict[str, str]) -> LoginRequest:
        assert self.options.chap is not None
        try:
            alg = int(keys.get("CHAP_A", "5"))
            ident = int(keys["CHAP_I"], 0)
            challenge = chap.decode_binary(keys["CHAP_C"])
        except (KeyError, ValueError) as exc:
            raise NegotiationError(f"bad CHAP challenge: {exc}") from None
        if alg not in self.options.chap_algorithms or alg not in chap.ALGORITHMS:
            raise NegotiationError(f"target chose CHAP_A={alg}")
        user, secret = self.options.chap
        response = chap.chap_response(alg, ident, secret.encode(), challenge)
        out = [("CHAP_N", user), ("CHAP_R", chap.encode_binary(response))]
        if self.options.mutual_chap:
            self._mutual = chap.new_challenge(alg)
            self._mutual_alg = alg
            out += [("CHAP_I", str(self._mutual[0])),
                    ("CHAP_C", chap.encode_binary(self._mutual[1]))]
        self._chap_sent = True
        return self._request(out, transit=True, csg=SECURITY, nsg=OPERATIONAL)

    def _verify_mutual(self, keys: dict[str, str]) -> None:
        if self.options.mutual_chap is None or self._mutual is None:
            raise NegotiationError("target sent CHAP_N/CHAP_R without being asked")
        user, secret = self.options.mutual_chap
        ident, challenge = self._mutual
        want = chap.chap_response(self._mutual_alg, ident, secret.encode(), challenge)
        try:
            got = chap.decode_binary(keys.get("CHAP_R", ""))
        except ValueError:
            got = b""
        if keys.get("CHAP_N") != user or not hmac.compare_digest(want, got):
            raise NegotiationError("target failed mutual CHAP authentication")
        self._mutual = None

    def _advance(self, nsg: int) -> LoginRequest | None:
        if self.options.mutual_chap and self._mutual is not None:
            raise NegotiationError("target did not answer our mutual CHAP challenge")
        if nsg == FULL_FEATURE:
            self.done = True
            return None
        if nsg != OPERATIONAL:
            raise NegotiationError(f"target moved to stage {nsg}")
        self.stage = OPERATIONAL
        self._op_sent = True
        return self._request(self._operational_offer(), transit=True, csg=OPERATIONAL,
                             nsg=FULL_FEATURE)

    def _operational(self, rsp: LoginResponse, pairs: list[tuple[str, str]]
                     ) -> LoginRequest | None:
        answers: list[tuple[str, str]] = []
        for key, value in pairs:
            self.negotiated.keys[key] = value
            answer = self._apply(key, value)
            if answer is not None:
                answers.append(answer)
        if rsp.transit and rsp.nsg == FULL_FEATURE:
            self.done = True
            return None
        return self._request(answers, transit=True, csg=OPERATIONAL, nsg=FULL_FEATURE)

    def _apply(self, key: str, value: str) -> tuple[str, str] | None:
        """Apply one key from the target; return our answer when it was an offer."""
        if self._declaratives({key: value}):
            return None
        row = _KEYS.get(key)
        if row is None:
            if key in ("TargetName", "SessionType", "InitiatorName", "AuthMethod"):
                return None
            return None if value in _SPECIAL else (key, "NotUnderstood")
        attr, kind, rule, use = row
        if use == "LO" and self.joining:
            raise NegotiationError(f"target sent {key}, a leading-only key, on a "
                                   "connection joining a session (13)")
        if key in self._offers:
            offered = self._offers.pop(key)
            if value in _SPECIAL:
                return None  # the default stays in effect (6.2.1)
            answer = _parse(kind, key, value)
            _check_answer(rule, key, offered, answer)
            setattr(self.negotiated, attr, answer)
            return None
        if value in _SPECIAL:
            return None
        if rule == "list":
            offered_values = [v.strip() for v in value.split(",")]
            pick = next((v for v in offered_values if v in ("None", "CRC32C")), None)
            if pick is None:
                return key, "Reject"
            setattr(self.negotiated, attr, pick == "CRC32C")
            return key, pick
        ours = getattr(self.negotiated, attr)
        result = _combine(rule, ours, _parse(kind, key, value))
        setattr(self.negotiated, attr, result)
        return key, _fmt(kind, result)

    def _declaratives(self, keys: dict[str, str]) -> bool:
        found = False
        for key, value in keys.items():
            if key == "MaxRecvDataSegmentLength" and value not in _SPECIAL:
                n = _parse("int", key, value)
                assert isinstance(n, int)
                if not 512 <= n <= 0xFFFFFF:
                    raise NegotiationError(f"MaxRecvDataSegmentLength={n} out of range")
                self.negotiated.max_xmit_data_segment_length = n
                found = True
            elif key == "TargetAlias":
                self.negotiated.target_alias, found = value, True
            elif key == "TargetPortalGroupTag":
                self.negotiated.target_portal_group_tag = int(value, 0)
                found = True
        return found


def _safe_decode(data: bytes) -> list[tuple[str, str]]:
    try:
        return decode_text(data)
    except Exception:
        return []
