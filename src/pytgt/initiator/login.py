"""The initiator side of iSCSI login (RFC 7143 6, 11.12-11.13), sans-I/O.

Theory: the login is a short exchange of Login Requests and Responses that walks the
stages SecurityNegotiation (0) -> LoginOperationalNegotiation (1) -> FullFeaturePhase (3).
:class:`InitiatorLogin` builds each request and consumes each response; it never
touches a socket. Keys are negotiated with the target's own table and rules
(:mod:`pytgt.iscsi.keys`, 6.2, 13): our proposals go out in stage 1, the target's
answers are checked with ``valid_answer`` and kept in a ``SessionParams``, and keys the
target offers on its own are answered with ``negotiate``, as the target answers ours.
CHAP is :class:`pytgt.iscsi.chap.ChapInitiator`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from pytgt.initiator.errors import LoginFailed, NegotiationError, ProtocolViolation, UsageError
from pytgt.initiator.options import InitiatorOptions
from pytgt.iscsi.chap import ChapInitiator
from pytgt.iscsi.constants import LoginStage
from pytgt.iscsi.errors import ProtocolError
from pytgt.iscsi.keys import (
    ANSWER_CONSTANTS,
    IDENTITY_KEYS,
    IRRELEVANT,
    KEYS,
    MARKER_INTERVALS,
    NOT_UNDERSTOOD,
    REJECT,
    Key,
    Rule,
    Sender,
    SessionParams,
    Use,
    check_value,
    negotiate,
    valid_answer,
)
from pytgt.iscsi.pdu import LoginRequest, LoginResponse
from pytgt.iscsi.text import decode_text, encode_text

SECURITY = LoginStage.SECURITY_NEGOTIATION
OPERATIONAL = LoginStage.LOGIN_OPERATIONAL_NEGOTIATION
FULL_FEATURE = LoginStage.FULL_FEATURE_PHASE
_MAX_EXCHANGES = 32
# What we propose in stage 1: the connection keys, then (leading connection of a
# Normal session) the session-wide ones, in this order on the wire.
_CONNECTION_OFFERS = ("HeaderDigest", "DataDigest")
_SESSION_OFFERS = ("InitialR2T", "ImmediateData", "MaxBurstLength", "FirstBurstLength",
                   "MaxOutstandingR2T", "MaxConnections", "DefaultTime2Wait",
                   "DefaultTime2Retain", "DataPDUInOrder", "DataSequenceInOrder",
                   "ErrorRecoveryLevel")


def _proposal(o: InitiatorOptions) -> SessionParams:
    """The values we ask for, as a parameter record (formatted by the key table)."""
    return SessionParams(
        header_digest=o.header_digest, data_digest=o.data_digest,
        initial_r2t=o.initial_r2t, immediate_data=o.immediate_data,
        max_burst_length=o.max_burst_length, first_burst_length=o.first_burst_length,
        max_outstanding_r2t=o.max_outstanding_r2t, max_connections=o.max_connections,
        default_time2wait=o.default_time2wait, default_time2retain=o.default_time2retain,
        error_recovery_level=o.error_recovery_level)


class InitiatorLogin:
    """Login Requests out, Login Responses in; ``done`` once full feature phase is reached.

    Call :meth:`first_request`, then :meth:`receive` for each response; it returns the
    next request or None when the login completed. Raises LoginFailed (status from the
    target) or NegotiationError (the target broke a rule). :attr:`negotiated` holds the
    values in force, :attr:`peer_keys` every key=value the target sent, as on the wire.
    """

    def __init__(self, options: InitiatorOptions, itt: int = 0, *,
                 random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> None:
        self.options = options
        self.itt = itt
        self.stage = SECURITY
        self.negotiated = SessionParams(
            max_recv_data_segment_length=options.max_recv_data_segment_length)
        # a connection that joins a session (TSIH given, 5.3.4) negotiates no LO key
        self.joining = bool(options.tsih) and not options.discovery
        if self.joining:
            if options.session is None:
                raise UsageError("joining a session (tsih) needs the session's parameters "
                                 "(session=: the leading connection's negotiated values)")
            self.negotiated = options.session.for_connection(self.negotiated)
        self.peer_keys: dict[str, str] = {}
        self.done = False
        self.tsih = options.tsih
        self.exp_stat_sn = 0
        self.final_response: LoginResponse | None = None
        self._text = bytearray()
        self._offers: dict[str, str] = {}  # our proposals not answered yet
        self._ours: dict[str, str] = {}  # what we proposed, to answer a re-offer by
        self._auth: str | None = None  # None, "None", "CHAP" (chosen by the target)
        self._chap: ChapInitiator | None = None
        if options.chap is not None:
            self._chap = ChapInitiator(*options.chap, algorithms=options.chap_algorithms,
                                       mutual=options.mutual_chap, random_bytes=random_bytes)
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
        names: tuple[str, ...] = _CONNECTION_OFFERS
        if not o.discovery and not self.joining:  # session-wide keys are leading-only (13)
            names += _SESSION_OFFERS
        proposal = _proposal(o)
        pairs = [(name, proposal.value_of(KEYS[name])) for name in names]
        pairs.append(("MaxRecvDataSegmentLength", str(o.max_recv_data_segment_length)))
        pairs += o.extra_keys
        self._offers = {name: value for name, value in pairs
                        if name in KEYS and KEYS[name].rule is not Rule.DECLARATIVE}
        self._ours = dict(self._offers)
        return pairs

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
        try:
            pairs = decode_text(bytes(self._text))
        except ProtocolError as exc:
            raise ProtocolViolation(f"login text: {exc}") from None
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
        self.peer_keys.update(keys)
        for name, value in keys.items():
            self._declared(name, value)
        if "AuthMethod" in keys:
            self._auth = keys["AuthMethod"]
            if self._auth not in ("None", "CHAP") or (self._auth == "CHAP" and
                                                       self._chap is None):
                raise NegotiationError(f"target chose AuthMethod={self._auth}")
        if "CHAP_N" in keys or "CHAP_R" in keys:
            self._chap_verify(keys)
        responded = self._chap is not None and self._chap.responded
        if rsp.transit:
            if self._auth == "CHAP" and not responded:
                raise NegotiationError("target left the security stage before CHAP")
            return self._advance(rsp.nsg)
        if self._auth == "CHAP" and self._chap is not None:
            if "CHAP_C" in keys:
                return self._chap_answer(self._chap, keys)
            if not responded and "CHAP_A" not in keys:
                return self._request(self._chap.offer(), transit=False, csg=SECURITY, nsg=0)
        return self._request([], transit=True, csg=SECURITY, nsg=OPERATIONAL)

    def _chap_answer(self, chap: ChapInitiator, keys: dict[str, str]) -> LoginRequest:
        try:
            out = chap.respond(keys)
        except ValueError as exc:
            raise NegotiationError(str(exc)) from None
        return self._request(out, transit=True, csg=SECURITY, nsg=OPERATIONAL)

    def _chap_verify(self, keys: dict[str, str]) -> None:
        if self._chap is None:
            raise NegotiationError("target sent CHAP_N/CHAP_R without being asked")
        try:
            self._chap.verify(keys)
        except ValueError as exc:
            raise NegotiationError(str(exc)) from None

    def _advance(self, nsg: int) -> LoginRequest | None:
        if self._chap is not None and self._chap.responded and not self._chap.done:
            raise NegotiationError("target did not answer our mutual CHAP challenge")
        if nsg == FULL_FEATURE:
            self.done = True
            return None
        if nsg != OPERATIONAL:
            raise NegotiationError(f"target moved to stage {nsg}")
        self.stage = OPERATIONAL
        return self._request(self._operational_offer(), transit=True, csg=OPERATIONAL,
                             nsg=FULL_FEATURE)

    def _operational(self, rsp: LoginResponse, pairs: list[tuple[str, str]]
                     ) -> LoginRequest | None:
        answers: list[tuple[str, str]] = []
        for name, value in pairs:
            self.peer_keys[name] = value
            answer = self._apply(name, value)
            if answer is not None:
                answers.append((name, answer))
        if rsp.transit and rsp.nsg == FULL_FEATURE:
            self.done = True
            return None
        return self._request(answers, transit=True, csg=OPERATIONAL, nsg=FULL_FEATURE)

    def _apply(self, name: str, value: str) -> str | None:
        """Take one key from the target; our answer when it offered one (6.2)."""
        if self._declared(name, value):
            return None
        key = KEYS.get(name)
        if key is None:
            return None if value in ANSWER_CONSTANTS else NOT_UNDERSTOOD
        if name in IDENTITY_KEYS or key.use is Use.SECURITY:
            return None  # echoes of what we sent; nothing to negotiate
        if key.use is Use.LO and self.joining:
            raise NegotiationError(f"target sent {name}, a leading-only key, on a "
                                   "connection joining a session (13)")
        if name in self._offers:
            self._take_answer(key, self._offers.pop(name), value)
            return None
        if value in ANSWER_CONSTANTS:
            return None
        return self._answer(key, value)

    def _take_answer(self, key: Key, offer: str, value: str) -> None:
        """The target's answer to our offer must obey the key's rule (6.2)."""
        if value in ANSWER_CONSTANTS:
            return  # the default stays in effect (6.2.1)
        if not valid_answer(key, offer, value):
            raise NegotiationError(f"target answered {key.name}={value} to our offer {offer}")
        self.negotiated.set(key, value)

    def _answer(self, key: Key, value: str) -> str | None:
        """Our answer to a key the target offers, by the rules the target answers ours."""
        if not key.sender & Sender.TARGET or key.use is Use.FFP:
            return REJECT
        if (key.normal_only and self.options.discovery) or key.name in MARKER_INTERVALS:
            return IRRELEVANT
        if key.rule is Rule.DECLARATIVE:
            return None
        ours = self._ours.get(key.name) or self.negotiated.value_of(key)
        answer = negotiate(key, value, ours)
        if answer != REJECT:
            self.negotiated.set(key, answer)
        return answer

    def _declared(self, name: str, value: str) -> bool:
        """The target's declarations: the longest data segment we may send it (13.12),
        its alias and portal group tag (13.6, 13.9)."""
        if name not in ("MaxRecvDataSegmentLength", "TargetAlias", "TargetPortalGroupTag"):
            return False
        if value in ANSWER_CONSTANTS:
            return False
        key = KEYS[name]
        try:
            typed = check_value(key, value)
        except ValueError as exc:
            raise NegotiationError(f"bad {name} from the target: {exc}") from None
        if name == "MaxRecvDataSegmentLength":
            self.negotiated.max_xmit_data_segment_length = int(typed)
        else:
            self.negotiated.set(key, value)
        return True


def _safe_decode(data: bytes) -> list[tuple[str, str]]:
    try:
        return decode_text(data)
    except Exception:
        return []
