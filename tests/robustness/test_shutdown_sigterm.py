"""SIGTERM to a pytgtd under write load from several sessions: every session is asked to
log out (AsyncEvent 1), the daemon exits 0, and every acknowledged write (FUA, or
followed by an acknowledged SYNCHRONIZE CACHE) is in the backing file."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytgt.initiator import Initiator, InitiatorError, InitiatorSession
from pytgt.iscsi.constants import AsyncEvent
from tests.helpers import RunningDaemon, running_daemon

IQN = "iqn.2026-11.org.pytgt:shutdown"
SESSIONS, WRITERS_PER_SESSION = 3, 2
BLOCK, SPAN = 512, 4096  # each writer owns SPAN blocks
LUN_SIZE = SESSIONS * WRITERS_PER_SESSION * SPAN * BLOCK
BEFORE_SIGNAL = 12  # acknowledged writes per writer before SIGTERM
SYNC_EVERY = 3


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[RunningDaemon]:
    with running_daemon(tmp_path, check=False) as d:
        yield d


def pattern(writer: int, seq: int) -> bytes:
    return (f"w{writer:02d}s{seq:06d}".encode() * 64)[:BLOCK]


class Writer:
    """Sequential writes to its own blocks; records what the target acknowledged."""

    def __init__(self, index: int, session: InitiatorSession, started: asyncio.Event) -> None:
        self.index, self.session, self.started = index, session, started
        self.durable: list[int] = []  # sequence numbers acknowledged as durable
        self.unsynced: list[int] = []

    async def run(self) -> None:
        seq = 0
        try:
            while seq < SPAN:
                lba = self.index * SPAN + seq
                fua = seq % 2 == 0
                await self.session.write16(1, lba, pattern(self.index, seq), fua=fua)
                (self.durable if fua else self.unsynced).append(seq)
                if len(self.unsynced) >= SYNC_EVERY:
                    await self.session.synchronize_cache(1)
                    self.durable += self.unsynced
                    self.unsynced.clear()
                seq += 1
                if len(self.durable) >= BEFORE_SIGNAL:
                    self.started.set()
        except InitiatorError:
            pass  # the target logged us out or closed the connection


def make_target(daemon: RunningDaemon, tmp_path: Path) -> Path:
    backing = tmp_path / "lun1.img"
    with open(backing, "wb") as f:
        f.truncate(LUN_SIZE)
    for args in (("--mode", "target", "--op", "new", "--tid", "1", "-T", IQN),
                 ("--mode", "logicalunit", "--op", "new", "--tid", "1", "--lun", "1",
                  "-b", str(backing)),
                 ("--mode", "target", "--op", "bind", "--tid", "1", "-I", "ALL")):
        daemon.adm("--lld", "iscsi", *args)
    return backing


def test_sigterm_under_write_load(daemon: RunningDaemon, tmp_path: Path) -> None:
    backing = make_target(daemon, tmp_path)

    async def run() -> tuple[list[Writer], list[InitiatorSession]]:
        sessions = [await Initiator.login("127.0.0.1", daemon.port, target=IQN,
                                          initiator_name=f"iqn.2024-01.test:s{i}", timeout=20)
                    for i in range(SESSIONS)]
        for s in sessions:
            await s.test_unit_ready(1)  # the POWER ON unit attention
        writers = [Writer(i, sessions[i // WRITERS_PER_SESSION], asyncio.Event())
                   for i in range(SESSIONS * WRITERS_PER_SESSION)]
        async with asyncio.timeout(60):
            tasks = [asyncio.create_task(w.run()) for w in writers]
            await asyncio.gather(*(w.started.wait() for w in writers))
            daemon.proc.send_signal(signal.SIGTERM)  # our own daemon, by PID
            await asyncio.gather(*tasks)
            for s in sessions:
                await s.logout()
        return writers, sessions

    writers, sessions = asyncio.run(run())
    assert daemon.proc.wait(timeout=30) == 0, "".join(daemon.log[-30:])
    for s in sessions:
        events = [m for m in s.async_events if m.async_event == AsyncEvent.LOGOUT_REQUEST]
        assert len(events) == 1, s.async_events
        assert events[0].parameter3 > 0  # the time the target gives us to log out
    assert any(f"asked {SESSIONS} connection(s) to log out" in line for line in daemon.log)
    data = backing.read_bytes()
    checked = 0
    for w in writers:
        assert len(w.durable) >= BEFORE_SIGNAL
        for seq in w.durable:
            off = (w.index * SPAN + seq) * BLOCK
            assert data[off:off + BLOCK] == pattern(w.index, seq), (w.index, seq)
            checked += 1
    assert checked >= BEFORE_SIGNAL * len(writers)


def test_sigterm_does_not_wait_forever_for_a_deaf_initiator(daemon: RunningDaemon,
                                                            tmp_path: Path) -> None:
    make_target(daemon, tmp_path)

    async def run() -> float:
        loop = asyncio.get_running_loop()
        s = await Initiator.login("127.0.0.1", daemon.port, target=IQN, timeout=20)
        await s.write16(1, 0, pattern(0, 0), fua=True)
        assert s.protocol.transport is not None
        s.protocol.transport.pause_reading()  # never sees the logout request
        started = loop.time()
        daemon.proc.send_signal(signal.SIGTERM)
        await loop.run_in_executor(None, daemon.proc.wait, 30)
        s.abort()
        return loop.time() - started
    elapsed = asyncio.run(run())
    assert daemon.proc.returncode == 0, "".join(daemon.log[-30:])
    assert elapsed < 15  # logout time (2 s) + 1 s, not the initiator's goodwill
    assert (tmp_path / "lun1.img").read_bytes()[:BLOCK] == pattern(0, 0)
    assert any("did not log out in time" in line for line in daemon.log)
