"""Helpers for robustness tests: daemons in child processes, raw iSCSI peers, fd/RSS."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytgt.daemon.control import request_sync
from pytgt.initiator import Initiator, InitiatorSession, ScsiError
from pytgt.initiator.core import InitiatorConnection
from pytgt.initiator.events import LoginComplete
from pytgt.initiator.options import InitiatorOptions
from tests.robustness.daemon_proc import IQN

ROOT = Path(__file__).resolve().parents[2]
INITIATOR = "iqn.2026-11.org.pytgt:robust-initiator"


@dataclass
class Child:
    """A daemon process we started: its pid, portal port and control socket."""

    proc: subprocess.Popen[bytes]
    port: int
    control: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def rss(self) -> int:
        """Resident set size in bytes."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def admin(self, **request: Any) -> tuple[int, str]:
        return request_sync(self.control, request, timeout=10)


def read_ready(proc: subprocess.Popen[bytes], timeout: float, marker: bytes) -> bytes:
    """The first line of the child's log containing ``marker`` within ``timeout`` seconds.

    The child writes to a log file (see :func:`spawn`), never to a pipe we might stop
    reading: a daemon blocked on a full stderr pipe stops serving everyone.
    """
    path = getattr(proc, "log_path", None)
    assert path is not None, "start the child with spawn()"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with open(path, "rb") as f:
            for line in f.read().splitlines():
                if marker in line:
                    return line
        time.sleep(0.02)  # polling the log for a condition, bounded by the deadline
    with open(path, "rb") as f:
        tail = f.read()[-2000:].decode(errors="replace")
    raise RuntimeError(f"daemon did not start: {tail}")


def spawn(argv: list[str], env: dict[str, str], log_path: Path,
          cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a child with stdout and stderr going to ``log_path``."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    proc.log_path = log_path  # type: ignore[attr-defined]
    return proc


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextmanager
def child_daemon(tmp_path: Path, *args: str, uvloop: bool = True) -> Iterator[Child]:
    """``tests.robustness.daemon_proc`` with ``args``; stopped (SIGTERM, then SIGKILL) after."""
    env = {**os.environ, "PYTGT_RUN_DIR": str(tmp_path / "run"),
           "PYTHONPATH": f"{ROOT}:{ROOT / 'src'}"}
    argv = [sys.executable, "-m", "tests.robustness.daemon_proc", *args]
    if uvloop:
        argv.append("--uvloop")
    proc = spawn(argv, env, tmp_path / f"daemon-{time.monotonic_ns()}.log", cwd=ROOT)
    try:
        line = read_ready(proc, 30, b"READY")
        _, port, control = line.decode().split()
        yield Child(proc, int(port), control)
    finally:
        stop(proc)


def run(coro: Any, timeout: float = 60) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def login(port: int, iqn: str = IQN, **kw: Any) -> InitiatorSession:
    kw.setdefault("initiator_name", INITIATOR)
    kw.setdefault("timeout", 10.0)
    return await Initiator.login("127.0.0.1", port, target=iqn, **kw)


async def ready(s: InitiatorSession, lun: int = 1) -> None:
    """TEST UNIT READY until GOOD (the first commands report UNIT ATTENTIONs)."""
    for _ in range(6):
        try:
            await s.test_unit_ready(lun)
            return
        except ScsiError as exc:
            if exc.sense_key != 6:
                raise
    await s.test_unit_ready(lun)


async def still_serves(port: int, iqn: str = IQN) -> None:
    """A fresh initiator logs in, writes, reads back and logs out."""
    s = await login(port, iqn)
    try:
        await ready(s)
        pattern = os.urandom(4096)
        await s.write16(1, 64, pattern)
        assert await s.read16(1, 64, 8) == pattern
    finally:
        await s.logout()


def raw_connect(port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def reset(sock: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0): the peer 'vanishes'."""
    import struct

    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def wait_closed(sock: socket.socket, timeout: float) -> float:
    """Seconds until the peer closes ``sock`` (reading and discarding); raises on timeout."""
    t0 = time.monotonic()
    sock.settimeout(timeout)
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            return time.monotonic() - t0
        except TimeoutError:
            raise AssertionError(f"connection still open after {timeout} s") from None
        if not chunk:
            return time.monotonic() - t0
        sock.settimeout(max(0.01, timeout - (time.monotonic() - t0)))


def raw_login(port: int, initiator_name: str = INITIATOR,
              **options: Any) -> tuple[socket.socket, InitiatorConnection]:
    """A logged-in connection driven by hand: the sans-I/O initiator core over a socket."""
    opts = InitiatorOptions(initiator_name=initiator_name, target_name=IQN, **options)
    conn = InitiatorConnection(opts)
    sock = raw_connect(port)
    conn.start_login()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for buf in conn.data_to_send():
            sock.sendall(buf)
        ev = conn.next_event()
        while ev is not None:
            if isinstance(ev, LoginComplete):
                return sock, conn
            ev = conn.next_event()
        data = sock.recv(65536)
        if not data:
            raise AssertionError("target closed the connection during login")
        conn.receive_data(data)
    raise AssertionError("login did not complete")


def pump(sock: socket.socket, conn: InitiatorConnection) -> list[Any]:
    """Send what the core has queued; return the events so far."""
    for buf in conn.data_to_send():
        sock.sendall(buf)
    events = []
    while (ev := conn.next_event()) is not None:
        events.append(ev)
    return events


def wait_for(cond: Any, timeout: float, what: str) -> None:
    """Poll ``cond()`` until true (a condition, not a fixed sleep); raises after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def raw_command(sock: socket.socket, conn: InitiatorConnection, cdb: bytes, lun: int = 1,
                timeout: float = 10.0) -> Any:
    """Run one command on a hand-driven connection; returns its ScsiResult."""
    from pytgt.initiator.events import CommandComplete

    itt = conn.send_command(lun, cdb)
    deadline = time.monotonic() + timeout
    sock.settimeout(timeout)
    while time.monotonic() < deadline:
        for ev in pump(sock, conn):
            if isinstance(ev, CommandComplete) and ev.itt == itt:
                return ev.result
        data = sock.recv(65536)
        if not data:
            raise AssertionError("connection closed")
        conn.receive_data(data)
    raise AssertionError("no answer")


def raw_ready(sock: socket.socket, conn: InitiatorConnection) -> None:
    """TEST UNIT READY until GOOD: consume the unit attentions of a new session."""
    for _ in range(6):
        if raw_command(sock, conn, bytes(6)).status == 0:
            return
    raise AssertionError("LU never became ready")
