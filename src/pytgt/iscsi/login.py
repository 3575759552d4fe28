"""The target side of the login phase, sans-I/O (RFC 7143 sections 6, 11.12, 11.13, 13).

Theory. A login is a run of Login Request / Login Response exchanges on one new
connection. Each request carries its current stage (CSG) and, with T=1, the next
stage (NSG) the initiator wants; the target answers in the same stage and grants
the move by answering T=1 (never unless the initiator asked). The legal moves are
the rows of :data:`TRANSITIONS`; the first request may start in either login stage.

* Security stage (CSG=0): ``AuthMethod`` and, for CHAP, the exchange in chap.py.
  When the policy requires authentication the stage can only be left after CHAP
  succeeded; an initiator that starts in the operational stage is refused.
* Operational stage (CSG=1): key negotiation with the rules of keys.py; we declare
  our MaxRecvDataSegmentLength in the first response of this stage and offer the
  keys whose RFC default we cannot live with (admin overrides), holding T=0 until
  the initiator has answered them.
* A request with C=1 is answered with an empty response (T=0, C=0) until the last
  piece arrives; a response longer than :data:`MAX_LOGIN_SEGMENT` goes out in pieces
  with C=1, each pulled by an empty request (6.1, 11.12.2).

:class:`TargetLogin` raises :class:`LoginError` carrying the wire status; the
connection turns it into bytes with :meth:`TargetLogin.failure` and closes.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Generic, Protocol

from pytgt.iscsi.chap import ChapTarget
from pytgt.iscsi.constants import ISCSI_VERSION, LoginStage, LoginStatus
from pytgt.iscsi.errors import LoginError, ProtocolError
from pytgt.iscsi.keys import (
    ANSWER_CONSTANTS,
    IDENTITY_KEYS,
    IRRELEVANT,
    KEYS,
    KNOWN_KEYS,
    MARKER_INTERVALS,
    MAX_XMIT_SETTING,
    NOT_UNDERSTOOD,
    REJECT,
    SECURITY_KEYS,
    Key,
    Rule,
    Sender,
    SessionParams,
    Use,
    accepts,
    check_value,
    negotiate,
    parse_number,
    target_values,
    valid_answer,
)
from pytgt.iscsi.pdu import LoginRequest
from pytgt.iscsi.policy import LoginFailure, TargetPolicy, TargetT
from pytgt.iscsi.text import decode_text, encode_text

__all__ = [
    "KNOWN_KEYS", "MAX_LOGIN_SEGMENT", "TRANSITIONS", "LoginFailure", "LoginReply",
    "SessionParams", "TargetLogin", "TargetPolicy", "XmitLimit", "full_feature_answer",
]

SECURITY = LoginStage.SECURITY_NEGOTIATION
OPERATIONAL = LoginStage.LOGIN_OPERATIONAL_NEGOTIATION
FULL_FEATURE = LoginStage.FULL_FEATURE_PHASE

# CSG -> the NSG values a request with T=1 may ask for (6.3, 11.12.3).
TRANSITIONS: dict[int, frozenset[int]] = {
    SECURITY: frozenset({OPERATIONAL, FULL_FEATURE}),
    OPERATIONAL: frozenset({FULL_FEATURE}),
}
MAX_LOGIN_SEGMENT = 8192  # we split longer responses (C bit); 6.1
MAX_LOGIN_TEXT = 64 * 1024  # bound on one request's text across C=1 pieces
SESSION_TYPES = ("Normal", "Discovery")
MAX_NAME_LENGTH = 223  # iSCSI names (RFC 3722 section 6.1, RFC 7143 4.2.7.1)


class XmitLimit(Protocol):
    """Where a connection keeps the initiator's MaxRecvDataSegmentLength."""

    max_xmit_data_segment_length: int


def full_feature_answer(name: str, value: str, limits: XmitLimit) -> str | None:
    """Answer one key of a full feature phase Text Request, SendTargets aside (11.10).

    Only keys with ``Use: ALL`` may be sent now (13): a MaxRecvDataSegmentLength
    declaration updates ``limits``; InitiatorAlias is noted; login-only and
    target-only keys are answered ``Reject``, unknown keys ``NotUnderstood``.
    Returns None when no answer is due.
    """
    key = KEYS.get(name)
    if key is None:
        return NOT_UNDERSTOOD
    if value in ANSWER_CONSTANTS or name == "InitiatorAlias":
        return None
    if name == "MaxRecvDataSegmentLength":
        try:
            limits.max_xmit_data_segment_length = int(check_value(key, value))
        except ValueError:
            return REJECT
        return None
    return REJECT


