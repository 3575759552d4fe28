"""Soak test: many sessions mixing I/O, flushes, TMFs, logins and logouts, all verified.

    python -m bench.soak --duration 600 --sessions 16          # own pytgtd on 127.0.0.1
    python -m bench.soak --duration 3600 --bstype rdwr --size 1G
    python -m bench.soak --portal 127.0.0.1:3260 --iqn IQN      # an already running target

Each worker owns a disjoint range of blocks and keeps a checksum of every block it
wrote; every read is checked against it, also after the worker logged out and in again.
Operations: WRITE(16) (some FUA), READ(16) with verification, SYNCHRONIZE CACHE,
ABORT TASK of a finished task, NOP-Out, REPORT LUNS, logout + login. Every
``--interval`` seconds it prints commands completed, errors, and the daemon's RSS and
open fds; at the end one summary line (JSON). Exit status 1 if any error occurred
(errors must be 0) or the daemon's fds grew by more than ``--fd-slack``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytgt.initiator import Initiator, InitiatorSession, ScsiError
from pytgt.iscsi.constants import TmfFunction
from pytgt.net.portal import parse_portal

BS = 512
IQN = "iqn.2026-11.org.pytgt:soak"
INITIATOR = "iqn.2026-11.org.pytgt:soak-initiator"


@dataclass
class Totals:
    commands: int = 0
    errors: int = 0
    logins: int = 0
    tmfs: int = 0
    verified_blocks: int = 0
    messages: list[str] = field(default_factory=list)

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.messages) < 20:
            self.messages.append(text)


# -- the target under test ----------------------------------------------------------------
class OwnDaemon:
    """``pytgtd -f`` on 127.0.0.1 with an ephemeral port, configured through its socket."""

    def __init__(self, bstype: str, size: int, tmp: Path) -> None:
        self.bstype, self.size, self.tmp = bstype, size, tmp
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> None:
        from pytgt.daemon.control import request_sync

        env = {**os.environ, "PYTGT_RUN_DIR": str(self.tmp / "run"),
               "PYTGT_STATE_DIR": str(self.tmp / "state")}
        # The daemon logs to a file: a pipe nobody reads would fill up and block its loop.
        self.log = self.tmp / "pytgtd.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pytgt.daemon.main", "-f", "-C", "9",
                 "--iscsi", "portal=127.0.0.1:0"], stdout=log, stderr=subprocess.STDOUT, env=env)
        self.port = _wait_port(self.proc, self.log, 30)
        lu: dict[str, Any] = {"mode": "logicalunit", "op": "new", "tid": 1, "lun": 1}
        if self.bstype == "rdwr":
            path = self.tmp / "soak.img"
            with open(path, "wb") as f:
                f.truncate(self.size)
            lu["backing_store"] = str(path)
        else:
            lu.update(bstype=self.bstype, backing_store=str(self.size),
                      bsopts=f"size={self.size}")
        control = str(self.tmp / "run" / "socket.9")
        for req in ({"mode": "target", "op": "new", "tid": 1, "targetname": IQN}, lu,
                    {"mode": "target", "op": "bind", "tid": 1, "initiator_address": "ALL"}):
            rc, out = request_sync(control, req, timeout=10)
            if rc:
                raise SystemExit(f"soak: target setup failed: {out.strip()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


def _wait_port(proc: subprocess.Popen[bytes], log: Path, timeout: float) -> int:
    """The port pytgtd logs ("listening on 127.0.0.1:PORT"), polled with a deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for line in log.read_bytes().splitlines():
            if b"listening on" in line:
                return int(line.rsplit(b":", 1)[1].split()[0])
        time.sleep(0.05)
    raise SystemExit(f"soak: pytgtd did not start: {log.read_text(errors='replace')[-1000:]}")


def proc_stats(pid: int | None) -> tuple[int, int]:
    """(RSS bytes, open fds) of ``pid``; (0, 0) when unknown."""
    if pid is None:
        return 0, 0
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(x.split()[1]) * 1024 for x in f if x.startswith("VmRSS:"))
        return rss, fds
    except (OSError, StopIteration):
        return 0, 0


