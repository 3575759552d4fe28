"""The targets under test: pytgtd (this checkout) and Debian tgt's tgtd, started on 127.0.0.1.

Both are configured with tgtadm's command lines (``pytgtadm`` takes the same ones) and
expose the same LUNs: LUN 1 on a prefilled file (``rdwr``), LUN 2 on the ``null`` store.
Each daemon is stopped by its own PID; nothing here signals a process it did not start.
"""

from __future__ import annotations

import ctypes
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

IQN = "iqn.2026-11.org.pytgt:bench"
FILE_LUN = 1
NULL_LUN = 2
REPO = Path(__file__).resolve().parent.parent
READY = re.compile(r"listening on (\S+):(\d+)")
TGT_RUN_DIR = Path("/var/run/tgtd")
PR_SET_PDEATHSIG = 1


class TargetError(RuntimeError):
    """A target failed to start, to be configured, or died."""


def free_port() -> int:
    """An ephemeral TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int | None:
    """VmRSS of a process in KiB, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all its threads), or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load_prctl() -> Callable[..., int] | None:
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()  # resolved in the parent: no dlopen between fork and exec


def die_with_parent() -> None:
    """In the child: SIGKILL when the benchmark dies, so no daemon outlives it."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)


class Target:
    """One daemon under test: start, configure LUNs, give URLs, stop."""

    name = "?"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir / self.name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.control = 0
        self._blocksizes: dict[int, int] = {}

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        raise NotImplementedError

    def adm_command(self) -> list[str]:
        raise NotImplementedError

    def adm_env(self) -> dict[str, str] | None:
        return None

    def adm(self, *args: str) -> str:
        """Run the admin tool with tgtadm's arguments; raises TargetError on failure."""
        cmd = [*self.adm_command(), "-C", str(self.control), "--lld", "iscsi", *args]
        res = subprocess.run(cmd, env=self.adm_env(), capture_output=True, text=True,
                             timeout=60)
        if res.returncode != 0:
            raise TargetError(f"{self.name}: `{' '.join(cmd)}` -> rc {res.returncode}: "
                              f"{(res.stderr or res.stdout).strip()}")
        return res.stdout

    def setup(self, disk: Path, tid: int = 1, iqn: str = IQN) -> None:
        """Target ``iqn`` with LUN 1 on ``disk`` (rdwr) and LUN 2 on the null store."""
        self.adm("--op", "new", "--mode", "target", "--tid", str(tid), "-T", iqn)
        self.adm("--op", "new", "--mode", "logicalunit", "--tid", str(tid),
                 "--lun", str(FILE_LUN), "-b", str(disk))
        self.adm("--op", "new", "--mode", "logicalunit", "--tid", str(tid),
                 "--lun", str(NULL_LUN), "-b", str(self.workdir / "null0"), "-E", "null")
        self.adm("--op", "bind", "--mode", "target", "--tid", str(tid), "-I", "ALL")

    def blocksize(self, lun: int) -> int:
        """The LUN's logical block size, from ``iscsi-readcapacity16`` (cached)."""
        if lun not in self._blocksizes:
            res = subprocess.run(["iscsi-readcapacity16", self.url(lun)], capture_output=True,
                                 text=True, timeout=20)
            m = re.search(r"LOGICAL BLOCK LENGTH IN BYTES:(\d+)", res.stdout)
            if res.returncode != 0 or not m:
                raise TargetError(f"{self.name}: iscsi-readcapacity16 {self.url(lun)} -> "
                                  f"rc {res.returncode}: {(res.stderr or res.stdout).strip()}")
            self._blocksizes[lun] = int(m.group(1))
        return self._blocksizes[lun]

    def verify(self, disk: Path) -> None:
        """LUN 1 reads back exactly the file (``qemu-img compare``); raises TargetError."""
        res = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "raw", str(disk),
                              self.url(FILE_LUN)], capture_output=True, text=True,
                             timeout=300)
        if res.returncode != 0:
            raise TargetError(f"{self.name}: LUN {FILE_LUN} differs from {disk} "
                              f"(qemu-img compare rc {res.returncode}): "
                              f"{(res.stdout + res.stderr).strip()[-300:]}")

    def portal(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, lun: int, iqn: str = IQN) -> str:
        return f"iscsi://{self.portal()}/{iqn}/{lun}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop our daemon by PID: SIGTERM, then SIGKILL after a grace period."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


