"""Smoke-run the benchmark (bench/run.py --quick) so it cannot rot; no timing assertions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.workloads import WORKLOADS

REPO = Path(__file__).resolve().parents[2]
CLIENTS = ("iscsi-perf", "qemu-img", "iscsi-readcapacity16")


@pytest.mark.timeout(600)
def test_quick_run_reports_every_workload(tmp_path: Path) -> None:
    missing = [c for c in CLIENTS if shutil.which(c) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed "
                    "(apt-get install libiscsi-bin qemu-utils qemu-block-extra)")
    targets = ["pytgt"] + (["tgt"] if shutil.which("tgtd") and shutil.which("tgtadm") else [])
    res = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--duration", "1", "--size", "16M",
         "--targets", ",".join(targets), "--workdir", str(tmp_path / "work"),
         "--results-dir", str(tmp_path / "results")],
        cwd=REPO, capture_output=True, text=True, timeout=580)
    out = tmp_path / "results"
    assert (out / "results.json").exists(), res.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    assert set(result["workloads"]) == {w.name for w in WORKLOADS}
    bad = {(name, t): w["errors"][t] or w["runs"][t]
           for name, w in result["workloads"].items() for t in targets
           if not (w["median"][t] and w["median"][t] > 0)}
    assert not bad, bad
    assert "| workload |" in (out / "results.md").read_text()
    assert res.returncode == 0, res.stderr[-3000:]