# -- workers -------------------------------------------------------------------------------
class Worker:
    """One initiator identity with its own block range and model of the data."""

    def __init__(self, wid: int, args: argparse.Namespace, first: int, blocks: int,
                 totals: Totals) -> None:
        self.wid, self.args, self.totals = wid, args, totals
        self.first, self.blocks = first, blocks
        self.model: dict[int, str] = {}  # lba (of a chunk) -> sha256 of its contents
        self.rng = random.Random(args.seed * 1000 + wid)
        self.session: InitiatorSession | None = None

    async def login(self) -> InitiatorSession:
        host, port = self.args.host, self.args.port
        s = await Initiator.login(host, port, target=self.args.iqn, timeout=self.args.timeout,
                                  initiator_name=f"{INITIATOR}-{self.wid}",
                                  immediate_data=self.wid % 2 == 0,
                                  initial_r2t=self.wid % 3 == 0)
        self.totals.logins += 1
        for _ in range(6):  # unit attentions of a new session
            r = await s.execute(1, bytes(6))
            if r.status == 0:
                break
        return s

    async def run(self, deadline: float) -> None:
        self.session = await self.login()
        ops = [self.write] * 5 + [self.read] * 5 + [self.flush, self.tmf, self.nop,
                                                     self.report_luns, self.relogin]
        while time.monotonic() < deadline:
            op = self.rng.choice(ops)
            try:
                await op()
            except (ScsiError, TimeoutError, OSError, Exception) as exc:  # counted, go on
                self.totals.error(f"worker {self.wid} {op.__name__}: {exc!r}")
                await self._reconnect()
        if self.session is not None:
            await self.session.logout()

    async def _reconnect(self) -> None:
        if self.session is not None:
            self.session.abort()
        try:
            self.session = await self.login()
        except Exception as exc:  # noqa: BLE001 - counted
            self.totals.error(f"worker {self.wid} login: {exc!r}")
            self.session = None
            raise

    def _chunk(self) -> tuple[int, int]:
        n = self.rng.choice([1, 8, 8, 64, 256])
        lba = self.first + self.rng.randrange(0, self.blocks - n + 1) // 8 * 8
        return lba, min(n, self.first + self.blocks - lba)

    async def write(self) -> None:
        assert self.session is not None
        lba, n = self._chunk()
        data = self.rng.randbytes(n * BS)
        await self.session.write16(1, lba, data, fua=self.rng.random() < 0.2)
        for i in range(n):  # per-block checksums: later reads may overlap differently
            self.model[lba + i] = hashlib.sha256(data[i * BS:(i + 1) * BS]).hexdigest()
        self.totals.commands += 1

    async def read(self) -> None:
        assert self.session is not None
        lba, n = self._chunk()
        data = await self.session.read16(1, lba, n)
        self.totals.commands += 1
        for i in range(n):
            want = self.model.get(lba + i)
            if want is None:
                continue
            got = hashlib.sha256(data[i * BS:(i + 1) * BS]).hexdigest()
            if got != want:
                self.totals.error(f"worker {self.wid}: block {lba + i} does not verify")
            self.totals.verified_blocks += 1

    async def flush(self) -> None:
        assert self.session is not None
        await self.session.synchronize_cache(1)
        self.totals.commands += 1

    async def tmf(self) -> None:
        """ABORT TASK of a tag that finished long ago: TASK DOES NOT EXIST or COMPLETE."""
        assert self.session is not None
        r = await self.session.task_management(TmfFunction.ABORT_TASK, lun=1,
                                               ref_itt=self.rng.randrange(1, 1 << 16))
        if r not in (0, 1):
            self.totals.error(f"worker {self.wid}: ABORT TASK answered {r}")
        self.totals.tmfs += 1

    async def nop(self) -> None:
        assert self.session is not None
        payload = self.rng.randbytes(self.rng.randrange(0, 200))
        if await self.session.nop(payload) != payload:
            self.totals.error(f"worker {self.wid}: NOP-In did not echo the data")
        self.totals.commands += 1

    async def report_luns(self) -> None:
        assert self.session is not None
        if 1 not in await self.session.report_luns():
            self.totals.error(f"worker {self.wid}: LUN 1 missing from REPORT LUNS")
        self.totals.commands += 1

    async def relogin(self) -> None:
        if self.rng.random() < 0.5 and self.session is not None:
            await self.session.logout()
            self.session = await self.login()


