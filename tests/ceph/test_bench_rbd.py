"""Smoke-run the RBD benchmark (``python -m bench.rbd --quick``) on the session's cluster
so it cannot rot; no timing assertions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ceph_dev_cluster import DevCluster

from bench.rbd import WORKLOADS

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_quick_rbd_run_reports_every_workload(ceph: DevCluster, tmp_path: Path) -> None:
    targets = ["pytgt"] + (["tgt"] if shutil.which("tgtd") else [])
    res = subprocess.run(
        [sys.executable, "-m", "bench.rbd", "--quick", "--duration", "1", "--size", "16M",
         "--ceph-conf", str(ceph.conf), "--targets", ",".join(targets),
         "--workdir", str(tmp_path / "work"), "--results-dir", str(tmp_path / "results")],
        cwd=REPO, capture_output=True, text=True, timeout=580)
    out = tmp_path / "results"
    assert (out / "results.json").exists(), res.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    assert not result["start_errors"], result["start_errors"]
    assert set(result["workloads"]) == {w.name for w in WORKLOADS}
    bad = {(name, t): w["errors"][t] or w["runs"][t]
           for name, w in result["workloads"].items() for t in targets
           if not (w["median"][t] and w["median"][t] > 0)}
    assert not bad, bad
    assert res.returncode == 0, res.stderr[-3000:]
