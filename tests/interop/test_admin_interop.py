"""Access control as libiscsi's tools meet it: CHAP through URLs
(``iscsi://user%secret@host:port/iqn/lun``), ACLs by initiator name (``iscsi-inq -i``)
and by address (only ever 127.0.0.1 is contacted; 10.0.0.0/8 is a rule, not a peer)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import RunningDaemon
from tests.interop.conftest import make_target, need

USER, SECRET = "chapuser", "chap-secret-2026"


def inq(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    need("iscsi-inq")
    return subprocess.run(["iscsi-inq", *args, url], capture_output=True, text=True,
                          timeout=60)


def adm(d: RunningDaemon, *args: str) -> None:
    d.adm("--lld", "iscsi", *args)


def with_credentials(url: str, user: str, secret: str | None) -> str:
    host = url.removeprefix("iscsi://")
    cred = user if secret is None else f"{user}%{secret}"
    return f"iscsi://{cred}@{host}"


def ok(res: subprocess.CompletedProcess[str]) -> bool:
    return res.returncode == 0 and "DIRECT_ACCESS" in res.stdout.upper().replace(" ", "_")


@pytest.fixture(scope="module")
def chap_url(daemon: RunningDaemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = make_target(daemon, 21, "iqn.2026-11.org.pytgt:chap",
                      tmp_path_factory.mktemp("chap") / "lun.img", 1 << 20)
    adm(daemon, "--op", "new", "--mode", "account", "--user", USER, "--password", SECRET)
    adm(daemon, "--op", "bind", "--mode", "account", "--tid", "21", "--user", USER)
    yield url


def test_chap_right_secret_logs_in(chap_url: str) -> None:
    res = inq(with_credentials(chap_url, USER, SECRET))
    assert ok(res), res.stdout + res.stderr


@pytest.mark.parametrize("user,secret", [(USER, "wrong-secret-2026"), ("nobody", SECRET),
                                         (USER, SECRET[:-1])])
def test_chap_wrong_credentials_are_refused(chap_url: str, user: str, secret: str) -> None:
    res = inq(with_credentials(chap_url, user, secret))
    assert res.returncode != 0, res.stdout
    assert "DIRECT_ACCESS" not in res.stdout.upper().replace(" ", "_")


def test_chap_required_when_an_account_is_bound(chap_url: str) -> None:
    res = inq(chap_url)
    assert res.returncode != 0, res.stdout


def test_chap_failures_are_counted(daemon: RunningDaemon, chap_url: str) -> None:
    inq(with_credentials(chap_url, USER, "wrong-secret-2026"))
    out = daemon.adm("--lld", "iscsi", "--op", "stat", "--mode", "target", "--tid", "21").stdout
    lines = out.splitlines()
    row = lines[lines.index("tgt commands login_ok login_fail auth_fail acl_denied") + 1]
    assert int(row.split()[4]) >= 1


# -- ACL by initiator name ---------------------------------------------------------------
@pytest.fixture(scope="module")
def name_url(daemon: RunningDaemon, tmp_path_factory: pytest.TempPathFactory) -> str:
    url = make_target(daemon, 22, "iqn.2026-11.org.pytgt:byname",
                      tmp_path_factory.mktemp("byname") / "lun.img", 1 << 20)
    adm(daemon, "--op", "bind", "--mode", "target", "--tid", "22",
        "-Q", "iqn.2026-11.org.example:allowed")
    return url


def test_acl_by_initiator_name(name_url: str) -> None:
    allowed = inq(name_url, "-i", "iqn.2026-11.org.example:allowed")
    assert ok(allowed), allowed.stdout + allowed.stderr
    refused = inq(name_url, "-i", "iqn.2026-11.org.example:stranger")
    assert refused.returncode != 0, refused.stdout


def test_discovery_hides_target_from_stranger(daemon: RunningDaemon, name_url: str) -> None:
    need("iscsi-ls")
    portal = f"iscsi://{daemon.host}:{daemon.port}/"
    seen = subprocess.run(["iscsi-ls", "-i", "iqn.2026-11.org.example:allowed", portal],
                          capture_output=True, text=True, timeout=60).stdout
    hidden = subprocess.run(["iscsi-ls", "-i", "iqn.2026-11.org.example:stranger", portal],
                            capture_output=True, text=True, timeout=60).stdout
    assert "iqn.2026-11.org.pytgt:byname" in seen
    assert "iqn.2026-11.org.pytgt:byname" not in hidden


# -- ACL by address --------------------------------------------------------------------------
@pytest.fixture
def addr_target(daemon: RunningDaemon, tmp_path: Path) -> Iterator[str]:
    url = make_target(daemon, 23, "iqn.2026-11.org.pytgt:byaddr", tmp_path / "lun.img",
                      1 << 20)
    adm(daemon, "--op", "unbind", "--mode", "target", "--tid", "23", "-I", "ALL")
    try:
        yield url
    finally:
        adm(daemon, "--op", "delete", "--mode", "target", "--tid", "23", "--force")


def test_acl_by_address(daemon: RunningDaemon, addr_target: str) -> None:
    adm(daemon, "--op", "bind", "--mode", "target", "--tid", "23", "-I", "10.0.0.0/8")
    refused = inq(addr_target)
    assert refused.returncode != 0, refused.stdout
    adm(daemon, "--op", "bind", "--mode", "target", "--tid", "23", "-I", "127.0.0.1/32")
    allowed = inq(addr_target)
    assert ok(allowed), allowed.stdout + allowed.stderr
    adm(daemon, "--op", "unbind", "--mode", "target", "--tid", "23", "-I", "127.0.0.1/32")
    assert inq(addr_target).returncode != 0
    out = daemon.adm("--lld", "iscsi", "--op", "stat", "--mode", "target", "--tid", "23").stdout
    row = out.splitlines()[-1].split()
    assert row[0] == "23" and int(row[5]) == 2  # two ACL denials


def test_no_acl_refuses_everyone(addr_target: str) -> None:
    assert inq(addr_target).returncode != 0


# -- mutual CHAP (libiscsi's target_user / target_password URL arguments) -------------------
def test_mutual_chap(daemon: RunningDaemon, tmp_path: Path) -> None:
    url = make_target(daemon, 24, "iqn.2026-11.org.pytgt:mutual", tmp_path / "lun.img",
                      1 << 20)
    try:
        adm(daemon, "--op", "new", "--mode", "account", "--user", "in24",
            "--password", "in-secret-24x")
        adm(daemon, "--op", "new", "--mode", "account", "--user", "out24",
            "--password", "out-secret-24x")
        adm(daemon, "--op", "bind", "--mode", "account", "--tid", "24", "--user", "in24")
        adm(daemon, "--op", "bind", "--mode", "account", "--tid", "24", "--user", "out24",
            "--outgoing")
        base = with_credentials(url, "in24", "in-secret-24x")
        good = inq(f"{base}?target_user=out24&target_password=out-secret-24x")
        assert ok(good), good.stdout + good.stderr
        bad = inq(f"{base}?target_user=out24&target_password=not-the-secret")
        assert bad.returncode != 0, bad.stdout  # the target proved the wrong secret
    finally:
        adm(daemon, "--op", "delete", "--mode", "target", "--tid", "24", "--force")