@dataclass(frozen=True, slots=True)
class LoginReply:
    """What to put in one Login Response: status, flags, stages and text data."""

    status: LoginStatus = LoginStatus.SUCCESS
    transit: bool = False
    cont: bool = False
    csg: int = 0
    nsg: int = 0
    data: bytes = b""

    @property
    def final_ok(self) -> bool:
        """True when this response ends login successfully (T=1, NSG=3)."""
        return (self.status == LoginStatus.SUCCESS and self.transit
                and self.nsg == FULL_FEATURE and not self.cont)


def _initiator_error(message: str) -> LoginError:
    return LoginError(LoginStatus.INITIATOR_ERROR, message)


class TargetLogin(Generic[TargetT]):
    """The login phase of one connection, target side, asking ``policy`` (see
    :class:`~pytgt.iscsi.policy.TargetPolicy`) about targets, ACLs and CHAP.

    Feed each Login Request to :meth:`receive` and send the returned
    :class:`LoginReply`; when ``reply.final_ok``, read :attr:`negotiated` and the
    identity attributes and enter full feature phase. If :meth:`receive` raises
    LoginError, send :meth:`failure` and close the connection.
    """

    def __init__(self, policy: TargetPolicy[TargetT], address: str, *,
                 portal_group_tag: int = 1,
                 random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> None:
        self.policy = policy
        self.address = address
        self.portal_group_tag = portal_group_tag
        self.started = False  # a Login Request has been received
        self.complete = False  # the final (T=1, NSG=3) response was produced
        self.failed = False
        self.stage: int | None = None  # the CSG the next request must carry
        self.initiator_name = ""
        self.initiator_alias = ""
        self.target_name = ""  # "" for discovery
        self.session_type = "Normal"
        self.target: TargetT | None = None
        self.negotiated = SessionParams()
        self.auth_method = "None"
        self._random = random_bytes
        self._held_off = False
        self._identified = False
        self._auth_required = False
        self._chap: ChapTarget | None = None
        self._ours: dict[str, str] = {}
        self._ids: tuple[int, ...] | None = None
        self._text = bytearray()
        self._seen: dict[str, str] = {}
        self._answered: dict[str, str | None] = {}
        self._offered: dict[str, str] = {}
        self._sent_first = False
        self._declared_mrdsl = False
        self._out_chunks: list[bytes] = []
        self._out_final: LoginReply | None = None

    @property
    def leading(self) -> bool:
        """True on the connection that creates the session (TSIH 0)."""
        return self._ids is None or self._ids[1] == 0

    # -- requests -----------------------------------------------------------------
    def receive(self, req: LoginRequest) -> LoginReply:
        """Answer one Login Request; raises LoginError to fail the login."""
        self._check_header(req)
        self.started = True
        if self._out_chunks:
            return self._pull(req)
        self._text += req.data
        if len(self._text) > MAX_LOGIN_TEXT:
            raise _initiator_error("login text too long")
        if req.cont:  # 11.12.2: more text follows; acknowledge with an empty response
            return LoginReply(LoginStatus.SUCCESS, False, False, req.csg, 0)
        keys = self._decode()
        if not self._identified:
            self._identify(req, keys)
        answers = self._answer_all(req, keys)
        answers += self._declarations(req)
        transit = self._may_transit(req)
        if transit and req.nsg == FULL_FEATURE:
            self._check_agreement()
        reply = LoginReply(LoginStatus.SUCCESS, transit, False, req.csg,
                           req.nsg if transit else 0, encode_text(answers))
        self._sent_first = True
        return self._emit(reply)

    def failure(self, req: LoginRequest, err: LoginError) -> LoginReply:
        """The response that fails the login with ``err``'s status (11.13.5)."""
        self.failed = True
        self.policy.login_failed(self.target, LoginFailure(  # the daemon logs and counts
            self.address, self.initiator_name, self.target_name, self.session_type,
            err.status, str(err), self._chap.user if self._chap else "", self._held_off))
        return LoginReply(err.status, False, False, req.csg, req.nsg,
                          encode_text(list(err.keys)) if err.keys else b"")

    def _check_header(self, req: LoginRequest) -> None:
        """Version, stage and identity checks that need no text (11.12)."""
        if self.failed or self.complete:
            raise _initiator_error("login request after the login ended")
        if req.version_min > ISCSI_VERSION or req.version_max < ISCSI_VERSION:
            raise LoginError(LoginStatus.UNSUPPORTED_VERSION)
        ids = (req.isid, req.tsih, req.cid, req.version_max, req.version_min)
        if self._ids is None:
            self._ids = ids
        elif ids != self._ids:
            raise _initiator_error("ISID, TSIH, CID or version changed during login")
        if req.transit and req.cont:
            raise _initiator_error("T and C both set")  # 11.12.2
        if req.csg not in TRANSITIONS:
            raise _initiator_error(f"CSG {req.csg}")
        if self.stage is not None and req.csg != self.stage:
            raise _initiator_error(f"CSG {req.csg} while in stage {self.stage}")
        if req.transit and req.nsg not in TRANSITIONS[req.csg]:
            raise _initiator_error(f"transit from {req.csg} to {req.nsg}")
        self.stage = req.csg

    def _decode(self) -> dict[str, str]:
        try:
            pairs = decode_text(self._text)
        except ProtocolError as exc:
            raise _initiator_error(str(exc)) from None
        finally:
            self._text.clear()
        keys: dict[str, str] = {}
        for name, value in pairs:
            if name in keys:
                raise _initiator_error(f"{name} sent twice")  # 6.2
            keys[name] = value
        return keys

    def _identify(self, req: LoginRequest, keys: dict[str, str]) -> None:
        """The first complete request names the initiator, session type and target (6.3)."""
        name = keys.get("InitiatorName", "")
        if not name:
            raise LoginError(LoginStatus.MISSING_PARAMETER, "no InitiatorName")
        if len(name.encode()) > MAX_NAME_LENGTH:
            raise _initiator_error("InitiatorName too long")
        stype = keys.get("SessionType", "Normal")
        if stype not in SESSION_TYPES:
            raise LoginError(LoginStatus.SESSION_TYPE_NOT_SUPPORTED, f"SessionType={stype}")
        self.initiator_name, self.session_type = name, stype
        if not self.policy.login_permitted(self.address, name):
            self._held_off = True  # 11.13.5: class 3, the initiator may retry later
            raise LoginError(LoginStatus.SERVICE_UNAVAILABLE, "held off after repeated "
                             "authentication failures from this address")
        target: TargetT | None = None
        if stype == "Normal":
            self.target_name = keys.get("TargetName", "")
            if not self.target_name:
                raise LoginError(LoginStatus.MISSING_PARAMETER, "no TargetName")
            target = self.policy.find_target(self.target_name)
            if target is None:
                raise LoginError(LoginStatus.NOT_FOUND, self.target_name)
            if not self.policy.target_allows(target, name, self.address):
                raise LoginError(LoginStatus.AUTHORIZATION_FAILURE, f"{name} not allowed")
            moved = self.policy.target_redirect(target)
            if moved is not None:  # 11.13.5: class 1, TargetAddress tells where (even offline)
                address, permanent = moved
                raise LoginError(LoginStatus.TARGET_MOVED_PERMANENTLY if permanent
                                 else LoginStatus.TARGET_MOVED_TEMPORARILY,
                                 f"redirected to {address}", keys=(("TargetAddress", address),))
        if not self.policy.target_ready(target):
            raise LoginError(LoginStatus.SERVICE_UNAVAILABLE)
        self.target = target
        self._auth_required = self.policy.auth_required(target)
        if self._auth_required and req.csg != SECURITY:
            raise LoginError(LoginStatus.AUTHENTICATION_FAILURE, "security stage skipped")
        try:
            self._ours = target_values(self.policy.target_settings(target))
        except ValueError as exc:
            raise LoginError(LoginStatus.TARGET_ERROR, f"target settings: {exc}") from None
        self._identified = True

    # -- key answers --------------------------------------------------------------
    def _answer_all(self, req: LoginRequest, keys: dict[str, str]) -> list[tuple[str, str]]:
        """Answers in request order; CHAP keys are answered together at the end."""
        answers: list[tuple[str, str]] = []
        chap: dict[str, str] = {}
        first_burst = -1
        for name, value in keys.items():
            if name in SECURITY_KEYS and req.csg != SECURITY:
                raise _initiator_error(f"{name} outside the security stage")
            if name.startswith("CHAP_"):
                chap[name] = value
                continue
            if self._seen.get(name, value) != value:
                raise _initiator_error(f"{name} renegotiated")  # 6.2
            if name in self._answered:  # a resent key (libiscsi repeats some) gets its answer
                answer = self._answered[name]
            elif (name == "FirstBurstLength" and name not in self._offered
                  and value not in ANSWER_CONSTANTS):
                first_burst = len(answers)
                continue
            else:
                answer = self._answer(name, value)
            self._seen[name], self._answered[name] = value, answer
            if answer is not None:
                answers.append((name, answer))
        if first_burst >= 0:
            answer = self._first_burst(keys["FirstBurstLength"])
            self._seen["FirstBurstLength"] = keys["FirstBurstLength"]
            self._answered["FirstBurstLength"] = answer
            answers.insert(first_burst, ("FirstBurstLength", answer))
        p = self.negotiated
        p.first_burst_length = min(p.first_burst_length, p.max_burst_length)  # 13.14
        if chap:
            answers += self._chap_step(chap)
        return answers

    def _answer(self, name: str, value: str) -> str | None:
        """The answer to ``name=value`` (None: declarations get none), per 6.2 and 13."""
        key = KEYS.get(name)
        if key is None:
            return NOT_UNDERSTOOD  # 6.2: unknown keys, X- and X# extensions included
        if name in self._offered:
            self._take_answer(key, value)
            return None
        if value in ANSWER_CONSTANTS:
            return None  # an answer to nothing we offered: nothing to say
        if name in IDENTITY_KEYS:
            self._check_identity(name, value)
            return None
        if name == "InitiatorAlias":
            self.initiator_alias = value
            return None
        if name == "AuthMethod":
            return self._auth_method(value)
        if not key.sender & Sender.INITIATOR or key.use is Use.FFP:
            return REJECT
        if key.use is Use.LO and not self.leading:
            raise _initiator_error(f"{name} is leading-only")  # 13: LO keys
        if (key.normal_only and self.session_type == "Discovery") or name in MARKER_INTERVALS:
            return IRRELEVANT
        if name == "MaxRecvDataSegmentLength":
            return self._declared_by_initiator(key, value)
        answer = negotiate(key, value, self._ours[name])
        if answer != REJECT:
            self.negotiated.set(key, answer)
        return answer

    def _check_identity(self, name: str, value: str) -> None:
        current = {"InitiatorName": self.initiator_name, "SessionType": self.session_type,
                   "TargetName": self.target_name}[name]
        if name == "TargetName" and self.session_type == "Discovery":
            return
        if value != current:
            raise _initiator_error(f"{name} changed during login")

    def _declared_by_initiator(self, key: Key, value: str) -> str | None:
        """MaxRecvDataSegmentLength from the initiator: what we may send it (13.12)."""
        try:
            declared = int(check_value(key, value))
        except ValueError:
            return REJECT
        cap = parse_number(self._ours[MAX_XMIT_SETTING])
        self.negotiated.max_xmit_data_segment_length = min(declared, cap)
        return None

    def _first_burst(self, value: str) -> str:
        """FirstBurstLength: Irrelevant without unsolicited data, never above
        MaxBurstLength (13.14)."""
        if not self.leading:
            raise _initiator_error("FirstBurstLength is leading-only")
        p = self.negotiated
        if self.session_type == "Discovery" or (p.initial_r2t and not p.immediate_data):
            return IRRELEVANT
        key = KEYS["FirstBurstLength"]
        ours = str(min(parse_number(self._ours[key.name]), p.max_burst_length))
        answer = negotiate(key, value, ours)
        if answer != REJECT:
            p.set(key, answer)
        return answer

    def _take_answer(self, key: Key, value: str) -> None:
        """The initiator's answer to a key we offered (6.2)."""
        offer = self._offered.pop(key.name)
        if value in ANSWER_CONSTANTS:
            return  # the default stays
        if not valid_answer(key, offer, value):
            raise _initiator_error(f"{key.name}={value} is no valid answer to {offer}")
        self.negotiated.set(key, value)

    # -- security -------------------------------------------------------------------
    def _auth_method(self, value: str) -> str:
        """AuthMethod (12.1): CHAP when the policy requires it, else None."""
        ours = "CHAP" if self._auth_required else "None"
        answer = negotiate(KEYS["AuthMethod"], value, ours)
        if answer == REJECT:
            raise LoginError(LoginStatus.AUTHENTICATION_FAILURE, f"AuthMethod={value}")
        self.auth_method = answer
        if answer == "CHAP":
            self._chap = ChapTarget(self._chap_secret, self._chap_mutual,
                                    random_bytes=self._random)
        return answer

    def _chap_secret(self, user: str) -> str | None:
        return self.policy.chap_secret(self.target, user)

    def _chap_mutual(self) -> tuple[str, str] | None:
        return self.policy.chap_mutual_account(self.target)

    def _chap_step(self, keys: dict[str, str]) -> list[tuple[str, str]]:
        if self._chap is None:
            raise _initiator_error("CHAP keys without AuthMethod=CHAP")
        return self._chap.step(keys)

    # -- transit and our own keys ---------------------------------------------------------
    def _may_transit(self, req: LoginRequest) -> bool:
        """Whether to grant the initiator's T=1 now (6.3); raises if it never can be."""
        if req.csg == SECURITY:
            if self._chap is not None and not self._chap.done:
                return False  # the CHAP exchange goes on
            if self._auth_required and (self._chap is None or not self._chap.done):
                if req.transit:
                    raise LoginError(LoginStatus.AUTHENTICATION_FAILURE, "not authenticated")
                return False
        if not req.transit:
            return False
        return not (req.csg == OPERATIONAL and self._offered)

    def _declarations(self, req: LoginRequest) -> list[tuple[str, str]]:
        """Keys we state without being asked: TargetAlias and TargetPortalGroupTag in the
        first response (13.9), our MaxRecvDataSegmentLength and offers in the operational
        stage (13.12, 6.2)."""
        out: list[tuple[str, str]] = []
        if not self._sent_first and self.session_type == "Normal":
            alias = self.policy.target_alias(self.target)
            if alias:
                out.append(("TargetAlias", alias))
            out.append(("TargetPortalGroupTag", str(self.portal_group_tag)))
            self.negotiated.target_alias = alias  # as the initiator records them
            self.negotiated.target_portal_group_tag = self.portal_group_tag
        if req.csg != OPERATIONAL:
            return out
        if not self._declared_mrdsl:
            value = self._ours["MaxRecvDataSegmentLength"]
            self.negotiated.max_recv_data_segment_length = parse_number(value)
            self._declared_mrdsl = True
            out.append(("MaxRecvDataSegmentLength", value))
        return out + self._offers()

    def _offers(self) -> list[tuple[str, str]]:
        """Offer the keys whose current value (the RFC default) we do not accept."""
        out: list[tuple[str, str]] = []
        for name, ours in self._ours.items():
            key = self._offerable(name)
            if key is not None and not accepts(key, ours, self.negotiated.value_of(key)):
                self._offered[name] = ours
                out.append((name, ours))
        return out

    def _offerable(self, name: str) -> Key | None:
        """The key ``name`` if it is negotiable here and not yet sent by either side."""
        key = KEYS.get(name)
        if (key is None or key.rule is Rule.DECLARATIVE or name in self._seen
                or name in self._offered or (key.use is Use.LO and not self.leading)):
            return None
        if key.normal_only and self.session_type == "Discovery":
            return None
        return key

    def _check_agreement(self) -> None:
        """Before full feature phase: every list key must hold a value we support, e.g.
        no digest when the admin requires CRC32C and the initiator rejected it (6.2.2)."""
        for name, ours in self._ours.items():
            key = KEYS.get(name)
            if key is None or key.rule is not Rule.LIST:
                continue
            if key.normal_only and self.session_type == "Discovery":
                continue
            if self.negotiated.value_of(key) not in ours.split(","):
                raise _initiator_error(f"no acceptable {name} (we need {ours})")

    # -- long responses -------------------------------------------------------------
    def _emit(self, reply: LoginReply) -> LoginReply:
        """Send ``reply``, in MAX_LOGIN_SEGMENT pieces with C=1 when it is long."""
        data = reply.data
        if len(data) <= MAX_LOGIN_SEGMENT:
            return self._commit(reply)
        self._out_chunks = [data[i : i + MAX_LOGIN_SEGMENT]
                            for i in range(MAX_LOGIN_SEGMENT, len(data), MAX_LOGIN_SEGMENT)]
        self._out_final = reply
        return LoginReply(LoginStatus.SUCCESS, False, True, reply.csg, 0,
                          data[:MAX_LOGIN_SEGMENT])

    def _pull(self, req: LoginRequest) -> LoginReply:
        """The initiator asks for the next piece with an empty request (11.13.2)."""
        if req.data or req.cont:
            raise _initiator_error("text sent while a response was continuing")
        chunk = self._out_chunks.pop(0)
        assert self._out_final is not None
        if self._out_chunks:
            return LoginReply(LoginStatus.SUCCESS, False, True, req.csg, 0, chunk)
        final, self._out_final = replace(self._out_final, data=chunk), None
        return self._commit(final)

    def _commit(self, reply: LoginReply) -> LoginReply:
        if reply.transit:
            self.stage = reply.nsg
        self.complete = reply.final_ok
        return reply
