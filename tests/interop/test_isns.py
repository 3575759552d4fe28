"""iSNS (RFC 4171) against Debian's open-isns: ``isnsd`` on 127.0.0.1, ``isnsadm --query``.

pytgtd registers its entity, portal and targets; a target created or deleted appears or
disappears; the server's ESI is answered (else isnsd drops the portal after ESIRetries);
an SCN reaches the target; stopping the daemon deregisters everything.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import RunningDaemon, start_daemon

IQN1 = "iqn.2026-12.org.pytgt:isns1"
IQN2 = "iqn.2026-12.org.pytgt:isns2"


@dataclass
class IsnsServer:
    proc: subprocess.Popen[bytes]
    port: int
    client_conf: Path

    def query(self, *attrs: str) -> str:
        res = subprocess.run(["isnsadm", "-c", str(self.client_conf), "--query", *attrs],
                             capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stderr
        return res.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_isnsd(tmp: Path, port: int = 0) -> IsnsServer:
    (tmp / "db").mkdir(parents=True)
    port = port or _free_port()
    (tmp / "isnsd.conf").write_text(
        f"BindAddress = 127.0.0.1:{port}\nServerAddress = 127.0.0.1:{port}\n"
        f"Security = 0\nPIDFile = {tmp}/isnsd.pid\nControlSocket = {tmp}/control\n"
        f"Database = {tmp}/db\nDefaultDiscoveryDomain = 1\nSourceName = isns.pytgt.test\n"
        "ESIMinInterval = 1s\nESIRetries = 2\n")
    (tmp / "isnsadm.conf").write_text(
        f"ServerAddress = 127.0.0.1:{port}\nSecurity = 0\n"
        "SourceName = iqn.2026-12.org.pytgt:isnsadm\n")
    log = open(tmp / "isnsd.log", "wb")  # noqa: SIM115 - the server's for its lifetime
    proc = subprocess.Popen(["isnsd", "-f", "-4", "-c", str(tmp / "isnsd.conf"), "-d", "esi"],
                            stdout=log, stderr=subprocess.STDOUT)
    server = IsnsServer(proc, port, tmp / "isnsadm.conf")
    _until(lambda: _listening(port), "isnsd did not listen")
    return server


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _until(cond: Callable[[], bool], message: str, timeout: float = 20.0) -> None:
    """Poll a condition on the server's state until it holds (bounded)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.05)


@pytest.fixture
def isnsd(tmp_path: Path) -> Iterator[IsnsServer]:
    if shutil.which("isnsd") is None or shutil.which("isnsadm") is None:
        pytest.fail("isnsd/isnsadm are not installed (apt-get install open-isns-server "
                    "open-isns-utils)")
    server = _start_isnsd(tmp_path / "isns")
    try:
        yield server
    finally:
        server.proc.send_signal(signal.SIGTERM)  # ours, by PID
        try:
            server.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(timeout=10)


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    path = tmp_path / "pytgtd"
    path.mkdir()
    return path


def _new_target(d: RunningDaemon, tid: int, iqn: str) -> None:
    d.adm("--lld", "iscsi", "--op", "new", "--mode", "target", "--tid", str(tid), "-T", iqn)


def test_targets_and_portals_registered_updated_and_removed(isnsd: IsnsServer,
                                                            tmp: Path) -> None:
    d = start_daemon(tmp, extra=("--iscsi", f"isns=On,isns_addr=127.0.0.1,"
                                            f"isns_port={isnsd.port},isns_esi_interval=1"))
    try:
        _new_target(d, 1, IQN1)
        _new_target(d, 2, IQN2)
        shown = d.adm("--op", "show", "--mode", "system").stdout
        assert (f"iSNS:\n    iSNS=On\n    iSNSServerIP=127.0.0.1\n"
                f"    iSNSServerPort={isnsd.port}\n    iSNSAccessControl=Off\n") in shown
        _until(lambda: IQN2 in isnsd.query("iscsi-name"), "targets not registered")
        nodes = isnsd.query("iscsi-name")
        assert IQN1 in nodes and "iSCSI node type = Target" in nodes
        portals = isnsd.query("portal-addr")
        assert "Portal IP address = 127.0.0.1" in portals
        assert f"Portal TCP/UDP port = {d.port}/tcp" in portals
        assert "Portal group tag = 1" in nodes
        # ESI: isnsd asks every second and drops a portal after two missed answers
        _until(lambda: any("ESI answered" in line for line in d.log), "no ESI answered")
        _until(lambda: (Path(isnsd.client_conf.parent) / "isnsd.log").read_text()
               .count("Good ESI response") >= 3, "ESI responses not accepted")
        assert f"{d.port}/tcp" in isnsd.query("portal-addr")
        d.adm("--lld", "iscsi", "--op", "delete", "--mode", "target", "--tid", "1")
        _until(lambda: IQN1 not in isnsd.query("iscsi-name"), "target 1 not deregistered")
        assert IQN2 in isnsd.query("iscsi-name")
        # the deregistration of target 1 is an SCN for target 2 (same discovery domain)
        _until(lambda: any("SCN for " + IQN2 in line for line in d.log), "no SCN received")
    finally:
        assert d.stop() == 0, "".join(d.log[-20:])
    assert "Object list empty" in isnsd.query("iscsi-name")
    assert "Object list empty" in isnsd.query("portal-addr")
    assert any("deregistered entity" in line for line in d.log)


