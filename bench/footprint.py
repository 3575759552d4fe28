"""Footprint: a fresh daemon, N null-store LUNs configured through its admin tool, idle RSS,
then the RSS cost of idle logged-in sessions (issue 5: < 150 MiB, < 64 KiB per session)."""

from __future__ import annotations

import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.targets import TARGETS, TargetError, die_with_parent, rss_kib

LUNS_PER_TARGET = 100
IDLE_SESSIONS = 100
LOGIN_TIMEOUT = 60.0


def footprint(name: str, workdir: Path, luns: int) -> dict[str, Any]:
    """Configure ``luns`` null LUNs (100 per target) on a fresh daemon; RSS when idle."""
    t = TARGETS[name](workdir / "footprint")
    res: dict[str, Any] = {"luns": luns}
    try:
        t.start()
        time.sleep(1.0)
        res["rss_kib_empty"] = rss_kib(t.pid)
        t0 = time.monotonic()
        for i in range(luns):
            tid, lun = divmod(i, LUNS_PER_TARGET)
            if lun == 0:
                t.adm("--op", "new", "--mode", "target", "--tid", str(tid + 1),
                      "-T", f"iqn.2026-11.org.pytgt:fp{tid + 1}")
                t.adm("--op", "bind", "--mode", "target", "--tid", str(tid + 1), "-I", "ALL")
            t.adm("--op", "new", "--mode", "logicalunit", "--tid", str(tid + 1),
                  "--lun", str(lun + 1), "-b", f"null{i}", "-E", "null")
        res["configure_s"] = time.monotonic() - t0
        res["note"] = "configure_s includes starting one admin-tool process per call"
        time.sleep(2.0)
        res["rss_kib"] = rss_kib(t.pid)
        if luns:
            res.update(idle_sessions(t, "iqn.2026-11.org.pytgt:fp1", IDLE_SESSIONS))
    except (TargetError, OSError, subprocess.SubprocessError) as exc:
        res["error"] = str(exc)
    finally:
        t.stop()
    return res


ADMIN_TOOLS = {"pytgt": [sys.executable, "-m", "pytgt.cli.pytgt_admin"], "tgt": ["tgt-admin"]}


def write_targets_conf(path: Path, stores: Path, targets: int) -> None:
    """``targets`` targets, one null-store LUN each (tgt-admin skips missing paths)."""
    stores.mkdir(parents=True, exist_ok=True)
    parts = []
    for i in range(1, targets + 1):
        store = stores / f"null{i}"
        store.touch()
        parts.append(f"<target iqn.2026-11.org.pytgt:conf{i}>\n    bs-type null\n"
                     f"    backing-store {store}\n    initiator-address ALL\n</target>\n")
    path.write_text("".join(parts))


def conf_apply(name: str, workdir: Path, targets: int) -> dict[str, Any]:
    """Time ``pytgt-admin -e`` / ``tgt-admin -e`` of a ``targets``-target targets.conf
    on a fresh daemon, and check that every target is there afterwards."""
    t = TARGETS[name](workdir / "conf")
    conf = t.workdir / "targets.conf"
    write_targets_conf(conf, t.workdir / "stores", targets)
    res: dict[str, Any] = {"targets": targets}
    try:
        t.start()
        cmd = [*ADMIN_TOOLS[name], "-C", str(t.control), "-e", "-c", str(conf)]
        t0 = time.monotonic()
        run = subprocess.run(cmd, env=t.adm_env(), capture_output=True, text=True, timeout=600)
        res["apply_s"] = time.monotonic() - t0
        if run.returncode != 0:
            raise TargetError(f"`{' '.join(cmd)}` -> rc {run.returncode}: "
                              f"{(run.stderr or run.stdout).strip()[-300:]}")
        shown = t.adm("--op", "show", "--mode", "target")
        res["targets_running"] = len(re.findall(r"^Target \d+:", shown, re.M))
        res["rss_kib"] = rss_kib(t.pid)
    except (TargetError, OSError, subprocess.SubprocessError) as exc:
        res["error"] = str(exc)
    finally:
        t.stop()
    return res


def idle_sessions(t: Any, iqn: str, count: int) -> dict[str, Any]:
    """RSS growth per idle logged-in session, ``count`` sessions held by one helper."""
    before = rss_kib(t.pid) or 0
    helper = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("idle_sessions.py")), "--portal",
         t.portal(), "--target", iqn, "--lun", "1", "--count", str(count)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=die_with_parent)
    assert helper.stdin is not None and helper.stdout is not None
    try:
        ready, _, _ = select.select([helper.stdout], [], [], LOGIN_TIMEOUT)
        line = helper.stdout.readline() if ready else ""
        if not line.startswith("ready"):
            helper.kill()
            helper.wait(timeout=30)
            why = (helper.stderr.read() if helper.stderr else "") or "timed out logging in"
            raise TargetError(f"idle sessions: {why.strip()}")
        time.sleep(2.0)
        after = rss_kib(t.pid) or 0
    finally:
        helper.stdin.close()
        try:
            helper.wait(timeout=60)
        except subprocess.TimeoutExpired:
            helper.kill()
            helper.wait()
    return {"idle_sessions": count, "rss_kib_per_idle_session": (after - before) / count}
