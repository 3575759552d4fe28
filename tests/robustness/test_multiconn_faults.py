"""Multi-connection sessions (MaxConnections=2, RFC 7143 5.3.4) whose initiator vanishes.

Every connection is reset (SO_LINGER 0) mid-I/O: READs streaming Data-In, WRITEs waiting
for the data an R2T asked for, one Data-Out cut in half; or one connection while the
other goes on. The daemon must free the session (gone from ``--op show``), its
connections, fds and asyncio tasks, keep an independent session going without a stall,
and let the same initiator port log straight back in (session reinstatement, 6.3.5) with
the unit attention SAM-5 gives a new I_T nexus and its SPC-3 reservation still held.

Both connections are hand-driven initiator cores (``raw_login``) sharing one CmdSN
sequence, so the test controls exactly what is in flight when the sockets die.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytgt.initiator.core import InitiatorConnection
from pytgt.initiator.events import CommandComplete, RequestFailed, TaskManagementComplete
from pytgt.initiator.scsi import cdb_read16, cdb_write16
from pytgt.iscsi.constants import TmfFunction
from pytgt.iscsi.serial import sn_lt
from pytgt.scsi.sense import decode_sense
from tests.robustness.daemon_proc import IQN
from tests.robustness.test_sessions import WRITE_EXCLUSIVE, pr_out
from tests.robustness.util import (
    INITIATOR,
    Child,
    child_daemon,
    login,
    pump,
    raw_login,
    raw_ready,
    ready,
    reset,
    run,
    still_serves,
    wait_closed,
    wait_for,
)

MiB = 1 << 20
GOOD, CHECK_CONDITION, RESERVATION_CONFLICT = 0x00, 0x02, 0x18
UNIT_ATTENTION = 6
STALL = 2.0  # seconds: the slowest 4 KiB write+read round a bystander may see
OTHER = f"{INITIATOR}-other"


def isid(n: int) -> int:
    """A random-type ISID (11.12.5) numbered ``n``."""
    return (0x80 << 40) | (0x4D43 << 24) | (n << 8)


# -- a session over two hand-driven connections ------------------------------------------
class Mcs:
    """One session on two connections (CID 0 and 1); commands use one CmdSN sequence."""

    def __init__(self, port: int, isid: int, **options: Any) -> None:
        opts = {"isid": isid, "max_connections": 2, "immediate_data": False,
                "initial_r2t": True, **options}
        s0, c0 = raw_login(port, **opts)
        assert c0.negotiated.max_connections == 2, "target offers one connection per session"
        self.socks, self.conns = [s0], [c0]
        self.tsih = c0.tsih
        self.cmd_sn = c0.cmd_sn
        self.done: list[dict[int, Any]] = [{}]
        self.join(port, 1, opts)

    def join(self, port: int, cid: int, opts: dict[str, Any]) -> None:
        """Log connection ``cid`` into the session (5.3.4); ITTs kept session-unique.
        It negotiates no session-wide (LO) key and works by the session's values."""
        sock, conn = raw_login(port, **{**opts, "tsih": self.tsih, "cid": cid,
                                        "session": self.conns[0].negotiated})
        conn._next_itt = cid << 20
        if cid < len(self.conns):
            self.socks[cid], self.conns[cid], self.done[cid] = sock, conn, {}
        else:
            self.socks.append(sock)
            self.conns.append(conn)
            self.done.append({})

    def send(self, i: int, cdb: bytes, data: bytes = b"", read_length: int = 0) -> int:
        """Send a command on connection ``i`` with the session's next CmdSN; its ITT."""
        conn = self.conns[i]
        conn.cmd_sn = self.cmd_sn
        for other in self.conns:  # MaxCmdSN as the freshest of the connections saw it
            if sn_lt(conn.max_cmd_sn, other.max_cmd_sn):
                conn.max_cmd_sn = other.max_cmd_sn
        itt = conn.send_command(1, cdb, data, read_length)
        assert not conn._waiting, "CmdSN window closed"
        self.cmd_sn = conn.cmd_sn
        pump(self.socks[i], conn)
        return itt

    def wait(self, i: int, itt: int, timeout: float = 10) -> Any:
        """The result of command ``itt`` on connection ``i`` (others are kept)."""
        sock, conn, done = self.socks[i], self.conns[i], self.done[i]
        deadline = time.monotonic() + timeout
        while itt not in done:
            for ev in pump(sock, conn):
                if isinstance(ev, CommandComplete):
                    done[ev.itt] = ev.result
                elif isinstance(ev, RequestFailed):
                    raise AssertionError(f"ITT {ev.itt:#x} failed: {ev.error}")
            if itt in done:
                break
            left = deadline - time.monotonic()
            assert left > 0, f"no answer to ITT {itt:#x} on connection {i}"
            sock.settimeout(left)
            data = sock.recv(1 << 20)
            assert data, f"connection {i} closed"
            conn.receive_data(data)
        return done.pop(itt)

    def command(self, i: int, cdb: bytes, data: bytes = b"", read_length: int = 0) -> Any:
        return self.wait(i, self.send(i, cdb, data, read_length))

    def ready(self) -> None:
        """Consume the new nexus's unit attentions (they are per session, not connection)."""
        for _ in range(6):
            if self.command(0, bytes(6)).status == GOOD:
                return
        raise AssertionError("LU never became ready")

    def write_and_read_across(self, lba: int) -> None:
        """Write on connection 0, read it back on connection 1."""
        pattern = os.urandom(4096)
        assert self.command(0, cdb_write16(lba, 8), pattern).status == GOOD
        assert self.command(1, cdb_read16(lba, 8), read_length=4096).data == pattern

    def io_in_flight(self, i: int) -> None:
        """A 16 MiB READ streaming and a 1 MiB WRITE waiting for its R2T's Data-Out."""
        self.send(i, cdb_write16(0, 2048), os.urandom(MiB))
        self.send(i, cdb_read16(0, 32768), read_length=16 * MiB)
        self.socks[i].settimeout(10)
        got = 0
        while got < 300_000:  # some Data-In and the R2T arrive; never fed to the core
            got += len(self.socks[i].recv(100_000))

    def cut_data_out(self, i: int) -> None:
        """A 1 MiB WRITE whose first Data-Out (answering the R2T) stops a third of the way."""
        self.send(i, cdb_write16(2048, 2048), os.urandom(MiB))
        sock, conn = self.socks[i], self.conns[i]
        sock.settimeout(10)
        out = b""
        while not out:  # until the core answered the R2T
            data = sock.recv(65536)
            assert data, "closed before the R2T"
            conn.receive_data(data)
            while conn.next_event() is not None:
                pass
            out = b"".join(bytes(b) for b in conn.data_to_send())
        sock.sendall(out[: len(out) // 3])

    def kill(self, *which: int) -> None:
        for i in which or range(len(self.socks)):
            if self.socks[i].fileno() != -1:  # not reset already
                reset(self.socks[i])

    def logout(self) -> None:
        """Logout (close the session) on connection 0; the target closes both."""
        conn = self.conns[0]
        conn.send_logout()
        pump(self.socks[0], conn)
        for sock in self.socks:
            wait_closed(sock, 10)
            sock.close()


def raw_tmf(sock: socket.socket, conn: InitiatorConnection, function: int, lun: int = 1) -> int:
    itt = conn.send_task_management(function, lun)
    sock.settimeout(10)
    while True:
        for ev in pump(sock, conn):
            if isinstance(ev, TaskManagementComplete) and ev.itt == itt:
                return ev.response
        data = sock.recv(65536)
        assert data, "connection closed"
        conn.receive_data(data)


def raw_run(sock: socket.socket, conn: InitiatorConnection, cdb: bytes,
            data: bytes = b"", read_length: int = 0) -> Any:
    itt = conn.send_command(1, cdb, data, read_length)
    sock.settimeout(10)
    while True:
        for ev in pump(sock, conn):
            if isinstance(ev, CommandComplete) and ev.itt == itt:
                return ev.result
        chunk = sock.recv(1 << 20)
        assert chunk, "connection closed"
        conn.receive_data(chunk)


# -- the daemon and what it shows -------------------------------------------------------------
@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Child]:
    tmp = tmp_path_factory.mktemp("mcs")
    with child_daemon(tmp, "--size", "64M") as d:
        rc, out = d.admin(mode="target", op="update", tid=1, params="MaxConnections=2")
        assert rc == 0, out
        run(still_serves(d.port))
        yield d
        assert d.alive()
        log = Path(d.proc.log_path).read_text(errors="replace")  # type: ignore[attr-defined]
        assert "Traceback" not in log, log[-4000:]


def nexuses(d: Child) -> dict[int, list[int]]:
    """``--op show``'s I_T nexus list: TSIH -> the CIDs of its connections."""
    rc, out = d.admin(mode="target", op="show")
    assert rc == 0, out
    shown: dict[int, list[int]] = {}
    current = None
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("I_T nexus: "):
            current = int(line.split(": ")[1])
            shown[current] = []
        elif line.startswith("Connection: ") and current is not None:
            shown[current].append(int(line.split(": ")[1]))
        elif line.startswith("LUN information"):
            current = None
    return shown


def wait_gone(d: Child, tsih: int, timeout: float = 10) -> None:
    wait_for(lambda: tsih not in nexuses(d), timeout, f"session {tsih} gone from --op show")


def settle_fds(d: Child, baseline: int, slack: int = 4, timeout: float = 10) -> None:
    wait_for(lambda: d.fds() <= baseline + slack, timeout,
             f"daemon fds back to ~{baseline} (now {d.fds()})")


class Bystander:
    """An independent session doing 4 KiB rounds (write+read, or read only) in a thread
    of its own until stopped; records its rounds and the slowest one."""

    def __init__(self, port: int, writes: bool = True) -> None:
        self.port, self.writes = port, writes
        self.rounds, self.slowest = 0, 0.0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="bystander", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(asyncio.wait_for(self._loop(), 600))
        except BaseException as exc:  # reported by the test thread
            self.error = exc

    async def _loop(self) -> None:
        s = await login(self.port, initiator_name=f"{INITIATOR}-bystander")
        try:
            await ready(s)
            pattern = os.urandom(4096)
            await s.write16(1, 8192, pattern)
            while not self._stop.is_set():
                t0 = time.monotonic()
                if self.writes:
                    pattern = os.urandom(4096)
                    await s.write16(1, 8192, pattern)
                assert await s.read16(1, 8192, 8) == pattern
                self.slowest = max(self.slowest, time.monotonic() - t0)
                self.rounds += 1
        finally:
            await s.logout()

    def progressing(self, rounds: int = 3) -> None:
        """Some more rounds complete from now on (within the stall bound)."""
        start = self.rounds
        wait_for(lambda: self.rounds >= start + rounds or self.error is not None,
                 STALL * rounds + 5, "the bystander session to make progress")
        self._check()

    def _check(self) -> None:
        if self.error is not None:
            raise AssertionError(f"bystander failed: {self.error!r}") from self.error
        assert self.slowest < STALL, f"bystander stalled {self.slowest:.2f} s"

    def __enter__(self) -> Bystander:
        self._thread.start()
        wait_for(lambda: self.rounds > 0 or self.error is not None, 15, "bystander start")
        self._check()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)
        assert not self._thread.is_alive(), "bystander did not stop"
        self._check()


