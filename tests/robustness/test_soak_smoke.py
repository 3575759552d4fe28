"""A short soak run (``bench/soak.py``): many sessions, verified data, zero errors.

``PYTGT_SOAK_SECONDS`` makes it longer (default 10).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.robustness.util import ROOT

SECONDS = float(os.environ.get("PYTGT_SOAK_SECONDS", "10"))


def test_soak_smoke() -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'src'}"}
    out = subprocess.run([sys.executable, "-m", "bench.soak", "--duration", str(SECONDS),
                          "--sessions", "6", "--interval", str(max(2.0, SECONDS / 4))],
                         cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=SECONDS + 120, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summary = json.loads(out.stdout.split("summary ", 1)[1].splitlines()[0])
    assert summary["errors"] == 0
    assert summary["commands"] > 100 and summary["logins"] > 6 and summary["tmfs"] > 0
    assert summary["verified_blocks"] > 0
    assert summary["fds_end"] <= summary["fds_start"] + 4
