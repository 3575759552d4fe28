"""Footprint: a fresh daemon, N null-store LUNs configured through its admin tool, idle RSS."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from bench.targets import TARGETS, TargetError, rss_kib

LUNS_PER_TARGET = 100


def footprint(name: str, workdir: Path, luns: int) -> dict[str, Any]:
    """Configure ``luns`` null LUNs (100 per target) on a fresh daemon; RSS when idle."""
    t = TARGETS[name](workdir / "footprint")
    try:
        t.start()
        time.sleep(1.0)
        empty = rss_kib(t.pid)
        t0 = time.monotonic()
        for i in range(luns):
            tid, lun = divmod(i, LUNS_PER_TARGET)
            if lun == 0:
                t.adm("--op", "new", "--mode", "target", "--tid", str(tid + 1),
                      "-T", f"iqn.2026-11.org.pytgt:fp{tid + 1}")
            t.adm("--op", "new", "--mode", "logicalunit", "--tid", str(tid + 1),
                  "--lun", str(lun + 1), "-b", f"null{i}", "-E", "null")
        elapsed = time.monotonic() - t0
        time.sleep(2.0)
        return {"luns": luns, "configure_s": elapsed, "rss_kib_empty": empty,
                "rss_kib": rss_kib(t.pid),
                "note": "configure_s includes one admin-tool process per LUN"}
    except (TargetError, OSError, subprocess.TimeoutExpired) as exc:
        return {"luns": luns, "error": str(exc)}
    finally:
        t.stop()
