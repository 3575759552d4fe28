"""systemd integration: READY=1/STOPPING=1 on a NOTIFY_SOCKET of the test's own, the
unit file through ``systemd-analyze verify``, and its ExecReload= on a running pytgtd."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytgt.daemon.sd_notify import notify, notify_address
from pytgt.initiator import Initiator

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "contrib" / "pytgtd.service"
SRC = str(ROOT / "src")


def _receiver(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(30)  # a bound on a hung daemon, not synchronisation
    return sock


def _fields(datagram: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in datagram.decode().splitlines())


# -- the protocol ---------------------------------------------------------------------------
def test_address_forms() -> None:
    assert notify_address({"NOTIFY_SOCKET": "/run/systemd/notify"}) == "/run/systemd/notify"
    assert notify_address({"NOTIFY_SOCKET": "@sd-123"}) == b"\0sd-123"
    assert notify_address({}) is None
    assert notify_address({"NOTIFY_SOCKET": "vsock:2:1234"}) is None
    assert not notify("READY=1", env={})


def test_path_and_abstract_sockets(tmp_path: Path) -> None:
    with _receiver(tmp_path / "notify") as sock:
        assert notify("READY=1", "STATUS=up", env={"NOTIFY_SOCKET": str(tmp_path / "notify")})
        assert sock.recv(4096) == b"READY=1\nSTATUS=up"
    name = f"pytgt-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(30)
        assert notify("STOPPING=1", env={"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(4096) == b"STOPPING=1"


def test_unreachable_socket_is_not_fatal(tmp_path: Path) -> None:
    assert not notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "nobody")})


# -- pytgtd under a NOTIFY_SOCKET ---------------------------------------------------------
@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "notify"
    with _receiver(path) as sock:
        yield sock, str(path)


def _daemon_env(tmp_path: Path, notify_path: str) -> dict[str, str]:
    env = dict(os.environ, PYTGT_RUN_DIR=str(tmp_path / "run"),
               PYTGT_STATE_DIR=str(tmp_path / "state"), NOTIFY_SOCKET=notify_path)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_ready_after_portal_and_control_socket_then_stopping(
        tmp_path: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    env = _daemon_env(tmp_path, path)
    control = 3000 + os.getpid() % 20000
    proc = subprocess.Popen([sys.executable, "-m", "pytgt.daemon.main", "-f", "-C",
                             str(control), "--iscsi", "portal=127.0.0.1:0", "--quickstart",
                             "16M"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        ready = _fields(sock.recv(4096))  # the first message pytgtd sends
        assert ready["READY"] == "1"
        host, port = ready["STATUS"].removeprefix("serving on ").rsplit(":", 1)
        # at READY=1 the portal accepts, the control socket answers, the quickstart LU exists
        with socket.create_connection((host, int(port)), timeout=10):
            pass
        assert (tmp_path / "run" / f"socket.{control}").is_socket()
        out = subprocess.run([sys.executable, "-m", "pytgt.cli.pytgtadm", "-C", str(control),
                              "--op", "show", "--mode", "target"], env=env,
                             capture_output=True, text=True, timeout=30)
        assert "LUN: 1" in out.stdout
        proc.send_signal(signal.SIGTERM)
        assert _fields(sock.recv(4096))["STOPPING"] == "1"
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_no_ready_when_start_fails(tmp_path: Path,
                                   notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    (tmp_path / "bad.conf").write_text("<target iqn.2026-11.org.pytgt:x>\n  nonsense 1\n")
    proc = subprocess.run([sys.executable, "-m", "pytgt.daemon.main", "-f", "-C", "0",
                           "--iscsi", "portal=127.0.0.1:0", "--config",
                           str(tmp_path / "bad.conf")], env=_daemon_env(tmp_path, path),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.recv(4096)


# -- the unit file ----------------------------------------------------------------------------
def _unit_lines(key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in UNIT.read_text().splitlines()
            if line.startswith(key + "=")]


def test_unit_is_type_notify() -> None:
    assert _unit_lines("Type") == ["notify"]
    assert _unit_lines("ExecReload")[0].split()[1:4] == ["-C", "0", "--update"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """The unit as shipped, with its programs' paths pointing at files that exist here."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    text = UNIT.read_text()
    for prog in ("pytgtd", "pytgt-admin"):
        exe = bindir / prog
        exe.write_text("#!/bin/sh\nexit 0\n")
        exe.chmod(0o755)
        text = text.replace(f"/usr/local/bin/{prog} ", f"{exe} ")
    assert "/usr/local/bin" not in text
    unit = tmp_path / "pytgtd.service"
    unit.write_text(text)
    res = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "pytgtd.service" not in res.stderr, res.stderr  # no warning about our unit


