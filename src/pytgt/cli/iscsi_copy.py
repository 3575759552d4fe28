"""``pytgt-iscsi dd`` and ``bench``: moving data to, from and between LUNs.

``dd`` copies an image file (or block device) to a LUN, a LUN to a file, or a LUN to a
LUN, ``--qd`` transfers of ``--bs`` bytes in flight. A LUN larger than the image keeps
its blocks past the image's end; an image that is not whole blocks is padded with
zeros. Zero blocks are not written to a file (which stays sparse). ``bench`` runs one
workload for ``--time`` seconds. Progress (a bar) and throughput go to stderr when it is
a terminal, or with ``--progress``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from pytgt.cli.iscsi_status import EXIT_EINVAL, EXIT_EIO, CommandError
from pytgt.cli.iscsi_url import IscsiUrl, parse_url
from pytgt.initiator import InitiatorSession
from pytgt.initiator.errors import ScsiError

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
BAR_WIDTH = 30


def size_arg(text: str) -> int:
    """``4096``, ``4k``, ``1M``, ``2G`` -> bytes (argparse type)."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = t[-1] if t and t[-1] in _UNITS else ""
    try:
        value = int(t[:-1] if unit else t) * _UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad size: {text}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"bad size: {text}")
    return value


def add_parsers(sub: Any) -> None:
    c = sub.add_parser("dd", help="copy an image to, from or between LUNs")
    c.add_argument("source", metavar="SOURCE", help="an iscsi:// URL, a file or a device")
    c.add_argument("dest", metavar="DEST", help="an iscsi:// URL, a file or a device")
    c.add_argument("--bs", type=size_arg, default=1 << 20, metavar="SIZE",
                   help="bytes per transfer (default 1M; a multiple of the block size)")
    c.add_argument("--qd", type=int, default=8, metavar="N",
                   help="transfers in flight (default 8)")
    _progress_args(c)
    c = sub.add_parser("bench", help="measure IOPS and throughput of a LUN")
    c.add_argument("url", metavar="URL", help="the LUN: iscsi://HOST[:PORT]/IQN/LUN")
    c.add_argument("--rw", choices=("read", "write", "randread", "randwrite"),
                   default="randread", help="the workload (default randread; the "
                   "write workloads overwrite the LUN)")
    c.add_argument("--bs", type=size_arg, default=4096, metavar="SIZE",
                   help="bytes per command (default 4k)")
    c.add_argument("--qd", type=int, default=32, metavar="N",
                   help="commands in flight (default 32)")
    c.add_argument("--time", type=float, default=5.0, metavar="S",
                   help="seconds to run (default 5)")
    _progress_args(c)


def _progress_args(c: argparse.ArgumentParser) -> None:
    g = c.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="show progress and throughput even when stderr is not a terminal")
    g.add_argument("--no-progress", dest="progress", action="store_false",
                   help="never show progress")


# -- the two ends of a copy ------------------------------------------------------------
class End(Protocol):
    size: int
    block_size: int

    async def read(self, offset: int, length: int) -> bytes: ...
    async def write(self, offset: int, data: bytes) -> None: ...
    async def close(self) -> None: ...


@dataclass
class LunEnd:
    """A LUN through its own session."""

    session: InitiatorSession
    lun: int
    size: int
    block_size: int

    async def read(self, offset: int, length: int) -> bytes:
        bs = self.block_size
        try:
            return await self.session.read16(self.lun, offset // bs, length // bs, bs)
        except ScsiError as exc:
            raise self._failed("READ(16)", offset, length, exc) from None

    async def write(self, offset: int, data: bytes) -> None:
        try:
            await self.session.write16(self.lun, offset // self.block_size, data,
                                       self.block_size)
        except ScsiError as exc:
            raise self._failed("WRITE(16)", offset, len(data), exc) from None

    def _failed(self, op: str, offset: int, length: int, exc: ScsiError) -> CommandError:
        bs = self.block_size
        return CommandError(f"LUN {self.lun}: {op} of {length // bs} blocks at LBA "
                            f"{offset // bs}: {exc}", EXIT_EIO)

    async def close(self) -> None:
        await self.session.synchronize_cache(self.lun)
        await self.session.logout()


@dataclass
class FileEnd:
    """A file or block device; zero blocks are skipped on writes (the file stays sparse)."""

    fd: int
    size: int
    block_size: int = 512
    _zeros: bytes = field(default=b"", repr=False)

    async def read(self, offset: int, length: int) -> bytes:
        return os.pread(self.fd, length, offset)

    async def write(self, offset: int, data: bytes) -> None:
        if len(self._zeros) < len(data):
            self._zeros = bytes(len(data))
        if data != self._zeros[:len(data)]:
            os.pwrite(self.fd, data, offset)

    async def close(self) -> None:
        os.fsync(self.fd)
        os.close(self.fd)


async def open_lun(args: argparse.Namespace, url: IscsiUrl) -> LunEnd:
    from pytgt.cli.pytgt_iscsi import check_lun, login

    s = await login(args, url)
    try:
        lun = await check_lun(s, url)
        cap = await s.read_capacity16(lun)
    except BaseException:
        await s.logout()
        raise
    return LunEnd(s, lun, cap.size, cap.block_size)


def open_file(path: str, size: int | None) -> FileEnd:
    """``size`` None: the source (read); else the destination, truncated to ``size``
    when it is a regular file."""
    if size is None:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        return FileEnd(fd, os.lseek(fd, 0, os.SEEK_END))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    if os.path.isfile(path):
        os.ftruncate(fd, size)
    return FileEnd(fd, size)


async def _open_end(args: argparse.Namespace, spec: str, size: int | None) -> End:
    if spec.startswith("iscsi://"):
        return await open_lun(args, parse_url(spec))
    return open_file(spec, size)


# -- progress --------------------------------------------------------------------------
@dataclass
class Progress:
    """Bytes done out of ``total``; a line on ``out`` at most every 0.25 s when shown."""

    total: int
    show: bool
    out: TextIO | None = None  # sys.stderr at the time of writing
    done: int = 0
    ops: int = 0
    start: float = field(default_factory=time.monotonic)
    _last: float = 0.0

    def add(self, nbytes: int) -> None:
        self.done += nbytes
        self.ops += 1
        now = time.monotonic()
        if self.show and now - self._last >= 0.25:
            self._last = now
            self._write(f"\r{self.line(now)}")

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.monotonic()) - self.start, 1e-9)
        rate = self.done / elapsed / (1 << 20)
        bar = ""
        if self.total:
            filled = BAR_WIDTH * self.done // self.total
            bar = f"[{'#' * filled}{' ' * (BAR_WIDTH - filled)}] " \
                  f"{100 * self.done // self.total:3d}% "
        return f"{bar}{self.done / (1 << 20):,.1f} MiB in {elapsed:.1f} s, {rate:,.1f} MiB/s"

    def finish(self) -> None:
        if self.show:
            self._write(f"\r{self.line()}\n")

    def _write(self, text: str) -> None:
        out = self.out or sys.stderr
        out.write(text)
        out.flush()