def test_a_server_that_comes_later_gets_the_registration(tmp_path: Path, tmp: Path) -> None:
    """pytgtd starts without its iSNS server, keeps trying, registers once it answers."""
    port = _free_port()
    d = start_daemon(tmp, extra=("--iscsi", f"isns=On,isns_addr=127.0.0.1,isns_port={port}"))
    try:
        _new_target(d, 1, IQN1)
        _until(lambda: any("isns: 127.0.0.1" in line for line in d.log), "no retry logged")
        server = _start_isnsd(tmp_path / "late", port)
        try:
            _until(lambda: IQN1 in server.query("iscsi-name"), "not registered", 30.0)
        finally:
            server.proc.send_signal(signal.SIGTERM)
            server.proc.wait(timeout=10)
    finally:
        assert d.stop() == 0, "".join(d.log[-20:])


def test_tgtadm_switches_it_on_at_run_time(isnsd: IsnsServer, tmp: Path) -> None:
    """tgt's way: --op update --mode sys --name iSNSServerIP/iSNSServerPort/iSNS."""
    d = start_daemon(tmp)
    try:
        _new_target(d, 1, IQN1)
        sys_update = ("--op", "update", "--mode", "sys", "--name")
        d.adm(*sys_update, "iSNSServerIP", "-v", "127.0.0.1")
        d.adm(*sys_update, "iSNSServerPort", "-v", str(isnsd.port))
        assert "Object list empty" in isnsd.query("iscsi-name")
        d.adm(*sys_update, "iSNS", "-v", "On")
        _until(lambda: IQN1 in isnsd.query("iscsi-name"), "not registered")
        assert "    iSNS=On\n" in d.adm("--op", "show", "--mode", "sys").stdout
        res = d.adm(*sys_update, "iSNS", "-v", "Off", check=False)
        assert res.returncode == 22  # as tgt: once on, it stays on
        res = d.adm(*sys_update, "iSNSServerPort", "-v", "1", check=False)
        assert res.returncode == 22
    finally:
        assert d.stop() == 0, "".join(d.log[-20:])
    assert "Object list empty" in isnsd.query("iscsi-name")


def _discovered(d: RunningDaemon, initiator: str) -> str:
    res = subprocess.run(["iscsi-ls", "-i", initiator, f"iscsi://127.0.0.1:{d.port}/"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_isns_access_control(isnsd: IsnsServer, tmp: Path) -> None:
    """isns_ac=On: a target admits only initiators its discovery domains show it."""
    ini1, ini2 = "iqn.2026-12.org.pytgt:ini1", "iqn.2026-12.org.pytgt:ini2"
    d = start_daemon(tmp, extra=("--iscsi", f"isns=On,isns_addr=127.0.0.1,"
                                            f"isns_port={isnsd.port},isns_ac=On"))
    try:
        _new_target(d, 1, IQN1)
        d.adm("--lld", "iscsi", "--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")
        _until(lambda: IQN1 in isnsd.query("iscsi-name"), "target not registered")
        assert IQN1 not in _discovered(d, ini1)
        conf = isnsd.client_conf.with_name("ini1.conf")
        conf.write_text(isnsd.client_conf.read_text().replace(
            "iqn.2026-12.org.pytgt:isnsadm", ini1))
        res = subprocess.run(["isnsadm", "-c", str(conf), "--register", "entity=ini1-host",
                              f"initiator={ini1}"], capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stderr
        _until(lambda: IQN1 in _discovered(d, ini1), "the SCN did not admit the initiator")
        assert IQN1 not in _discovered(d, ini2)
    finally:
        assert d.stop() == 0, "".join(d.log[-20:])


def test_a_bad_isns_option_is_a_one_line_error(tmp: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    res = subprocess.run([sys.executable, "-m", "pytgt.daemon.main", "-f", "--iscsi",
                          "portal=127.0.0.1:0,isns=On"], env=env, capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 1
    assert res.stderr == "pytgtd: bad --iscsi options: isns=On needs isns_addr=HOST\n"