# -- the tests ------------------------------------------------------------------------------
def test_both_connections_reset_mid_io_free_everything(daemon: Child) -> None:
    with Bystander(daemon.port) as by:
        base = daemon.fds()
        for n in range(4):
            m = Mcs(daemon.port, isid(1))
            assert nexuses(daemon)[m.tsih] == [0, 1]
            m.ready()
            m.write_and_read_across(64 + n * 8)
            m.io_in_flight(0)
            m.cut_data_out(1)
            m.kill()
            by.progressing()
            if n % 2 == 0:  # else: log straight back in, racing the cleanup (reinstatement)
                wait_gone(daemon, m.tsih)
        m = Mcs(daemon.port, isid(1))
        m.ready()
        m.write_and_read_across(200)
        m.logout()
        wait_for(lambda: len(nexuses(daemon)) == 1, 10, "only the bystander's session left")
        settle_fds(daemon, base)
        by.progressing()


def test_one_connection_reset_the_other_goes_on(daemon: Child) -> None:
    with Bystander(daemon.port) as by:
        base = daemon.fds()
        m = Mcs(daemon.port, isid(2))
        m.ready()
        m.cut_data_out(1)
        m.kill(1)
        wait_for(lambda: nexuses(daemon).get(m.tsih) == [0], 10,
                 "the dead connection gone from --op show, the session still there")
        for lba in (300, 308, 316):  # connection 0 goes on
            pattern = os.urandom(4096)
            assert m.command(0, cdb_write16(lba, 8), pattern).status == GOOD
            assert m.command(0, cdb_read16(lba, 8), read_length=4096).data == pattern
        by.progressing()
        m.join(daemon.port, 1, {"isid": isid(2), "max_connections": 2,
                                "immediate_data": False, "initial_r2t": True})
        assert nexuses(daemon)[m.tsih] == [0, 1]
        m.write_and_read_across(324)
        m.io_in_flight(0)  # now the other way round: connection 0 dies, 1 goes on
        m.kill(0)
        wait_for(lambda: nexuses(daemon).get(m.tsih) == [1], 10, "connection 0 gone")
        assert m.command(1, cdb_read16(324, 8), read_length=4096).status == GOOD
        m.kill(1)
        wait_gone(daemon, m.tsih)
        settle_fds(daemon, base)
        by.progressing()


