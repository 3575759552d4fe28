"""pytgtd SIGKILLed under write load keeps every write it acknowledged durably.

Writers on several sessions write distinct 4 KiB blocks (a checksum per block): with FUA,
or plainly and then covered by an acknowledged SYNCHRONIZE CACHE. The daemon is killed
with writes in flight, restarted on the same file, and an initiator logs in again at once
and finds every acknowledged block. (SIGKILL keeps the page cache, so this checks the
target's acknowledgement order and restart, not the disk's power-loss behaviour.)
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pytgt.daemon.control import request_sync
from pytgt.initiator import InitiatorError
from tests.robustness.util import INITIATOR, ROOT, login, read_ready, ready, run, spawn, stop

IQN = "iqn.2026-11.org.pytgt:crash"
BLOCK = 4096
SIZE = 32 << 20
ACKED_BEFORE_KILL = int(os.environ.get("PYTGT_CRASH_WRITES", "600"))


@contextmanager
def pytgtd(tmp: Path, image: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """The real ``pytgtd`` on 127.0.0.1 (ephemeral port) exporting ``image`` as LUN 1."""
    env = {**os.environ, "PYTGT_RUN_DIR": str(tmp / "run"), "PYTGT_STATE_DIR": str(tmp / "st"),
           "PYTHONPATH": str(ROOT / "src")}
    proc = spawn([sys.executable, "-m", "pytgt.daemon.main", "-f", "-C", "7",
                  "--iscsi", "portal=127.0.0.1:0"], env, tmp / f"pytgtd-{time.monotonic_ns()}.log")
    try:
        line = read_ready(proc, 30, b"listening on")
        port = int(line.rsplit(b":", 1)[1].split()[0])
        control = str(tmp / "run" / "socket.7")
        for req in ({"mode": "target", "op": "new", "tid": 1, "targetname": IQN},
                    {"mode": "logicalunit", "op": "new", "tid": 1, "lun": 1,
                     "backing_store": str(image)},
                    {"mode": "target", "op": "bind", "tid": 1, "initiator_address": "ALL"}):
            rc, out = request_sync(control, req, timeout=10)
            assert rc == 0, out
        yield proc, port
    finally:
        stop(proc, signal.SIGKILL)


def block(slot: int, gen: int) -> bytes:
    head = f"slot={slot} gen={gen} ".encode()
    return (head + os.urandom(BLOCK - len(head)))


async def _writer(port: int, wid: int, nwriters: int, acked: dict[int, str],
                  enough: asyncio.Event) -> None:
    s = await login(port, IQN, initiator_name=f"{INITIATOR}-{wid}")
    await ready(s)
    slot, pending = wid, []
    try:
        while slot < SIZE // BLOCK:
            data = block(slot, 1)
            if slot % 3:  # FUA write: durable when acknowledged
                await s.write16(1, slot * 8, data, fua=True)
                acked[slot] = hashlib.sha256(data).hexdigest()
            else:  # plain write, then covered by SYNCHRONIZE CACHE
                await s.write16(1, slot * 8, data)
                pending.append((slot, hashlib.sha256(data).hexdigest()))
                if len(pending) >= 4:
                    await s.synchronize_cache(1)
                    acked.update(pending)
                    pending.clear()
            if len(acked) >= ACKED_BEFORE_KILL:
                enough.set()
            slot += nwriters
    except (InitiatorError, TimeoutError, OSError):
        return  # the daemon died under us: expected


def test_sigkill_under_fua_write_load_keeps_every_acknowledged_block(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    with open(image, "wb") as f:
        f.truncate(SIZE)
    acked: dict[int, str] = {}

    async def load(port: int, proc: subprocess.Popen[bytes]) -> None:
        enough = asyncio.Event()
        writers = [asyncio.ensure_future(_writer(port, w, 4, acked, enough)) for w in range(4)]
        await asyncio.wait_for(enough.wait(), 60)
        os.kill(proc.pid, signal.SIGKILL)  # writes are in flight right now
        await asyncio.wait_for(asyncio.gather(*writers), 30)

    with pytgtd(tmp_path, image) as (proc, port):
        run(load(port, proc), timeout=90)
        proc.wait(10)
    assert len(acked) >= ACKED_BEFORE_KILL

    async def verify(port: int) -> list[int]:
        s = await login(port, IQN)  # logs in again at once on a fresh daemon
        await ready(s)
        bad = []
        for slot, digest in sorted(acked.items()):
            data = await s.read16(1, slot * 8, 8)
            if hashlib.sha256(data).hexdigest() != digest:
                bad.append(slot)
        await s.logout()
        return bad

    with pytgtd(tmp_path, image) as (_proc, port):
        assert run(verify(port), timeout=120) == []
    with open(image, "rb") as f:  # and on the file itself
        for slot, digest in acked.items():
            f.seek(slot * BLOCK)
            assert hashlib.sha256(f.read(BLOCK)).hexdigest() == digest, slot