def _shown(args: argparse.Namespace) -> bool:
    return bool(args.progress) if args.progress is not None else sys.stderr.isatty()


def _chunks(size: int, bs: int) -> Iterator[tuple[int, int]]:
    for offset in range(0, size, bs):
        yield offset, min(bs, size - offset)


# -- dd ----------------------------------------------------------------------------------
async def dd(args: argparse.Namespace) -> int:
    if args.qd < 1:
        raise CommandError("--qd must be 1 or more", EXIT_EINVAL)
    src = await _open_end(args, args.source, None)
    try:
        dst = await _open_end(args, args.dest, src.size)
    except BaseException:
        await src.close()
        raise
    try:
        bs = max(src.block_size, dst.block_size)
        if args.bs % bs:
            raise CommandError(f"--bs {args.bs} is not a multiple of the block size {bs}",
                               EXIT_EINVAL)
        if src.size > dst.size:
            raise CommandError(f"{args.source} ({src.size} bytes) does not fit in "
                               f"{args.dest} ({dst.size} bytes)", EXIT_EINVAL)
        progress = Progress(src.size, _shown(args))
        await _copy(src, dst, args.bs, args.qd, progress)
        progress.finish()
    finally:
        await src.close()
        await dst.close()
    return 0


async def _copy(src: End, dst: End, bs: int, qd: int, progress: Progress) -> None:
    chunks = _chunks(src.size, bs)
    block = dst.block_size

    async def worker() -> None:
        for offset, length in chunks:  # one shared iterator: each chunk once
            data = await src.read(offset, length)
            if len(data) % block:  # the end of an image that is not whole blocks
                data += bytes(-len(data) % block)
            await dst.write(offset, data)
            progress.add(length)

    await asyncio.gather(*(worker() for _ in range(qd)))


# -- bench -------------------------------------------------------------------------------
@dataclass
class BenchResult:
    """What a workload did: commands, bytes, seconds, and every command's latency."""

    ops: int
    nbytes: int
    seconds: float
    latencies: list[float]

    def line(self, rw: str, bs: int, qd: int) -> str:
        lat = sorted(self.latencies) or [0.0]
        return (f"{rw} bs={bs} qd={qd}: {self.ops / self.seconds:,.0f} IOPS, "
                f"{self.nbytes / self.seconds / (1 << 20):,.1f} MiB/s, latency avg "
                f"{1e6 * sum(lat) / len(lat):,.0f} us, p99 "
                f"{1e6 * lat[min(len(lat) - 1, len(lat) * 99 // 100)]:,.0f} us "
                f"({self.ops} commands in {self.seconds:.1f} s)")


async def bench(args: argparse.Namespace) -> int:
    if args.qd < 1 or args.time <= 0:
        raise CommandError("--qd and --time must be positive", EXIT_EINVAL)
    lun = await open_lun(args, parse_url(args.url))
    try:
        if args.bs % lun.block_size or args.bs > lun.size:
            raise CommandError(f"--bs {args.bs} is not a multiple of the block size "
                               f"{lun.block_size} up to the LUN's size", EXIT_EINVAL)
        progress = Progress(0, _shown(args))
        result = await run_bench(lun, args.rw, args.bs, args.qd, args.time, progress)
        progress.finish()
    finally:
        await lun.close()
    print(result.line(args.rw, args.bs, args.qd))
    return 0


async def run_bench(lun: LunEnd, rw: str, bs: int, qd: int, seconds: float,
                    progress: Progress) -> BenchResult:
    """``qd`` workers issuing ``bs``-byte commands until ``seconds`` have passed."""
    slots = lun.size // bs
    data = os.urandom(bs) if "write" in rw else b""
    latencies: list[float] = []
    start = time.monotonic()
    deadline = start + seconds
    sequential = iter(range(1 << 62))
    rng = random.Random(0)

    async def worker() -> None:
        while (now := time.monotonic()) < deadline:
            slot = rng.randrange(slots) if rw.startswith("rand") else next(sequential) % slots
            if data:
                await lun.write(slot * bs, data)
            else:
                await lun.read(slot * bs, bs)
            latencies.append(time.monotonic() - now)
            progress.add(bs)

    await asyncio.gather(*(worker() for _ in range(qd)))
    elapsed = time.monotonic() - start
    return BenchResult(len(latencies), len(latencies) * bs, elapsed, latencies)