class PytgtTarget(Target):
    """``python -m pytgt.daemon.main`` from this checkout, state under the work dir."""

    name = "pytgt"

    def __init__(self, workdir: Path, loop: str = "default", source: Path = REPO,
                 args: tuple[str, ...] = ()) -> None:
        super().__init__(workdir)
        self.loop = loop
        self.source = source  # the checkout whose src/ runs
        self.args = args  # more pytgtd options (--pytgt-args)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTGT_RUN_DIR"] = str(self.workdir / "run")
        env["PYTGT_STATE_DIR"] = str(self.workdir / "state")
        env["PYTHONPATH"] = str(self.source / "src") + os.pathsep + env.get("PYTHONPATH", "")
        return env

    def adm_env(self) -> dict[str, str]:
        return self._env()

    def adm_command(self) -> list[str]:
        return [sys.executable, "-m", "pytgt.cli.pytgtadm"]

    def start(self, extra: tuple[str, ...] = (), timeout: float = 30.0) -> None:
        """Start pytgtd on an ephemeral port; return once it logs the bound port."""
        self.control = random.randint(2000, 32000)
        if self.loop == "asyncio":  # hide uvloop: pytgtd then falls back to asyncio.run
            launcher = ["-c", "import runpy, sys; sys.modules['uvloop'] = None; "
                        "sys.argv[0] = 'pytgtd'; "
                        "runpy.run_module('pytgt.daemon.main', run_name='__main__')"]
        else:
            launcher = ["-m", "pytgt.daemon.main"]
        cmd = [sys.executable, *launcher, "-f", "-C", str(self.control),
               "--iscsi", "portal=127.0.0.1:0", *self.args, *extra]
        self.proc = subprocess.Popen(cmd, env=self._env(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, preexec_fn=die_with_parent)
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed by the drain thread
        found = threading.Event()
        threading.Thread(target=self._drain, args=(log, found), daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not found.is_set() and self.alive():
            found.wait(0.05)
        if not found.is_set():
            self.stop()
            raise TargetError(f"pytgtd did not start ({' '.join(cmd)}):\n{self.log_tail()}")

    def _drain(self, log: BinaryIO, found: threading.Event) -> None:
        """Copy the daemon's stderr to its log file; note the port it reports."""
        assert self.proc is not None and self.proc.stderr is not None
        with log:
            for line in self.proc.stderr:
                log.write(line)
                log.flush()
                if not found.is_set():
                    m = READY.search(line.decode(errors="replace"))
                    if m:
                        self.port = int(m.group(2))
                        found.set()


class BaselineTarget(PytgtTarget):
    """pytgtd from another checkout (``--baseline DIR``): before/after in one alternation."""

    name = "baseline"


class TgtTarget(Target):
    """Debian tgt's ``tgtd -f`` on a free port, control socket ``/var/run/tgtd/socket.N``."""

    name = "tgt"

    @staticmethod
    def installed() -> bool:
        return shutil.which("tgtd") is not None and shutil.which("tgtadm") is not None

    def adm_command(self) -> list[str]:
        return ["tgtadm"]

    def _pick_control(self) -> int:
        while True:
            n = random.randint(2000, 32000)  # tgtd accepts -C 0..32767
            if not (TGT_RUN_DIR / f"socket.{n}.lock").exists():
                return n

    def start(self, attempts: int = 5) -> None:
        """Start tgtd; retry on another port when the portal cannot be bound."""
        last = ""
        for _ in range(attempts):
            self.control, self.port = self._pick_control(), free_port()
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(
                    ["tgtd", "-f", "-C", str(self.control), "--iscsi",
                     f"portal={self.portal()}"], stdout=log, stderr=subprocess.STDOUT,
                    preexec_fn=die_with_parent)
            if self._wait_ready():
                return
            last = self.log_tail()
            self.stop()
        raise TargetError(f"tgtd did not start:\n{last}")

    def _wait_ready(self, timeout: float = 10.0) -> bool:
        """Control socket answers and the log shows no portal bind failure."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            if (TGT_RUN_DIR / f"socket.{self.control}").exists():
                res = subprocess.run(["tgtadm", "-C", str(self.control), "--op", "show",
                                      "--mode", "sys"], capture_output=True, timeout=10)
                if res.returncode == 0:
                    return "unable to bind" not in self.log_tail(200)
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        """tgtd ignores SIGTERM while targets exist: delete them, then the system."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            for tid in self._tids():
                subprocess.run(["tgtadm", "-C", str(self.control), "--lld", "iscsi", "--op",
                                "delete", "--mode", "target", "--tid", tid, "--force"],
                               capture_output=True, timeout=30)
            subprocess.run(["tgtadm", "-C", str(self.control), "--op", "delete", "--mode",
                            "system"], capture_output=True, timeout=30)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for suffix in ("", ".lock"):
            (TGT_RUN_DIR / f"socket.{self.control}{suffix}").unlink(missing_ok=True)

    def _tids(self) -> list[str]:
        res = subprocess.run(["tgtadm", "-C", str(self.control), "--lld", "iscsi", "--op",
                              "show", "--mode", "target"], capture_output=True, text=True,
                             timeout=30)
        return re.findall(r"^Target (\d+):", res.stdout, re.M)


TARGETS: dict[str, type[Target]] = {"pytgt": PytgtTarget, "baseline": BaselineTarget,
                                    "tgt": TgtTarget}