async def soak(args: argparse.Namespace, pid: int | None) -> Totals:
    totals = Totals()
    per = (args.size // BS) // args.sessions // 8 * 8
    workers = [Worker(w, args, w * per, per, totals) for w in range(args.sessions)]
    start = time.monotonic()
    deadline = start + args.duration
    rss0, fds0 = proc_stats(pid)
    samples: list[dict[str, Any]] = []

    async def monitor() -> None:
        while True:
            await asyncio.sleep(args.interval)
            rss, fds = proc_stats(pid)
            sample = {"t": round(time.monotonic() - start, 1), "commands": totals.commands,
                      "errors": totals.errors, "rss_mib": round(rss / 2**20, 1), "fds": fds}
            samples.append(sample)
            print(f"t={sample['t']:7.1f}s commands {totals.commands:9d} errors {totals.errors}"
                  f" logins {totals.logins} tmfs {totals.tmfs} rss {sample['rss_mib']} MiB"
                  f" fds {fds}", flush=True)

    mon = asyncio.ensure_future(monitor())
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(w.run(deadline) for w in workers), return_exceptions=True),
            args.duration + 60)
    finally:
        mon.cancel()
    for r in results:
        if isinstance(r, BaseException):
            totals.error(f"worker ended: {r!r}")
    # after every logout the daemon's fds come back (a condition with a deadline)
    end = time.monotonic() + 10
    rss, fds = proc_stats(pid)
    while pid is not None and fds > fds0 + args.fd_slack and time.monotonic() < end:
        await asyncio.sleep(0.1)
        rss, fds = proc_stats(pid)
    summary = {"duration": round(time.monotonic() - start, 1), "sessions": args.sessions,
               "commands": totals.commands, "errors": totals.errors, "logins": totals.logins,
               "tmfs": totals.tmfs, "verified_blocks": totals.verified_blocks,
               "rss_mib_start": round(rss0 / 2**20, 1), "rss_mib_end": round(rss / 2**20, 1),
               "fds_start": fds0, "fds_end": fds}
    if pid is not None and fds > fds0 + args.fd_slack:
        totals.error(f"daemon fds grew from {fds0} to {fds}")
        summary["errors"] = totals.errors
    for msg in totals.messages:
        print(f"error: {msg}", file=sys.stderr)
    print("summary " + json.dumps(summary), flush=True)
    return totals


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak",
                                description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    p.add_argument("--sessions", type=int, default=8)
    p.add_argument("--interval", type=float, default=5.0, help="seconds between reports")
    p.add_argument("--bstype", default="memory", choices=["memory", "rdwr"])
    p.add_argument("--size", type=int, default=64 << 20, help="LU size in bytes")
    p.add_argument("--portal", help="HOST:PORT of a running target instead of our own")
    p.add_argument("--iqn", default=IQN)
    p.add_argument("--pid", type=int, help="the running target's pid (for RSS/fds)")
    p.add_argument("--timeout", type=float, default=30.0, help="per-command timeout")
    p.add_argument("--fd-slack", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    if args.sessions < 1:
        p.error("--sessions must be at least 1")
    if args.size // BS // args.sessions < 256:
        p.error(f"--size too small: each session needs 256 blocks of {BS} bytes")
    if args.portal:
        try:
            args.host, args.port = parse_portal(args.portal)
        except ValueError as exc:
            p.error(f"--portal: {exc}")
    daemon = None
    pid = args.pid
    with tempfile.TemporaryDirectory(prefix="pytgt-soak-") as tmp:
        if not args.portal:
            daemon = OwnDaemon(args.bstype, args.size, Path(tmp))
            daemon.start()
            args.host, args.port, pid = "127.0.0.1", daemon.port, daemon.pid
        try:
            totals = asyncio.run(soak(args, pid))
        finally:
            if daemon is not None:
                daemon.stop()
    return 1 if totals.errors else 0


if __name__ == "__main__":
    sys.exit(main())
