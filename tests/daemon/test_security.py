"""Refused logins logged once and counted; the per-source CHAP back-off on a fake clock."""

from __future__ import annotations

import pytest

from pytgt.daemon.main import CliError, parse_all_iscsi_options
from pytgt.daemon.security import (
    SECURITY_HEADER,
    AuthBackoff,
    BackoffSettings,
    SecurityMonitor,
)
from pytgt.iscsi.constants import LoginStatus
from pytgt.iscsi.login import LoginFailure

ATTACKER, OTHER = "192.0.2.7", "192.0.2.8"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def auth_failure(address: str = ATTACKER, **kw: object) -> LoginFailure:
    fields: dict[str, object] = dict(
        initiator_name="iqn.2024-01.test:a", target_name="iqn.2024-01.test:t",
        session_type="Normal", status=LoginStatus.AUTHENTICATION_FAILURE,
        reason="CHAP response of 'u1' does not match", chap_user="u1")
    fields.update(kw)
    return LoginFailure(address, **fields)  # type: ignore[arg-type]


def test_delay_starts_at_the_limit_doubles_and_is_capped() -> None:
    clock = Clock()
    b = AuthBackoff(BackoffSettings(limit=3, window=60, initial=1, max_delay=8), clock)
    assert [b.failed(ATTACKER) for _ in range(2)] == [0.0, 0.0]
    assert b.delay_left(ATTACKER) == 0.0
    delays = []
    for _ in range(6):
        delays.append(b.failed(ATTACKER))
        clock.now += delays[-1]  # the attacker retries as soon as it may
    assert delays == [1, 2, 4, 8, 8, 8]
    assert b.delay_left(OTHER) == 0.0  # other sources are not affected


def test_delay_left_counts_down_and_quiet_forgets() -> None:
    clock = Clock()
    b = AuthBackoff(BackoffSettings(limit=2, window=30, initial=4, max_delay=60), clock)
    b.failed(ATTACKER)
    assert b.failed(ATTACKER) == 4
    clock.now += 1
    assert b.delay_left(ATTACKER) == 3 and b.held_off() == 1
    clock.now += 3 + 30  # the delay ran out, then a window of quiet
    assert b.delay_left(ATTACKER) == 0 and b.held_off() == 0
    assert b.failed(ATTACKER) == 0.0  # counting starts again


def test_failures_further_apart_than_the_window_never_block() -> None:
    clock = Clock()
    b = AuthBackoff(BackoffSettings(limit=2, window=10), clock)
    for _ in range(5):
        assert b.failed(ATTACKER) == 0.0
        clock.now += 11


def test_limit_zero_disables() -> None:
    b = AuthBackoff(BackoffSettings(limit=0), Clock())
    assert all(b.failed(ATTACKER) == 0.0 for _ in range(50))
    assert b.delay_left(ATTACKER) == 0.0


def test_monitor_logs_each_refusal_once_without_secrets(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    m = SecurityMonitor(BackoffSettings(limit=2), clock)
    with caplog.at_level("DEBUG", logger="pytgt.security"):
        m.login_failed(auth_failure())
        m.login_failed(auth_failure())  # the second one starts the back-off
        assert not m.login_permitted(ATTACKER, "iqn.2024-01.test:a")
        assert not m.login_permitted(ATTACKER, "iqn.2024-01.test:a")
        m.login_failed(auth_failure(status=LoginStatus.SERVICE_UNAVAILABLE, held_off=True))
        assert m.login_permitted(OTHER, "iqn.2024-01.test:b")
        m.login_failed(auth_failure(OTHER, status=LoginStatus.AUTHORIZATION_FAILURE,
                                    chap_user="", reason="iqn.2024-01.test:b not allowed"))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 4, warnings  # 2 CHAP failures, back-off start, ACL denial
    assert all(ATTACKER in w or OTHER in w for w in warnings)
    assert "initiator iqn.2024-01.test:a" in warnings[0] and "user 'u1'" in warnings[0]
    assert "back-off" in warnings[2] and "1 s" in warnings[2]
    assert "ACL denial" in warnings[3]
    c = m.counters
    assert (c.auth_fail, c.acl_denied, c.backoff_refused, c.control_refused) == (2, 1, 2, 0)
    assert c.backoffs == 1  # pytgt_chap_backoffs_total
    assert c.login_failures == {"authentication_failure": 2, "backoff": 2,
                                "authorization_failure": 1}
    refusal = next(r for r in caplog.records if r.getMessage() == warnings[0])
    assert (refusal.event, refusal.reason, refusal.address) == (  # type: ignore[attr-defined]
        "login_refused", "authentication_failure", ATTACKER)
    table = m.format().splitlines()
    assert table[0] == SECURITY_HEADER and table[1].split() == ["2", "1", "2", "1", "0"]


def test_other_failures_are_neither_logged_nor_counted_here() -> None:
    m = SecurityMonitor()
    m.login_failed(auth_failure(status=LoginStatus.NOT_FOUND))
    # only the by-reason count of every failure (metrics) moves
    assert m.counters == type(m.counters)(login_failures={"not_found": 1})


def test_pytgtd_backoff_options() -> None:
    _p, _o, b = parse_all_iscsi_options(
        ["auth_fail_limit=3,auth_fail_window=20,auth_backoff_initial=0.5,auth_backoff_max=9"])
    assert (b.limit, b.window, b.initial, b.max_delay) == (3, 20.0, 0.5, 9.0)
    assert parse_all_iscsi_options(["auth_fail_limit=0"])[2].limit == 0


@pytest.mark.parametrize("bad", ["auth_fail_limit=-1", "auth_fail_window=0",
                                 "auth_backoff_max=x", "auth_backoff_initial=9,auth_backoff_max=2"])
def test_bad_backoff_options_are_one_line_errors(bad: str) -> None:
    with pytest.raises(CliError) as exc:
        parse_all_iscsi_options([bad])
    assert "\n" not in str(exc.value)


def test_a_login_without_chap_is_counted_but_not_held_off() -> None:
    m = SecurityMonitor(BackoffSettings(limit=1), Clock())
    m.login_failed(auth_failure(chap_user="", reason="security stage skipped"))
    assert m.counters.auth_fail == 1 and m.login_permitted(ATTACKER, "iqn.2024-01.test:a")
    m.login_failed(auth_failure())  # a CHAP response checked and wrong
    assert not m.login_permitted(ATTACKER, "iqn.2024-01.test:a")
