"""Shared test helpers: a pytgtd subprocess on an ephemeral loopback port, admin calls."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

READY = re.compile(r"listening on (\S+):(\d+)")


@dataclass
class RunningDaemon:
    """A pytgtd started by a test: its PID, port, control port and environment."""

    proc: subprocess.Popen[str]
    host: str
    port: int
    control_port: int
    env: dict[str, str]
    log: list[str]
    drainer: threading.Thread | None = None  # reads the log after start; joined by stop()

    def adm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run pytgtadm against this daemon."""
        cmd = [sys.executable, "-m", "pytgt.cli.pytgtadm", "-C", str(self.control_port), *args]
        res = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=30)
        if check and res.returncode != 0:
            raise AssertionError(f"pytgtadm {' '.join(args)} -> {res.returncode}: {res.stderr}")
        return res

    def url(self, iqn: str, lun: int) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"iscsi://{host}:{self.port}/{iqn}/{lun}"

    def stop(self) -> int:
        """SIGTERM our own daemon (by PID) and return its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.drainer is not None:
            self.drainer.join(timeout=10)  # self.log is complete once stop() returns
        return self.proc.returncode


def start_daemon(tmp: Path, host: str = "127.0.0.1", extra: tuple[str, ...] = (),
                 timeout: float = 60.0, port: int = 0) -> RunningDaemon:
    """Start pytgtd on ``host`` ``port`` (0: an ephemeral one); return once it reports
    the bound port."""
    env = dict(os.environ)
    env["PYTGT_RUN_DIR"] = str(tmp / "run")
    env["PYTGT_STATE_DIR"] = str(tmp / "state")
    src = str(Path(__file__).resolve().parent.parent / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    control = 1000 + os.getpid() % 20000
    portal = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytgt.daemon.main", "-f", "-C", str(control),
         "--iscsi", f"portal={portal}", *extra],
        env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    # Read the pipe's fd itself until the READY line: select() on the text wrapper would
    # miss lines its buffer already holds (two log lines in one pipe read).
    fd, pending = proc.stderr.fileno(), b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], deadline - time.monotonic())
        if not ready:
            break
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        *complete, pending = (pending + chunk).split(b"\n")
        lines += [raw.decode(errors="replace") + "\n" for raw in complete]
        m = next(filter(None, map(READY.search, lines)), None)
        if m:
            if pending:  # the start of the next line: the drainer reads the rest
                lines.append(pending.decode(errors="replace"))
            drainer = threading.Thread(target=_drain, args=(proc, lines), daemon=True)
            drainer.start()
            return RunningDaemon(proc, host, int(m.group(2)), control, env, lines, drainer)
    proc.kill()
    proc.wait(timeout=10)
    raise AssertionError("pytgtd did not start:\n" + "".join(lines))


@contextmanager
def running_daemon(tmp: Path, *, check: bool = True, **kw: Any) -> Iterator[RunningDaemon]:
    """``start_daemon(tmp, **kw)`` for the length of a ``with``; stopped (SIGTERM) at
    the end, and with ``check`` its exit status must be 0."""
    d = start_daemon(tmp, **kw)
    try:
        yield d
    finally:
        rc = d.stop()
        if check:
            assert rc == 0, "pytgtd did not exit cleanly:\n" + "".join(d.log[-30:])


def _drain(proc: subprocess.Popen[str], lines: list[str]) -> None:
    """Keep reading the daemon's log so it never blocks on a full pipe."""
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line)