def read_reservation(m: Mcs) -> tuple[int, int] | None:
    """PERSISTENT RESERVE IN, READ RESERVATION (SPC-4 6.15.3): (key, type) or None."""
    cdb = bytes([0x5E, 0x01, 0, 0, 0, 0, 0]) + struct.pack(">H", 64) + bytes(1)
    r = m.command(0, cdb, read_length=64)
    assert r.status == GOOD
    if struct.unpack_from(">I", r.data, 4)[0] < 16:
        return None
    return struct.unpack_from(">Q", r.data, 8)[0], r.data[21] & 0x0F


def test_reinstated_session_sees_a_reset_ua_and_keeps_its_reservation(daemon: Child) -> None:
    """The old nexus had I/O in flight on both connections when another initiator reset
    the LU (a 29/03 UA pending for it); then both its connections were reset, and the LU
    was reset again while it was gone. The same initiator port logs back in: one UNIT
    ATTENTION, ASC 29h (its new I_T nexus: 29/00 POWER ON, RESET, which SAM-5 5.14 ranks
    above and in place of the pending 29/03), then GOOD; its registration and WRITE
    EXCLUSIVE reservation are still in force (a nexus loss or LU reset leaves persistent
    reservations alone)."""
    key = 0xA1
    with Bystander(daemon.port, writes=False) as by:
        m = Mcs(daemon.port, isid(3))
        m.ready()
        assert m.command(0, *pr_out(0, 0, key)).status == GOOD  # REGISTER
        assert m.command(1, *pr_out(1, key, 0, WRITE_EXCLUSIVE)).status == GOOD  # RESERVE
        o_sock, o = raw_login(daemon.port, initiator_name=OTHER)
        raw_ready(o_sock, o)
        m.io_in_flight(0)
        m.cut_data_out(1)
        # aborts m's commands on both connections; 29/03 pending for m's nexus
        assert raw_tmf(o_sock, o, TmfFunction.LOGICAL_UNIT_RESET) == 0
        m.kill()
        wait_gone(daemon, m.tsih)
        assert raw_tmf(o_sock, o, TmfFunction.LOGICAL_UNIT_RESET) == 0  # while m is gone
        raw_ready(o_sock, o)
        by.progressing()

        m = Mcs(daemon.port, isid(3))  # the same initiator port: reinstatement
        first = m.command(1, bytes(6))
        assert first.status == CHECK_CONDITION
        sense_key, asc, ascq = decode_sense(first.sense)
        assert (sense_key, asc) == (UNIT_ATTENTION, 0x29), (sense_key, asc, ascq)
        assert ascq in (0x00, 0x07), ascq  # POWER ON/RESET, or I_T NEXUS LOSS OCCURRED
        assert m.command(0, bytes(6)).status == GOOD  # nothing stale behind it
        assert read_reservation(m) == (key, WRITE_EXCLUSIVE)
        pattern = os.urandom(4096)
        blocked = raw_run(o_sock, o, cdb_write16(400, 8), pattern)
        assert blocked.status == RESERVATION_CONFLICT
        assert m.command(1, cdb_write16(400, 8), pattern).status == GOOD
        assert raw_run(o_sock, o, cdb_read16(400, 8), read_length=4096).data == pattern
        assert m.command(0, *pr_out(2, key, 0, WRITE_EXCLUSIVE)).status == GOOD  # RELEASE
        assert m.command(0, *pr_out(0, key, 0)).status == GOOD  # unregister
        assert raw_run(o_sock, o, cdb_write16(400, 8), pattern).status == GOOD
        m.logout()
        reset(o_sock)
        by.progressing()


