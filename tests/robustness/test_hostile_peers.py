"""Hostile and vanishing peers over real sockets against a daemon in its own process.

After each abuse the daemon must still serve a well-behaved initiator, without leaking
file descriptors or memory. The daemon runs with a 1 s login timeout.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest

from pytgt.initiator.scsi import cdb_read16, cdb_write16
from pytgt.iscsi.pdu import LoginRequest, ScsiCommand
from tests.robustness.daemon_proc import IQN
from tests.robustness.util import (
    Child,
    child_daemon,
    pump,
    raw_connect,
    raw_login,
    raw_ready,
    reset,
    run,
    still_serves,
    wait_closed,
    wait_for,
)

LOGIN_TIMEOUT = 1.0
MiB = 1 << 20


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Child]:
    tmp = tmp_path_factory.mktemp("hostile")
    with child_daemon(tmp, "--login-timeout", str(LOGIN_TIMEOUT), "--size", "64M") as d:
        run(still_serves(d.port))
        yield d
        assert d.alive()


def _settled_fds(d: Child, baseline: int, slack: int = 4, timeout: float = 10) -> None:
    wait_for(lambda: d.fds() <= baseline + slack, timeout,
             f"daemon fds back to ~{baseline} (now {d.fds()})")


def test_connect_and_never_log_in_is_dropped_after_the_login_timeout(daemon: Child) -> None:
    with raw_connect(daemon.port) as s:
        took = wait_closed(s, LOGIN_TIMEOUT + 5)
    assert took >= LOGIN_TIMEOUT * 0.5
    run(still_serves(daemon.port))


def test_half_a_header_then_silence_is_dropped(daemon: Child) -> None:
    with raw_connect(daemon.port) as s:
        s.sendall(LoginRequest(itt=0, isid=1, transit=True, csg=1, nsg=3).encode()[:20])
        wait_closed(s, LOGIN_TIMEOUT + 5)
    run(still_serves(daemon.port))


@pytest.mark.parametrize("dlen", [(1 << 24) - 1, 8193])
def test_login_header_claiming_a_huge_segment_is_refused_unread(daemon: Child,
                                                                  dlen: int) -> None:
    rss0 = daemon.rss()
    with raw_connect(daemon.port) as s:
        hdr = bytearray(LoginRequest(itt=0, isid=1, transit=True, csg=1, nsg=3).encode())
        hdr[5:8] = dlen.to_bytes(3, "big")
        s.sendall(bytes(hdr) + b"InitiatorName=x\0")
        wait_closed(s, 5)
    assert daemon.rss() - rss0 < 8 * MiB
    run(still_serves(daemon.port))


def test_full_feature_header_claiming_16_MiB_closes_without_allocating(daemon: Child) -> None:
    sock, conn = raw_login(daemon.port)
    rss0 = daemon.rss()
    with sock:
        hdr = bytearray(ScsiCommand(itt=5, lun=1 << 48, cdb=cdb_write16(0, 8), cmd_sn=1,
                                    expected_data_transfer_length=4096, write=True,
                                    final=True).encode())
        hdr[5:8] = ((1 << 24) - 1).to_bytes(3, "big")  # 16 MiB - 1 > MaxRecvDataSegmentLength
        sock.sendall(bytes(hdr) + os.urandom(4096))
        wait_closed(sock, 5)
    assert daemon.rss() - rss0 < 8 * MiB
    run(still_serves(daemon.port))


@pytest.mark.parametrize("garbage", [b"\xff" * 4096, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 4,
                                     bytes(48) * 10])
def test_garbage_bytes(daemon: Child, garbage: bytes) -> None:
    with raw_connect(daemon.port) as s:
        s.sendall(garbage + os.urandom(1000))
        wait_closed(s, LOGIN_TIMEOUT + 5)
    run(still_serves(daemon.port))


def test_killed_mid_login(daemon: Child) -> None:
    for cut in (10, 48, 60):
        s = raw_connect(daemon.port)
        first = LoginRequest(itt=0, isid=0x400000000001, csg=0, nsg=1, transit=True,
                             data=f"InitiatorName=iqn.x\0TargetName={IQN}\0"
                                  "AuthMethod=None\0".encode()).encode()
        s.sendall(first[:cut])
        reset(s)
    run(still_serves(daemon.port))


def test_killed_mid_data_out(daemon: Child) -> None:
    base = daemon.fds()
    for _ in range(5):
        sock, conn = raw_login(daemon.port, immediate_data=False, initial_r2t=True)
        raw_ready(sock, conn)
        conn.send_command(1, cdb_write16(0, 2048), os.urandom(MiB))
        pump(sock, conn)
        data = sock.recv(65536)  # the R2T
        conn.receive_data(data)
        out = b"".join(bytes(b) for b in conn.data_to_send())
        assert out, "no Data-Out after the R2T"
        sock.sendall(out[: len(out) // 3])  # part of a Data-Out, then vanish
        reset(sock)
    run(still_serves(daemon.port))
    _settled_fds(daemon, base)


def test_killed_mid_data_in(daemon: Child) -> None:
    base = daemon.fds()
    for _ in range(5):
        sock, conn = raw_login(daemon.port)
        raw_ready(sock, conn)
        conn.send_command(1, cdb_read16(0, 32768), read_length=16 * MiB)  # 16 MiB READ
        pump(sock, conn)
        got = 0
        while got < 300_000:  # some Data-In, then vanish with the rest unread
            got += len(sock.recv(100_000))
        reset(sock)
    run(still_serves(daemon.port))
    _settled_fds(daemon, base)


def test_many_idle_connections_do_not_lock_out_an_initiator(daemon: Child) -> None:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    n = min(500, soft - 100)
    idle = []
    try:
        for _ in range(n):
            idle.append(raw_connect(daemon.port))
        run(still_serves(daemon.port), timeout=30)
    finally:
        for s in idle:
            s.close()


def test_thousands_of_connect_disconnect_cycles_do_not_leak_fds(daemon: Child) -> None:
    cycles = int(os.environ.get("PYTGT_ROBUST_CYCLES", "500"))
    run(still_serves(daemon.port))
    base, rss0 = daemon.fds(), daemon.rss()
    hello = LoginRequest(itt=0, isid=1, csg=0, nsg=1, transit=True,
                         data=b"InitiatorName=iqn.x\0").encode()
    for i in range(cycles):
        s = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
        if i % 3 == 1:
            s.sendall(hello[:30])
        if i % 3 == 2:
            reset(s)
        else:
            s.close()
    _settled_fds(daemon, base)
    run(still_serves(daemon.port))
    assert daemon.rss() - rss0 < 32 * MiB


def test_logins_and_logouts_do_not_leak(daemon: Child) -> None:
    run(still_serves(daemon.port))
    base = daemon.fds()

    async def cycles() -> None:
        for _ in range(100):
            await still_serves(daemon.port)

    run(cycles(), timeout=120)
    _settled_fds(daemon, base)


@pytest.mark.skipif(shutil.which("iscsi-inq") is None, reason="libiscsi tools not installed")
def test_libiscsi_still_works_after_the_abuse(daemon: Child) -> None:
    out = subprocess.run(["iscsi-inq", f"iscsi://127.0.0.1:{daemon.port}/{IQN}/1"],
                         capture_output=True, timeout=30, check=False)
    assert out.returncode == 0, out.stderr


def test_control_socket_garbage_gets_an_error_reply(daemon: Child) -> None:
    import json

    for payload in (os.urandom(300), b"{", b"[1,2]\n", b"\xff\xfe\n", b'{"mode": 5}\n',
                    b"x" * (70 * 1024)):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(15)
            s.connect(daemon.control)
            try:
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
            except (BrokenPipeError, ConnectionResetError):
                pass
            chunks = []
            try:
                while chunk := s.recv(65536):
                    chunks.append(chunk)
            except ConnectionResetError:
                pass
        reply = b"".join(chunks)
        if reply:  # an oversized request may be cut off with a reset after the reply
            obj = json.loads(reply)
            assert obj["rc"] != 0
    rc, out = daemon.admin(mode="target", op="show")
    assert rc == 0 and IQN in out
    assert daemon.alive()



def test_non_reading_peer_cannot_pin_unbounded_data_in(daemon: Child) -> None:
    import time

    limit = 256 * MiB
    sock, conn = raw_login(daemon.port)
    try:
        raw_ready(sock, conn)
        rss0 = peak = daemon.rss()
        for _ in range(120):  # 120 x READ(16) of 16 MiB, all in one TCP send
            conn.send_command(1, cdb_read16(0, 32768), read_length=16 * MiB)
        sock.sendall(b"".join(bytes(b) for b in conn.data_to_send()))
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline and peak - rss0 < limit:
            peak = max(peak, daemon.rss())
            time.sleep(0.05)  # sampling the daemon's RSS, bounded by the deadline
    finally:
        reset(sock)
    assert daemon.alive()
    assert peak - rss0 < limit, f"RSS grew by {(peak - rss0) >> 20} MiB"


def test_login_text_across_many_continuation_pdus_is_capped(daemon: Child) -> None:
    """Login text continued (C bit) forever: the login fails once the total passes the cap."""
    from pytgt.iscsi.pdu import LoginResponse

    with raw_connect(daemon.port) as s:
        chunk = b"X-junk=" + b"a" * 8000
        status = None
        s.settimeout(10)
        for _ in range(40):  # 320 KB in total
            s.sendall(LoginRequest(itt=0, isid=1, csg=0, nsg=1, cont=True, data=chunk).encode()
                      + chunk + bytes(-len(chunk) % 4))
            hdr = s.recv(48, socket.MSG_WAITALL)
            if len(hdr) < 48:
                break
            rsp = LoginResponse.decode(hdr)
            dlen = int.from_bytes(hdr[5:8], "big")
            if dlen:
                s.recv(dlen + (-dlen % 4), socket.MSG_WAITALL)
            if rsp.status_class:
                status = rsp.status_class
                break
        assert status == 2  # initiator error: text too long
        wait_closed(s, 5)
    run(still_serves(daemon.port))
