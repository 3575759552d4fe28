"""pytgtd's --iscsi options (tgtd's names, plus login_timeout)."""

from __future__ import annotations

import pytest

from pytgt.daemon.main import CliError, parse_all_iscsi_options


def test_tgtd_portal_and_nop_options() -> None:
    portals, opts, _backoff = parse_all_iscsi_options(
        ["portal=127.0.0.1:3261,portal=[::1]:3262,nop_interval=5,nop_count=3,login_timeout=2.5"])
    assert portals == [("127.0.0.1", 3261), ("::1", 3262)]
    assert (opts.nop_interval, opts.nop_count, opts.login_timeout) == (5.0, 3, 2.5)


def test_tmf_wait_timeout_option() -> None:
    _portals, opts, _backoff = parse_all_iscsi_options(["tmf_wait_timeout=2.5"])
    assert opts.tmf_wait_timeout == 2.5
    with pytest.raises(CliError):
        parse_all_iscsi_options(["tmf_wait_timeout=0"])


@pytest.mark.parametrize("bad", ["login_timeout=0", "login_timeout=x", "login_timeout=nan",
                                 "login_timeout=inf", "auth_fail_window=nan",
                                 "auth_backoff_initial=-1", "nop_count=x", "nop_count=-1",
                                 "bogus=1", "portal"])
def test_bad_options_are_one_line_errors(bad: str) -> None:
    with pytest.raises(CliError):
        parse_all_iscsi_options([bad])


def test_tpgt_option() -> None:
    """The gateway's portal group tag: 1 by default, 1-65535 (RFC 7143 13.9)."""
    assert parse_all_iscsi_options([])[1].tpgt == 1
    assert parse_all_iscsi_options(["tpgt=2"])[1].tpgt == 2
    for bad in ("tpgt=0", "tpgt=65536", "tpgt=x"):
        with pytest.raises(CliError):
            parse_all_iscsi_options([bad])
