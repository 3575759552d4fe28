"""pytgtadm against a real pytgtd subprocess: tgtadm's deployment, its show layout, errors.

The golden files were captured from tgtd 1.0.85 with the same commands (a target, a
1 MiB file as LUN 1, bound to ALL); only the LUN path differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytgt.initiator import Initiator
from tests.daemon.conftest import IQN, golden, golden_params
from tests.helpers import RunningDaemon, start_daemon

NOT_CONNECTED = ("pytgtadm: failed to send request hdr to tgt daemon, "
                 "Transport endpoint is not connected\n")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    d = start_daemon(tmp_path_factory.mktemp("pytgtd"))
    try:
        yield d
    finally:
        assert d.stop() == 0, "pytgtd did not exit cleanly:\n" + "".join(d.log[-30:])


@pytest.fixture
def lun(tmp_path: Path) -> str:
    path = tmp_path / "lun1m.img"
    with open(path, "wb") as f:
        f.truncate(1 << 20)
    return str(path)


def _setup(d: RunningDaemon, lun: str) -> None:
    d.adm("--lld", "iscsi", "--op", "new", "--mode", "target", "--tid", "1", "-T", IQN)
    d.adm("--lld", "iscsi", "--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1",
          "-b", lun)
    d.adm("--lld", "iscsi", "--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")


def _teardown(d: RunningDaemon) -> None:
    d.adm("--op", "delete", "--mode", "target", "--tid", "1", "--force")


def test_control_socket_is_private(daemon: RunningDaemon) -> None:
    path = Path(daemon.env["PYTGT_RUN_DIR"]) / f"socket.{daemon.control_port}"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_tgtadm_deployment_and_show(daemon: RunningDaemon, lun: str) -> None:
    _setup(daemon, lun)
    try:
        res = daemon.adm("--lld", "iscsi", "--op", "show", "--mode", "target")
        assert res.stdout == golden("show_target.txt", lun)
        params = daemon.adm("--op", "show", "--mode", "target", "--tid", "1").stdout
        assert params == golden_params()
    finally:
        _teardown(daemon)


@pytest.mark.parametrize("args, rc, message", [
    ("--op new --mode target --tid 1 -T iqn.x:y", 22, "this target already exists"),
    ("--op delete --mode target --tid 9", 22, "can't find the target"),
    ("--op new --mode logicalunit --tid 1 --lun 1 -b /dev/null", 22,
     "this logical unit number already exists"),
    ("--op new --mode logicalunit --tid 1 --lun 2 -b /nonexistent.img", 22, "invalid request"),
    ("--op bind --mode target --tid 1 -I ALL", 22, "this access control rule already exists"),
    ("--op update --mode logicalunit --tid 1 --lun 1 --params bogus=1", 22, "invalid request"),
    ("--op show --mode bogus", 1, "unknown mode: bogus"),
])
def test_errors(daemon: RunningDaemon, lun: str, args: str, rc: int, message: str) -> None:
    _setup(daemon, lun)
    try:
        res = daemon.adm(*args.split(), check=False)
        assert (res.returncode, res.stdout, res.stderr) == (rc, "", f"pytgtadm: {message}\n")
    finally:
        _teardown(daemon)


def test_session_shown_and_force_delete(daemon: RunningDaemon, lun: str) -> None:
    _setup(daemon, lun)

    async def scenario() -> None:
        session = await Initiator.login(daemon.host, daemon.port, target=IQN,
                                        initiator_name="iqn.2026-11.org.test:init1")
        try:
            shown = await asyncio.to_thread(daemon.adm, "--op", "show", "--mode", "target")
            assert "            Initiator: iqn.2026-11.org.test:init1 alias: " in shown.stdout
            busy = await asyncio.to_thread(daemon.adm, "--op", "delete", "--mode", "target",
                                           "--tid", "1", check=False)
            assert (busy.returncode, busy.stderr) == (
                22, "pytgtadm: this target is still active\n")
            conns = await asyncio.to_thread(daemon.adm, "--op", "show", "--mode", "conn",
                                            "--tid", "1")
            assert "        IP Address: 127.0.0.1\n" in conns.stdout
        finally:
            await asyncio.to_thread(daemon.adm, "--op", "delete", "--mode", "target",
                                    "--tid", "1", "--force")
            with contextlib.suppress(Exception):  # the target has closed the connection
                await session.logout(timeout=2)

    asyncio.run(scenario())
    assert daemon.adm("--op", "show", "--mode", "target").stdout == ""


def test_daemon_not_running(tmp_path: Path, daemon: RunningDaemon) -> None:
    other = RunningDaemon(daemon.proc, daemon.host, daemon.port, daemon.control_port + 1,
                          {**daemon.env, "PYTGT_RUN_DIR": str(tmp_path)}, [])
    res = other.adm("--op", "show", "--mode", "target", check=False)
    assert (res.returncode, res.stdout, res.stderr) == (107, "", NOT_CONNECTED)
