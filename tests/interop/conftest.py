"""Fixtures for tests against real peers (libiscsi, QEMU): a pytgtd subprocess."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import RunningDaemon, start_daemon

IQN = "iqn.2026-11.org.pytgt:interop"


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed (apt-get install libiscsi-bin qemu-utils)")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    tmp = tmp_path_factory.mktemp("pytgtd")
    d = start_daemon(tmp)
    try:
        yield d
    finally:
        rc = d.stop()
        assert rc == 0, "pytgtd did not exit cleanly:\n" + "".join(d.log[-30:])


def make_target(d: RunningDaemon, tid: int, iqn: str, backing: Path, size: int,
                *lun_args: str) -> str:
    """Create a target with a sparse-file LUN 1 open to all initiators; return its URL."""
    with open(backing, "wb") as f:
        f.truncate(size)
    d.adm("--lld", "iscsi", "--op", "new", "--mode", "target", "--tid", str(tid), "-T", iqn)
    d.adm("--lld", "iscsi", "--op", "new", "--mode", "logicalunit", "--tid", str(tid),
          "--lun", "1", "-b", str(backing), *lun_args)
    d.adm("--lld", "iscsi", "--op", "bind", "--mode", "target", "--tid", str(tid), "-I", "ALL")
    return d.url(iqn, 1)
