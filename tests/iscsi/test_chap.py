"""The CHAP module both sides use: ChapTarget against ChapInitiator, and the same
decoding and bounds for every binary value either side reads (RFC 7143 12.1.3, 6.1).
The initiator's login over it: tests/initiator/test_login.py."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import pytest

from pytgt.iscsi.chap import ALGORITHMS, ChapInitiator, ChapTarget, decode_binary
from pytgt.iscsi.constants import LoginStatus
from pytgt.iscsi.errors import LoginError

USER, SECRET = "alice", "secret-12345"
TARGET_USER, TARGET_SECRET = "tgt", "tsecret-1234"


def counter(start: int) -> Callable[[int], bytes]:
    """Deterministic 'random' bytes start, start+1, ..."""
    state = [start]

    def take(n: int) -> bytes:
        out = bytes((state[0] + i) & 0xFF for i in range(n))
        state[0] += n
        return out
    return take


def pair(mutual: bool, algorithms: tuple[int, ...] = (5,)) -> tuple[ChapTarget, ChapInitiator]:
    target = ChapTarget({USER: SECRET}.get, lambda: (TARGET_USER, TARGET_SECRET),
                        random_bytes=counter(1))
    initiator = ChapInitiator(USER, SECRET, algorithms=algorithms,
                              mutual=(TARGET_USER, TARGET_SECRET) if mutual else None,
                              random_bytes=counter(0x80))
    return target, initiator


@pytest.mark.parametrize("code", sorted(ALGORITHMS))
@pytest.mark.parametrize("mutual", [False, True])
def test_target_and_initiator_halves_authenticate_each_other(code: int, mutual: bool) -> None:
    target, initiator = pair(mutual, (code,))
    challenge = target.step(dict(initiator.offer()))
    algo = ALGORITHMS[code]
    assert challenge == [("CHAP_A", str(code)), ("CHAP_I", "1"),
                         ("CHAP_C", "0x" + bytes(range(2, 2 + max(16, algo.digest_size))).hex())]
    response = dict(initiator.respond(dict(challenge)))
    want = hashlib.new(algo.hash_name, bytes([1]) + SECRET.encode()
                       + bytes(range(2, 2 + max(16, algo.digest_size)))).hexdigest()
    assert response["CHAP_N"] == USER and response["CHAP_R"] == "0x" + want
    assert initiator.done is not mutual
    proof = target.step(response)
    assert target.done and target.user == USER
    if mutual:
        assert [k for k, _ in proof] == ["CHAP_N", "CHAP_R"]
        initiator.verify(dict(proof))
    else:
        assert proof == []
    assert initiator.done


# Binary values neither side accepts (6.1: 0x hex or 0b base64, 12.1.3: at most 1024 bytes)
MALFORMED = ["0x", "0b", "zz", "0xzz", "0b!!!!", "0bQU=JD", "0x" + "00" * 1025,
             "0b" + base64.b64encode(bytes(1025)).decode(), "1234"]


@pytest.mark.parametrize("value", MALFORMED)
def test_malformed_binary_values(value: str) -> None:
    with pytest.raises(ValueError):
        decode_binary(value)


@pytest.mark.parametrize("value", MALFORMED)
def test_the_target_rejects_a_malformed_chap_r(value: str) -> None:
    target, initiator = pair(False)
    target.step(dict(initiator.offer()))
    with pytest.raises(LoginError, match="bad CHAP_R") as info:
        target.step({"CHAP_N": USER, "CHAP_R": value})
    assert info.value.status == LoginStatus.AUTHENTICATION_FAILURE


@pytest.mark.parametrize("value", MALFORMED)
def test_the_initiator_rejects_a_malformed_chap_c_the_same_way(value: str) -> None:
    _, initiator = pair(False)
    with pytest.raises(ValueError, match="bad CHAP challenge"):
        initiator.respond({"CHAP_A": "5", "CHAP_I": "1", "CHAP_C": value})
    assert not initiator.responded


@pytest.mark.parametrize("value", MALFORMED)
def test_the_initiator_rejects_a_malformed_mutual_chap_r(value: str) -> None:
    target, initiator = pair(True)
    initiator.respond(dict(target.step(dict(initiator.offer()))))
    with pytest.raises(ValueError, match="bad CHAP_R"):
        initiator.verify({"CHAP_N": TARGET_USER, "CHAP_R": value})
    assert not initiator.done


@pytest.mark.parametrize("ident", ["256", "-1", "x", "", "0x100"])
def test_chap_i_outside_one_octet_is_refused_by_both(ident: str) -> None:
    _, initiator = pair(False)
    with pytest.raises(ValueError, match="bad CHAP challenge"):
        initiator.respond({"CHAP_A": "5", "CHAP_I": ident, "CHAP_C": "0x" + "11" * 16})
    target, initiator = pair(True)
    response = dict(initiator.respond(dict(target.step(dict(initiator.offer())))))
    with pytest.raises(LoginError, match="bad mutual CHAP challenge"):
        target.step({**response, "CHAP_I": ident})


@pytest.mark.parametrize("offer", ["9" * 5000, "0" * 4301 + "5", "5" + "0" * 20])
def test_a_huge_chap_a_number_is_an_unsupported_algorithm(offer: str) -> None:
    """int() of more than 4300 digits raises ValueError: it escaped ChapTarget.step
    instead of failing the login with AUTHENTICATION_FAILURE."""
    with pytest.raises(LoginError, match="no supported CHAP_A") as info:
        ChapTarget(lambda user: None).step({"CHAP_A": offer})
    assert info.value.status == LoginStatus.AUTHENTICATION_FAILURE
    _, initiator = pair(False)
    with pytest.raises(ValueError, match="target chose CHAP_A"):
        initiator.respond({"CHAP_A": offer, "CHAP_I": "1", "CHAP_C": "0x" + "11" * 16})


@pytest.mark.parametrize("keys", [
    {"CHAP_A": "7", "CHAP_I": "1", "CHAP_C": "0x" + "11" * 16},  # not in our list (5)
    {"CHAP_A": "99", "CHAP_I": "1", "CHAP_C": "0x" + "11" * 16},
    {"CHAP_A": "\u00b2", "CHAP_I": "1", "CHAP_C": "0x" + "11" * 16},
    {"CHAP_I": "1", "CHAP_C": "0x" + "11" * 16},
])
def test_the_initiator_refuses_an_algorithm_it_did_not_offer(keys: dict[str, str]) -> None:
    _, initiator = pair(False)
    with pytest.raises(ValueError, match="CHAP_A"):
        initiator.respond(keys)