# -- ExecReload= --------------------------------------------------------------------------------
CONF = """\
<target iqn.2026-11.org.pytgt:kept>
    backing-store {kept}
    initiator-address ALL
</target>
<target iqn.2026-11.org.pytgt:changed>
    backing-store {changed}
    initiator-address ALL
{extra}</target>
"""


def test_exec_reload_leaves_unchanged_targets_alone(
        tmp_path: Path, notify_socket: tuple[socket.socket, str]) -> None:
    """ExecReload= as the unit spells it (programs run from the source tree) adds a LUN to
    the changed target while a session of the unchanged one carries on untouched."""
    sock, path = notify_socket
    for name in ("kept", "changed", "new"):
        with open(tmp_path / f"{name}.img", "wb") as f:
            f.truncate(1 << 20)
    conf = tmp_path / "targets.conf"
    paths = {"kept": tmp_path / "kept.img", "changed": tmp_path / "changed.img"}
    conf.write_text(CONF.format(**paths, extra=""))
    env = _daemon_env(tmp_path, path)
    proc = subprocess.Popen([sys.executable, "-m", "pytgt.daemon.main", "-f", "-C", "0",
                             "--iscsi", "portal=127.0.0.1:0", "--config", str(conf)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ready = _fields(sock.recv(4096))
        port = int(ready["STATUS"].rsplit(":", 1)[1])
        reload_cmd = shlex.split(_unit_lines("ExecReload")[0])
        assert reload_cmd[0] == "/usr/local/bin/pytgt-admin"
        argv = [sys.executable, "-m", "pytgt.cli.pytgt_admin", *reload_cmd[1:]]
        argv[argv.index("/etc/pytgt/targets.conf")] = str(conf)

        async def check() -> None:
            async with Initiator.login("127.0.0.1", port,
                                       target="iqn.2026-11.org.pytgt:kept") as s:
                await s.read16(1, 0, 1)
                uas = len(s.unit_attentions)  # POWER ON after login
                conf.write_text(CONF.format(**paths, extra=f"    backing-store "
                                            f"{tmp_path / 'new.img'}\n"))
                res = await asyncio.to_thread(subprocess.run, argv, env=env,
                                              capture_output=True, text=True, timeout=60)
                assert res.returncode == 0, res.stderr
                # the session of the unchanged target: still there, no unit attention
                assert len(await s.read16(1, 0, 1)) == 512
                assert not s.async_events and len(s.unit_attentions) == uas

        asyncio.run(check())
        show = subprocess.run([sys.executable, "-m", "pytgt.cli.pytgtadm", "-C", "0",
                               "--op", "show", "--mode", "target"], env=env,
                              capture_output=True, text=True, timeout=30).stdout
        changed = show.split("iqn.2026-11.org.pytgt:changed")[1]
        assert "LUN: 2" in changed and str(tmp_path / "new.img") in changed
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_sighup_reloads_the_config_between_reloading_and_ready(
        tmp_path: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    for name in ("kept", "changed", "new"):
        with open(tmp_path / f"{name}.img", "wb") as f:
            f.truncate(1 << 20)
    paths = {"kept": tmp_path / "kept.img", "changed": tmp_path / "changed.img"}
    conf = tmp_path / "targets.conf"
    conf.write_text(CONF.format(**paths, extra=""))
    env = _daemon_env(tmp_path, path)
    proc = subprocess.Popen([sys.executable, "-m", "pytgt.daemon.main", "-f", "-C", "0",
                             "--iscsi", "portal=127.0.0.1:0", "--config", str(conf)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _fields(sock.recv(4096))["READY"] == "1"
        conf.write_text(CONF.format(**paths, extra=f"    backing-store {tmp_path / 'new.img'}\n"))
        proc.send_signal(signal.SIGHUP)
        reloading = _fields(sock.recv(4096))
        assert reloading["RELOADING"] == "1" and int(reloading["MONOTONIC_USEC"]) > 0
        assert _fields(sock.recv(4096))["READY"] == "1"
        show = subprocess.run([sys.executable, "-m", "pytgt.cli.pytgtadm", "-C", "0",
                               "--op", "show", "--mode", "target"], env=env,
                              capture_output=True, text=True, timeout=30).stdout
        assert str(tmp_path / "new.img") in show.split("iqn.2026-11.org.pytgt:changed")[1]
        conf.write_text("<target broken\n")  # a bad file changes nothing, the daemon stays
        proc.send_signal(signal.SIGHUP)
        assert _fields(sock.recv(4096))["RELOADING"] == "1"
        assert _fields(sock.recv(4096))["READY"] == "1"
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
