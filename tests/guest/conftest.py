"""The Linux kernel's iSCSI initiator in a throwaway QEMU guest (contrib/linux_guest.py),
built once per cache and booted once per test, against a pytgtd on 127.0.0.1."""

from __future__ import annotations

import contextlib
import shutil
import socket
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.helpers import RunningDaemon, running_daemon

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "contrib"))
import linux_guest  # noqa: E402
from linux_guest import Guest, GuestRun, build_guest  # noqa: E402

__all__ = ["BOOT_TIMEOUT", "PORTAL", "PORTAL2", "Guest", "Link", "booted", "linux_guest",
           "make_target", "pytgt_files"]

#: The guest address QEMU relays to the daemon's first portal (and the second's).
PORTAL, PORTAL2 = "10.0.2.100:3260", "10.0.2.101:3260"
#: Seconds a boot may take from QEMU's start to the script's last line (TCG, one CPU).
BOOT_TIMEOUT = 240


@pytest.fixture(scope="session")
def guest() -> Guest:
    """The cached guest (built on first use: about 10 s and 90 MB of Debian packages)."""
    for tool in ("qemu-system-x86_64", "apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (apt-get install qemu-system-x86)")
    return build_guest()


@pytest.fixture(scope="session")
def python_guest(guest: Guest) -> Guest:
    """The guest with Python 3 and pytgt's dependencies (linux_guest's Python variant)."""
    return build_guest(python=True)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[RunningDaemon]:
    with running_daemon(tmp_path, check=False) as d:  # some tests SIGKILL it
        yield d


def make_target(d: RunningDaemon, tid: int, iqn: str, backing: Path, size: int = 0) -> None:
    """A target with LUN 1 on ``backing`` (made sparse of ``size`` bytes if given), open
    to all initiators."""
    if size:
        with open(backing, "wb") as f:
            f.truncate(size)
    d.adm("--lld", "iscsi", "--op", "new", "--mode", "target", "--tid", str(tid), "-T", iqn)
    d.adm("--lld", "iscsi", "--op", "new", "--mode", "logicalunit", "--tid", str(tid),
          "--lun", "1", "-b", str(backing))
    d.adm("--lld", "iscsi", "--op", "bind", "--mode", "target", "--tid", str(tid), "-I", "ALL")


@contextlib.contextmanager
def booted(guest: Guest, script: str, ports: Mapping[str, int | tuple[str, int]], log: Path,
           files: dict[str, bytes] | None = None, inbound: dict[int, int] | None = None,
           memory_mb: int = 512) -> Iterator[GuestRun]:
    """Boot the guest on ``script`` with each guest portal relayed to a local port on
    127.0.0.1, or to a (loopback address, port) (and ``files``, ``inbound`` as
    :meth:`Guest.boot`); on leaving, wait for the script's end and assert it exited 0
    (QEMU killed either way)."""
    forwards = {addr: port if isinstance(port, tuple) else ("127.0.0.1", port)
                for addr, port in ports.items()}
    run = guest.boot(script, forwards, files=files, log=log, memory_mb=memory_mb,
                     inbound=inbound)
    try:
        yield run
        status = run.finish(BOOT_TIMEOUT)
        assert status == 0, f"guest script exited {status}:\n{run.console()}"
    finally:
        run.kill()


def pytgt_files() -> dict[str, bytes]:
    """pytgt's source for the guest's /guest/pytgt (PYTHONPATH=/guest), with bytecode the
    guest never checks against it when this Python is the guest's 3.11 (no compiling of
    every module at each boot under TCG)."""
    import py_compile
    import tempfile

    src = Path(__file__).resolve().parents[2] / "src"
    out: dict[str, bytes] = {}
    same = sys.version_info[:2] == (3, 11)
    with tempfile.TemporaryDirectory() as tmp:
        for path in sorted((src / "pytgt").rglob("*.py")):
            rel = path.relative_to(src).as_posix()
            out[rel] = path.read_bytes()
            if same:
                pyc = f"{rel.rpartition('/')[0]}/__pycache__/{path.stem}.cpython-311.pyc"
                py_compile.compile(str(path), f"{tmp}/x.pyc", f"/guest/{rel}", doraise=True,
                                   invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
                out[pyc] = Path(f"{tmp}/x.pyc").read_bytes()
    return out


class Link:
    """A TCP relay on 127.0.0.1 to ``port`` that a test can cut: :meth:`cut` closes
    every relayed connection and refuses new ones (a failed network path)."""

    def __init__(self, port: int) -> None:
        self.port_to = port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.socks: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                a, _ = self.server.accept()
                b = socket.create_connection(("127.0.0.1", self.port_to), timeout=10)
            except OSError:
                return
            with self.lock:
                self.socks += [a, b]
            for src, dst in ((a, b), (b, a)):
                threading.Thread(target=self._copy, args=(src, dst), daemon=True).start()

    @staticmethod
    def _copy(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(1 << 16):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        self.server.close()
        with self.lock:
            for sock in self.socks:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
