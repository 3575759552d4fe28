"""libiscsi's conformance suite (iscsi-test-cu) and tools against pytgtd."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import RunningDaemon
from tests.interop.conftest import IQN, make_target, need

REQUIRED_SUITES = [
    "Inquiry", "ReadCapacity10", "ReadCapacity16", "Read6", "Read10", "Read12", "Read16",
    "Write10", "Write12", "Write16", "TestUnitReady", "Verify10", "Verify12", "Verify16",
    "WriteVerify10", "WriteVerify12", "WriteVerify16", "ModeSense6", "Mandatory",
    "iSCSIResiduals", "iSCSIcmdsn", "iSCSIdatasn",
]


@pytest.fixture(scope="module")
def url(daemon: RunningDaemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    need("iscsi-test-cu")
    backing = tmp_path_factory.mktemp("lun") / "lun1.img"
    yield make_target(daemon, 1, IQN, backing, 128 << 20)


def run_suite(url: str, suite: str, timeout: int = 600) -> tuple[int, int, list[str], str]:
    """Run one iscsi-test-cu selection; return (passed, run, failed test names, output)."""
    res = subprocess.run(["iscsi-test-cu", "-d", "-t", suite, url], capture_output=True,
                         text=True, timeout=timeout)
    out = res.stdout + res.stderr
    m = re.search(r"tests\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", out)
    assert m, f"no CUnit summary in output:\n{out[-3000:]}"
    run, passed, failed = int(m.group(2)), int(m.group(3)), int(m.group(4))
    names = re.findall(r"Test: (\S+) \.\.\.\s*\n(?:.*\n)*?\s*FAILED", out)
    return passed, run, names if failed else [], out


@pytest.mark.parametrize("suite", REQUIRED_SUITES)
def test_conformance_suite(url: str, suite: str) -> None:
    passed, run, failed, out = run_suite(url, f"ALL.{suite}")
    assert run > 0, out[-2000:]
    assert passed == run, f"{suite}: {passed}/{run} passed\n{out[-4000:]}"


def test_iscsi_ls_discovery(daemon: RunningDaemon, url: str) -> None:
    host = f"{daemon.host}:{daemon.port}"
    res = subprocess.run(["iscsi-ls", "-s", f"iscsi://{host}/"], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert f"Target:{IQN} Portal:{host},1" in res.stdout
    assert "Lun:1" in res.stdout and "Type:DIRECT_ACCESS" in res.stdout


def test_iscsi_inq_and_readcapacity16(url: str) -> None:
    inq = subprocess.run(["iscsi-inq", url], capture_output=True, text=True, timeout=60)
    assert inq.returncode == 0, inq.stderr
    assert "Peripheral Device Type" in inq.stdout or "DIRECT_ACCESS" in inq.stdout.upper()
    cap = subprocess.run(["iscsi-readcapacity16", url], capture_output=True, text=True,
                         timeout=60)
    assert cap.returncode == 0, cap.stderr
    assert "LOGICALBLOCKLENGTHINBYTES:512" in cap.stdout.replace(" ", "")
    assert "Totalsize:134217728" in cap.stdout.replace(" ", "")


def test_iscsi_ls_hides_target_from_refused_initiator(daemon: RunningDaemon,
                                                     tmp_path: Path) -> None:
    need("iscsi-ls")
    iqn = "iqn.2026-11.org.pytgt:hidden"
    backing = tmp_path / "hidden.img"
    make_target(daemon, 9, iqn, backing, 1 << 20)
    daemon.adm("--lld", "iscsi", "--op", "unbind", "--mode", "target", "--tid", "9", "-I", "ALL")
    try:
        host = f"{daemon.host}:{daemon.port}"
        res = subprocess.run(["iscsi-ls", "-s", f"iscsi://{host}/"], capture_output=True,
                             text=True, timeout=60)
        assert iqn not in res.stdout
        inq = subprocess.run(["iscsi-inq", daemon.url(iqn, 1)], capture_output=True,
                             text=True, timeout=60)
        assert inq.returncode != 0
    finally:
        daemon.adm("--lld", "iscsi", "--op", "delete", "--mode", "target", "--tid", "9",
                   "--force", check=False)
