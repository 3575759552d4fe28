"""The whole of libiscsi's iscsi-test-cu on every kind of LU (issue 4's four variants).

Each variant is its own target on the module's pytgtd: a plain file LU, a thin
provisioned LU reached through two sessions (the MultipathIO suite and the two-initiator
tests), a read-only LU and a removable LU. A variant passes when every test it runs
passes and no test is skipped as "not implemented". The full runs take a few minutes:
SANITIZE OVERWRITE is paced (sanitize.OVERWRITE_RATE) and test_sanitize_reset.c polls
its completion once a minute.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import RunningDaemon
from tests.interop.conftest import make_target, need

LU_SIZE = 128 << 20  # SANITIZE Reset needs an overwrite that outlasts ~5 s of resets
FULL_RUN = 1800


@dataclass
class SuiteRun:
    """What one iscsi-test-cu invocation reported."""

    run: int
    passed: int
    failed: list[str]
    not_implemented: list[str]
    output: str

    def report(self) -> str:
        tail = "\n".join(self.output.splitlines()[-40:])
        return (f"{self.passed}/{self.run} passed; failed: {self.failed}; "
                f"not implemented: {self.not_implemented}\n{tail}")


def iscsi_test_cu(selection: str, *urls: str, timeout: int = FULL_RUN) -> SuiteRun:
    """Run ``iscsi-test-cu -d -S -t selection urls...`` and parse its CUnit report."""
    need("iscsi-test-cu")
    res = subprocess.run(["iscsi-test-cu", "-d", "-S", "-t", selection, *urls],
                         capture_output=True, text=True, timeout=timeout)
    out = res.stdout + res.stderr
    m = re.search(r"tests\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", out)
    assert m, f"no CUnit summary in the output:\n{out[-3000:]}"
    failed = _failed_tests(out)
    assert len(failed) == int(m.group(4)), out[-3000:]
    skipped = sorted(set(re.findall(r"\[SKIPPED\][^\n]*is not implemented[^\n]*", out)))
    return SuiteRun(int(m.group(2)), int(m.group(3)), failed, skipped, out)


def _failed_tests(out: str) -> list[str]:
    """Names (Suite.Test) of the tests CUnit marked FAILED."""
    names, suite, test = [], "", ""
    for line in out.splitlines():
        if s := re.match(r"Suite: (\S+)", line):
            suite = s.group(1)
        if t := re.match(r"\s+Test: (\S+) \.\.\.", line):
            test = t.group(1)
        if re.search(r"(^|\.\.\.)\s*FAILED\s*$", line):
            names.append(f"{suite}.{test}")
    return names


# In two-session mode libiscsi 1.19's Sanitize.Reservations takes a RESERVE(6) on the second
# session and never releases it; that session stays logged in, so Sanitize.Reset's SANITIZE
# and TEST UNIT READY on the first session rightly get RESERVATION CONFLICT (SPC-2 5.5.1).
# No conforming target can pass that pair in this order; run alone it passes (asserted below).
MULTIPATH_ORDER_ARTIFACTS = ["Sanitize.Reset"]


def assert_clean(result: SuiteRun, *, failures_ok: tuple[str, ...] = ()) -> None:
    assert result.run > 0, result.report()
    unexpected = [name for name in result.failed if name not in failures_ok]
    assert unexpected == [], result.report()
    assert result.passed + len(result.failed) == result.run, result.report()
    assert result.not_implemented == [], result.report()


def lu_params(d: RunningDaemon, tid: int, params: str) -> None:
    d.adm("--lld", "iscsi", "--op", "update", "--mode", "logicalunit", "--tid", str(tid),
          "--lun", "1", "--params", params)


@pytest.mark.timeout(FULL_RUN + 60)
def test_plain_file_lu_passes_everything(daemon: RunningDaemon, tmp_path: Path) -> None:
    url = make_target(daemon, 41, "iqn.2026-11.org.pytgt:full-plain", tmp_path / "plain.img",
                      LU_SIZE)
    assert_clean(iscsi_test_cu("ALL", url))  # a file LU is thin by default: UNMAP and all


@pytest.mark.timeout(FULL_RUN + 60)
def test_thin_lu_through_two_sessions_passes_everything(daemon: RunningDaemon,
                                                        tmp_path: Path) -> None:
    url = make_target(daemon, 42, "iqn.2026-11.org.pytgt:full-thin", tmp_path / "thin.img",
                      LU_SIZE)
    lu_params(daemon, 42, "thin_provisioning=1")
    full = iscsi_test_cu("ALL", url, url)
    assert_clean(full, failures_ok=tuple(MULTIPATH_ORDER_ARTIFACTS))
    for name in full.failed:  # each order artifact passes on its own, two sessions and all
        assert_clean(iscsi_test_cu(f"ALL.{name}", url, url, timeout=600))


def test_readonly_lu(daemon: RunningDaemon, tmp_path: Path) -> None:
    url = make_target(daemon, 43, "iqn.2026-11.org.pytgt:full-ro", tmp_path / "ro.img",
                      LU_SIZE)
    lu_params(daemon, 43, "readonly=1,thin_provisioning=1")  # thin: UNMAP is tested too
    assert_clean(iscsi_test_cu("ALL.ReadOnly", url, timeout=600))


@pytest.mark.parametrize("suite", ["ALL.NoMedia", "ALL.PreventAllow", "ALL.StartStopUnit"])
def test_removable_lu(daemon: RunningDaemon, tmp_path: Path, suite: str) -> None:
    tid = 44 + ["ALL.NoMedia", "ALL.PreventAllow", "ALL.StartStopUnit"].index(suite)
    url = make_target(daemon, tid, f"iqn.2026-11.org.pytgt:full-rm{tid}",
                      tmp_path / "rm.img", LU_SIZE)
    lu_params(daemon, tid, "removable=1,thin_provisioning=1")  # thin: UNMAP is tested too
    assert_clean(iscsi_test_cu(suite, url, timeout=600))


# The suites that apply to a CD/DVD drive (the rest skip "Not SBC device"). MMC-6 has no
# 16-byte CDBs, which the suites' set-up probes for; those probes must be all it misses.
CD_SUITES = ["ALL.Inquiry", "ALL.TestUnitReady", "ALL.Read10", "ALL.Read12",
             "ALL.ReadCapacity10", "ALL.ModeSense6", "ALL.Mandatory",
             "ALL.ReportSupportedOpcodes", "ALL.StartStopUnit", "ALL.PreventAllow",
             "ALL.NoMedia"]
MMC_ABSENT = {"[SKIPPED] READCAPACITY16 is not implemented.",
              "[SKIPPED] READ16 is not implemented."}


def test_cd_lu(daemon: RunningDaemon, tmp_path: Path) -> None:
    url = make_target(daemon, 47, "iqn.2026-11.org.pytgt:full-cd", tmp_path / "disc.iso",
                      8 << 20, "--device-type", "cd")
    for suite in CD_SUITES:
        result = iscsi_test_cu(suite, url, timeout=600)
        assert set(result.not_implemented) <= MMC_ABSENT, result.report()
        result.not_implemented = []
        assert_clean(result)
