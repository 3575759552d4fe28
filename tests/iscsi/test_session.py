"""CmdSN window and ordering (RFC 7143 4.2.2.1), serial arithmetic (RFC 1982)."""

from __future__ import annotations

import pytest

from pytgt.iscsi.serial import sn_add, sn_in_window, sn_le, sn_lt
from pytgt.iscsi.session import Session, SessionTable


def make(exp: int = 10, window: int = 4) -> Session:
    return Session(1, 0x1, "iqn.i", "Normal", "iqn.t", exp_cmd_sn=exp, window=window)


@pytest.mark.parametrize(("a", "b", "lt"), [
    (1, 2, True), (2, 1, False), (0xFFFFFFFF, 0, True), (0, 0xFFFFFFFF, False),
    (5, 5, False), (0x7FFFFFFF, 0xFFFFFFFE, True),
])
def test_serial_less_than(a: int, b: int, lt: bool) -> None:
    assert sn_lt(a, b) is lt
    assert sn_le(a, a)


def test_sn_add_wraps() -> None:
    assert sn_add(0xFFFFFFFF, 2) == 1
    assert sn_in_window(0, 0xFFFFFFFE, 2)
    assert not sn_in_window(3, 0xFFFFFFFE, 2)


def test_in_order_delivery_runs_immediately() -> None:
    s, seen = make(), []
    assert s.order(10, lambda: seen.append(10))
    assert seen == [10] and s.exp_cmd_sn == 11 and s.max_cmd_sn == 14


def test_gap_holds_successors_until_filled() -> None:
    s, seen = make(), []
    assert s.order(12, lambda: seen.append(12))
    assert s.order(11, lambda: seen.append(11))
    assert seen == [] and s.max_cmd_sn == 11  # window shrinks while commands wait
    assert s.order(10, lambda: seen.append(10))
    assert seen == [10, 11, 12] and s.exp_cmd_sn == 13


@pytest.mark.parametrize("cmd_sn", [9, 14, 15, 0x80000000])
def test_outside_window_is_ignored(cmd_sn: int) -> None:
    s, seen = make(), []
    assert not s.order(cmd_sn, lambda: seen.append(cmd_sn))
    assert seen == [] and s.exp_cmd_sn == 10


def test_duplicate_held_cmd_sn_ignored() -> None:
    s, seen = make(), []
    assert s.order(12, lambda: seen.append("a"))
    assert not s.order(12, lambda: seen.append("b"))
    s.order(10, lambda: None)
    s.order(11, lambda: None)
    assert seen == ["a"]


def test_window_wraps_at_2_32() -> None:
    s, seen = make(exp=0xFFFFFFFF), []
    s.order(0, lambda: seen.append(0))
    s.order(0xFFFFFFFF, lambda: seen.append(0xFFFFFFFF))
    assert seen == [0xFFFFFFFF, 0] and s.exp_cmd_sn == 1


def test_session_table_reinstatement_lookup_and_tsih() -> None:
    table = SessionTable()
    s = Session(table.allocate_tsih(), 0xABC, "IQN.I", "Normal", "iqn.T")
    table.add(s)
    assert s.tsih == 1 and table.allocate_tsih() == 2
    assert table.find("iqn.i", 0xABC, "iqn.t") is s
    assert table.find("iqn.i", 0xABD, "iqn.t") is None
    table.remove(s)
    assert table.find("iqn.i", 0xABC, "iqn.t") is None
