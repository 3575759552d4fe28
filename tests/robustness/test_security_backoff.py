"""CHAP guessing against a real pytgtd: failures logged once and counted, the guessing
source held off with 0x0301 (answered at once, never hung), other sources unaffected;
with pytgt.initiator and with libiscsi's iscsi-inq / iscsi-ls and a wrong secret."""

from __future__ import annotations

import asyncio
import functools
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytgt.daemon.security import SECURITY_HEADER
from pytgt.initiator import Initiator, LoginFailed
from tests.helpers import RunningDaemon, start_daemon

IQN = "iqn.2026-11.org.pytgt:guarded"
USER, SECRET, WRONG = "guard", "right-secret-12", "wrong-secret-12"
LIMIT = 3
AUTH_FAILURE, SERVICE_UNAVAILABLE = 0x0201, 0x0301


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[RunningDaemon]:
    # a long first delay: nothing in the test depends on timing
    d = start_daemon(tmp_path, extra=(
        "--iscsi", f"auth_fail_limit={LIMIT},auth_backoff_initial=120,auth_backoff_max=600"))
    try:
        lun = tmp_path / "lun1.img"
        lun.write_bytes(bytes(1 << 20))
        for args in (("--mode", "target", "--op", "new", "--tid", "1", "-T", IQN),
                     ("--mode", "logicalunit", "--op", "new", "--tid", "1", "--lun", "1",
                      "-b", str(lun)),
                     ("--mode", "target", "--op", "bind", "--tid", "1", "-I", "ALL"),
                     ("--mode", "account", "--op", "new", "--user", USER,
                      "--password", SECRET),
                     ("--mode", "account", "--op", "bind", "--tid", "1", "--user", USER)):
            d.adm("--lld", "iscsi", *args)
        yield d
    finally:
        assert d.stop() == 0, "".join(d.log[-30:])


async def login_status(d: RunningDaemon, secret: str, source: str) -> int:
    """0 when the login succeeds, else the target's status; bounded in time."""
    loop = asyncio.get_running_loop()
    loop.create_connection = functools.partial(  # type: ignore[method-assign]
        loop.create_connection, local_addr=(source, 0))
    try:
        async with asyncio.timeout(10), Initiator.login(
                "127.0.0.1", d.port, target=IQN, initiator_name=f"iqn.2024-01.test:{source}",
                chap=(USER, secret), timeout=10) as s:
            await s.test_unit_ready(0)
    except LoginFailed as exc:
        return exc.status
    return 0


def security_row(d: RunningDaemon) -> dict[str, int]:
    lines = d.adm("--lld", "iscsi", "--op", "stat", "--mode", "system").stdout.splitlines()
    i = lines.index(SECURITY_HEADER)
    return dict(zip(SECURITY_HEADER.split(), map(int, lines[i + 1].split()), strict=True))


def test_guessing_source_is_held_off_and_others_are_not(daemon: RunningDaemon) -> None:
    async def run() -> tuple[list[int], float]:
        wrong = [await login_status(daemon, WRONG, "127.0.0.2") for _ in range(LIMIT)]
        started = time.monotonic()
        held = await login_status(daemon, SECRET, "127.0.0.2")  # even the right secret
        elapsed = time.monotonic() - started
        others = [await login_status(daemon, SECRET, "127.0.0.1"),
                  await login_status(daemon, SECRET, "127.0.0.3")]
        return [*wrong, held, *others], elapsed
    statuses, elapsed = asyncio.run(run())
    assert statuses == [AUTH_FAILURE] * LIMIT + [SERVICE_UNAVAILABLE, 0, 0]
    assert elapsed < 5  # answered at once, not held open
    row = security_row(daemon)
    assert (row["auth_fail"], row["backoff_refused"], row["backoff_sources"]) == (LIMIT, 1, 1)
    log = "".join(daemon.log)
    refused = [line for line in daemon.log if "login refused (authentication failure)" in line]
    assert len(refused) == LIMIT, log[-3000:]  # once per failure, not per PDU
    assert all("127.0.0.2" in line and "iqn.2024-01.test:127.0.0.2" in line
               and f"user '{USER}'" in line for line in refused)
    assert "back-off: logins from 127.0.0.2 refused for 120 s" in log
    assert WRONG not in log and SECRET not in log


def run_tool(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(not (shutil.which("iscsi-inq") and shutil.which("iscsi-ls")),
                    reason="libiscsi tools not installed")
def test_libiscsi_wrong_secret_is_refused_then_held_off(daemon: RunningDaemon) -> None:
    base = f"127.0.0.1:{daemon.port}"
    good = f"iscsi://{USER}%{SECRET}@{base}/{IQN}/1"
    assert run_tool("iscsi-inq", good).returncode == 0, "the right secret works at first"
    results: list[Any] = []
    for _ in range(LIMIT):
        results.append(run_tool("iscsi-inq", f"iscsi://{USER}%{WRONG}@{base}/{IQN}/1"))
    assert all(r.returncode != 0 for r in results), results
    started = time.monotonic()
    held = [run_tool("iscsi-inq", good), run_tool("iscsi-ls", "-s", good.rsplit("/", 1)[0])]
    assert all(r.returncode != 0 for r in held), held  # 127.0.0.1 is held off now
    assert time.monotonic() - started < 30  # every refusal answered, none hung
    assert asyncio.run(login_status(daemon, SECRET, "127.0.0.4")) == 0
    row = security_row(daemon)
    assert row["auth_fail"] == LIMIT and row["backoff_refused"] >= 2, row
    assert WRONG not in "".join(daemon.log)
