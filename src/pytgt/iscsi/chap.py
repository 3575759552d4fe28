"""CHAP for both ends of a login, RFC 7143 12.1.3 and RFC 1994.

The exchange, after ``AuthMethod=CHAP`` was agreed::

    I -> T  CHAP_A=<A1,A2,...>
    T -> I  CHAP_A=<A> CHAP_I=<I> CHAP_C=<C>
    I -> T  CHAP_N=<N> CHAP_R=<R> [CHAP_I=<I'> CHAP_C=<C'>]   (the last two ask for mutual CHAP)
    T -> I  [CHAP_N=<N'> CHAP_R=<R'>]

with ``R = H(one octet I || secret || C)``. :class:`ChapTarget` is the target's half,
:class:`ChapInitiator` the initiator's; both read binary values with
:func:`decode_binary` (``0x`` hex or ``0b`` base64, 1 to 1024 bytes) and identifiers
with :func:`parse_identifier`. Algorithms live in one registry (:data:`ALGORITHMS`,
IANA PPP authentication algorithm codes). Randomness is injected (``random_bytes``)
so tests are byte-exact; comparisons are constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from pytgt.iscsi.constants import LoginStatus
from pytgt.iscsi.errors import LoginError
from pytgt.iscsi.keys import parse_number


@dataclass(frozen=True, slots=True)
class ChapAlgorithm:
    """One CHAP_A value: its code and the hashlib name."""

    code: int
    hash_name: str

    @property
    def digest_size(self) -> int:
        return hashlib.new(self.hash_name).digest_size

    def response(self, ident: int, secret: bytes, challenge: bytes) -> bytes:
        """``H(ident || secret || challenge)`` (RFC 1994 4.1)."""
        return hashlib.new(self.hash_name, bytes([ident]) + secret + challenge).digest()


ALGORITHMS: dict[int, ChapAlgorithm] = {
    a.code: a for a in (
        ChapAlgorithm(5, "md5"),  # RFC 1994, the only one RFC 7143 requires
        ChapAlgorithm(6, "sha1"),
        ChapAlgorithm(7, "sha256"),
        ChapAlgorithm(8, "sha3_256"),
    )
}
MAX_BINARY = 1024  # 12.1.3: challenges/responses are at most 1024 bytes


def encode_binary(data: bytes) -> str:
    """A binary value as ``0x`` hex (6.1, binary-value)."""
    return "0x" + data.hex()


def decode_binary(value: str) -> bytes:
    """``0x`` hex or ``0b`` base64 (6.1); raises ValueError."""
    prefix, body = value[:2].lower(), value[2:]
    try:
        if prefix == "0x":
            data = bytes.fromhex(body if len(body) % 2 == 0 else "0" + body)
        elif prefix == "0b":
            data = base64.b64decode(body, validate=True)
        else:
            raise ValueError("not a binary value (0x or 0b prefix)")  # never echo it: logged
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None
    if not data or len(data) > MAX_BINARY:
        raise ValueError("binary value empty or too long")
    return data


def parse_identifier(value: str) -> int:
    """A CHAP_I value: a number 0..255 (6.1, RFC 1994 4.1); raises ValueError."""
    ident = parse_number(value)
    if not 0 <= ident <= 255:
        raise ValueError("CHAP_I out of range")
    return ident


def parse_algorithm(value: str) -> ChapAlgorithm | None:
    """The registered algorithm a CHAP_A item names, or None (never int() of thousands
    of digits: that raises ValueError past sys.get_int_max_str_digits())."""
    if not (value.isascii() and value.isdigit()) or len(value) > 10:
        return None
    return ALGORITHMS.get(int(value))


def new_challenge(algo: ChapAlgorithm,
                  random_bytes: Callable[[int], bytes]) -> tuple[int, bytes]:
    """A fresh (CHAP_I, CHAP_C): at least 16 bytes, as long as the digest (12.1.3)."""
    return random_bytes(1)[0], random_bytes(max(16, algo.digest_size))


def _fail(message: str) -> LoginError:
    return LoginError(LoginStatus.AUTHENTICATION_FAILURE, message)


class ChapTarget:
    """The target's half of one CHAP exchange.

    Call :meth:`step` with the CHAP keys of each Login Request; it returns the keys
    to answer and raises LoginError (AUTHENTICATION_FAILURE, or INITIATOR_ERROR for
    a malformed exchange). :attr:`done` turns True once the initiator is verified.
    ``secret_for(user)`` gives the initiator's secret; ``mutual()`` gives our own
    ``(user, secret)`` for mutual CHAP, or None when we have none.
    """

    def __init__(self, secret_for: Callable[[str], str | None],
                 mutual: Callable[[], tuple[str, str] | None] = lambda: None, *,
                 random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> None:
        self._secret_for = secret_for
        self._mutual = mutual
        self._random = random_bytes
        self.algorithm: ChapAlgorithm | None = None
        self._ident = 0
        self._challenge = b""
        self.user = ""
        self.done = False

    def step(self, keys: dict[str, str]) -> list[tuple[str, str]]:
        """Answer the CHAP keys of one request (12.1.3)."""
        if self.done:
            raise LoginError(LoginStatus.INITIATOR_ERROR, "CHAP keys after authentication")
        if self.algorithm is None:
            return self._challenge_keys(keys)
        return self._verify(keys)

    def _challenge_keys(self, keys: dict[str, str]) -> list[tuple[str, str]]:
        if set(keys) != {"CHAP_A"}:
            raise LoginError(LoginStatus.INITIATOR_ERROR, "expected CHAP_A alone")
        for item in keys["CHAP_A"].split(","):
            algo = parse_algorithm(item)
            if algo is not None:
                break
        else:
            raise _fail(f"no supported CHAP_A in {keys['CHAP_A'][:40]!r}")
        self.algorithm = algo
        self._ident, self._challenge = new_challenge(algo, self._random)
        return [("CHAP_A", str(algo.code)), ("CHAP_I", str(self._ident)),
                ("CHAP_C", encode_binary(self._challenge))]

    def _verify(self, keys: dict[str, str]) -> list[tuple[str, str]]:
        algo = self.algorithm
        assert algo is not None
        extra = set(keys) - {"CHAP_N", "CHAP_R", "CHAP_I", "CHAP_C"}
        if "CHAP_N" not in keys or "CHAP_R" not in keys or extra:
            raise LoginError(LoginStatus.INITIATOR_ERROR, "expected CHAP_N and CHAP_R")
        if ("CHAP_I" in keys) != ("CHAP_C" in keys):
            raise LoginError(LoginStatus.INITIATOR_ERROR, "CHAP_I and CHAP_C go together")
        self.user = keys["CHAP_N"]
        secret = self._secret_for(self.user)
        try:
            got = decode_binary(keys["CHAP_R"])
        except ValueError as exc:
            raise _fail(f"bad CHAP_R: {exc}") from None
        if secret is None:
            raise _fail(f"no CHAP secret for {self.user!r}")
        want = algo.response(self._ident, secret.encode(), self._challenge)
        if not hmac.compare_digest(got, want):
            raise _fail(f"CHAP response of {self.user!r} does not match")
        answer = self._mutual_answer(keys, secret) if "CHAP_C" in keys else []
        self.done = True
        return answer

    def _mutual_answer(self, keys: dict[str, str], their_secret: str) -> list[tuple[str, str]]:
        """Prove ourselves to the initiator (mutual CHAP)."""
        assert self.algorithm is not None
        ident_s, challenge_s = keys["CHAP_I"], keys["CHAP_C"]
        try:
            ident = parse_identifier(ident_s)
            challenge = decode_binary(challenge_s)
        except ValueError as exc:
            raise _fail(f"bad mutual CHAP challenge: {exc}") from None
        if hmac.compare_digest(challenge, self._challenge):
            raise _fail("reflected CHAP challenge")  # 12.1.3: never answer our own challenge
        ours = self._mutual()
        if ours is None:
            raise _fail("mutual CHAP asked but no target account is set")
        user, secret = ours
        if hmac.compare_digest(secret.encode(), their_secret.encode()):
            raise _fail("mutual CHAP with the same secret both ways")
        r = self.algorithm.response(ident, secret.encode(), challenge)
        return [("CHAP_N", user), ("CHAP_R", encode_binary(r))]


class ChapInitiator:
    """The initiator's half of one CHAP exchange, with ``mutual`` = the target's
    ``(user, secret)`` when the target must prove itself too.

    Send :meth:`offer`; give the target's CHAP_A/CHAP_I/CHAP_C to :meth:`respond` and
    send what it returns; with mutual CHAP give the target's CHAP_N/CHAP_R to
    :meth:`verify`. Both raise ValueError for a malformed or wrong value, on the same
    decoding and bounds as :class:`ChapTarget`. :attr:`done` turns True once nothing
    is left to check.
    """

    def __init__(self, user: str, secret: str, *, algorithms: tuple[int, ...] = (5,),
                 mutual: tuple[str, str] | None = None,
                 random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> None:
        self.user = user
        self._secret = secret
        self.algorithms = algorithms
        self.mutual = mutual
        self._random = random_bytes
        self.algorithm: ChapAlgorithm | None = None
        self._ours: tuple[int, bytes] | None = None  # our mutual (CHAP_I, CHAP_C)
        self.responded = False
        self.done = False

    def offer(self) -> list[tuple[str, str]]:
        """The CHAP_A list of our algorithms, in our order of preference."""
        return [("CHAP_A", ",".join(str(a) for a in self.algorithms))]

    def respond(self, keys: dict[str, str]) -> list[tuple[str, str]]:
        """CHAP_N and CHAP_R for the target's challenge (plus our own when mutual)."""
        chosen = keys.get("CHAP_A", "")
        algo = parse_algorithm(chosen)
        if algo is None or algo.code not in self.algorithms:
            raise ValueError(f"target chose CHAP_A={chosen[:40]!r}")
        if "CHAP_I" not in keys or "CHAP_C" not in keys:
            raise ValueError("bad CHAP challenge: CHAP_I and CHAP_C expected")
        try:
            ident = parse_identifier(keys["CHAP_I"])
            challenge = decode_binary(keys["CHAP_C"])
        except ValueError as exc:
            raise ValueError(f"bad CHAP challenge: {exc}") from None
        self.algorithm = algo
        r = algo.response(ident, self._secret.encode(), challenge)
        out = [("CHAP_N", self.user), ("CHAP_R", encode_binary(r))]
        if self.mutual is not None:
            self._ours = new_challenge(algo, self._random)
            out += [("CHAP_I", str(self._ours[0])), ("CHAP_C", encode_binary(self._ours[1]))]
        self.responded = True
        self.done = self.mutual is None
        return out

    def verify(self, keys: dict[str, str]) -> None:
        """Check the target's CHAP_N and CHAP_R against our mutual challenge."""
        if self.mutual is None or self._ours is None or self.algorithm is None:
            raise ValueError("target sent CHAP_N/CHAP_R without being asked")
        user, secret = self.mutual
        try:
            got = decode_binary(keys.get("CHAP_R", ""))
        except ValueError as exc:
            raise ValueError(f"bad CHAP_R from the target: {exc}") from None
        want = self.algorithm.response(self._ours[0], secret.encode(), self._ours[1])
        if keys.get("CHAP_N") != user or not hmac.compare_digest(got, want):
            raise ValueError("target failed mutual CHAP authentication")
        self._ours = None
        self.done = True