class InProcess:
    """A :class:`Daemon` on an asyncio loop in a thread of this process, so that its
    sessions, connections and tasks can be counted (on its own loop)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.daemon: Any = None
        self._stop: asyncio.Event | None = None
        self._started: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self.loop.run_until_complete,
                                        args=(self._serve(),), name="daemon", daemon=True)

    async def _serve(self) -> None:
        from pytgt.daemon.server import Daemon

        self._stop = asyncio.Event()
        try:
            async with Daemon([("127.0.0.1", 0)]) as d:
                for req in ({"mode": "target", "op": "new", "tid": 1, "targetname": IQN},
                            {"mode": "logicalunit", "op": "new", "tid": 1, "lun": 1,
                             "bstype": "memory", "backing_store": "64M", "bsopts": "size=64M"},
                            {"mode": "target", "op": "bind", "tid": 1,
                             "initiator_address": "ALL"},
                            {"mode": "target", "op": "update", "tid": 1,
                             "params": "MaxConnections=2"}):
                    rc, out = await d.management.handle(req)
                    assert rc == 0, out
                self.daemon = d
                self._started.set_result(d.portals[0][1])
                await self._stop.wait()
        except BaseException as exc:
            if not self._started.done():
                self._started.set_exception(exc)
            raise

    def state(self) -> dict[str, int]:
        """What the daemon holds: sessions, connections, running commands, asyncio tasks,
        I_T nexuses (SCSI target, LU, ``--op show``) and pending unit attentions."""
        async def count() -> dict[str, int]:
            d = self.daemon
            conns = d.service.connections
            target = d.registry.targets[1]
            lu = target.scsi.luns[1]
            return {"sessions": len(d.service.sessions.sessions), "connections": len(conns),
                    "running": sum(p._pending for p in conns) + len(target.scsi.running()),
                    "tasks": len(asyncio.all_tasks()), "scsi_nexuses": len(target.scsi.nexuses),
                    "lu_nexuses": len(lu.nexuses), "shown": len(target.nexuses),
                    "shown_connections": sum(len(i.connections)
                                             for i in target.nexuses.values()),
                    "ua": len(lu.ua)}
        return asyncio.run_coroutine_threadsafe(count(), self.loop).result(10)

    def __enter__(self) -> InProcess:
        self._thread.start()
        self.port = self._started.result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive(), "daemon thread did not stop"
        self.loop.close()


def test_in_process_every_connection_reset_mid_io_leaves_no_task_behind() -> None:
    """The same faults against a daemon in this process: once the initiator is gone no
    session, connection, command coroutine, asyncio task, nexus or UA of it is left."""
    with InProcess() as d:
        m = Mcs(d.port, isid(5))
        m.ready()
        m.write_and_read_across(64)
        m.logout()
        wait_for(lambda: d.state()["sessions"] == 0, 10, "warm-up session gone")
        idle = d.state()
        assert idle["connections"] == idle["running"] == idle["lu_nexuses"] == 0, idle
        for n in range(4):
            m = Mcs(d.port, isid(5))
            m.ready()
            m.write_and_read_across(64 + n * 8)
            m.io_in_flight(n % 2)
            m.cut_data_out(1 - n % 2)
            if n == 3:  # one connection first, the other a little later
                m.kill(0)
                wait_for(lambda: d.state()["connections"] == 1, 10, "connection 0 freed")
                assert d.state()["shown_connections"] == 1, "--op show lists a dead connection"
            m.kill()
            wait_for(lambda: d.state() == idle, 10, f"daemon back to {idle} ({d.state()})")


def test_many_mcs_login_io_reset_cycles_do_not_leak(daemon: Child) -> None:
    cycles = int(os.environ.get("PYTGT_MCS_CYCLES", "300"))
    m = Mcs(daemon.port, isid(4))  # warm up: code paths, pools, buffers
    m.ready()
    m.write_and_read_across(500)
    m.kill()
    wait_gone(daemon, m.tsih)
    base, rss0 = daemon.fds(), daemon.rss()
    t0 = time.monotonic()
    for i in range(cycles):
        m = Mcs(daemon.port, isid(4 + i % 4))  # an ISID again every 4th: reinstatement
        m.ready()
        m.write_and_read_across(512 + (i % 64) * 8)
        m.send(0, cdb_read16(0, 256), read_length=128 << 10)  # in flight on both
        m.send(1, cdb_write16(1024, 8), os.urandom(4096))
        m.kill()
    took = time.monotonic() - t0
    wait_for(lambda: not nexuses(daemon), 15, "every session gone from --op show")
    settle_fds(daemon, base)
    run(still_serves(daemon.port))
    fds, rss = daemon.fds(), daemon.rss()
    print(f"\n{cycles} MC/S cycles in {took:.1f} s: fds {base} -> {fds}, "
          f"RSS {rss0 >> 20} -> {rss >> 20} MiB")
    assert rss - rss0 < 32 * MiB, f"RSS grew by {(rss - rss0) >> 20} MiB"


def test_connection_reinstated_under_its_cid_stays_listed() -> None:
    """A new login with a live connection's CID replaces it (RFC 7143 6.3.4): the old
    connection's close must not take the new one off ``--op show``."""
    with InProcess() as d:
        m = Mcs(d.port, isid(6))
        m.ready()
        old = m.socks[1]
        m.join(d.port, 1, {"isid": isid(6), "max_connections": 2, "immediate_data": False,
                           "initial_r2t": True})
        wait_closed(old, 10)
        old.close()
        wait_for(lambda: d.state()["connections"] == 2, 10, "the replaced connection freed")
        assert d.state()["shown_connections"] == 2
        m.write_and_read_across(64)
        m.kill()
        wait_for(lambda: d.state()["sessions"] == 0, 10, "session gone")
        assert d.state()["shown"] == 0
