"""Workloads (issue 5) and the real clients that drive them.

- ``iscsi-perf`` (libiscsi): READ(16) only; ``-m`` queue depth, ``-b`` blocks per command,
  ``-t`` seconds, ``-r`` random. Reports ``iops average N`` at the end. It always offers
  ``HeaderDigest=None,CRC32C`` whatever the URL says, so it cannot force digests.
- ``qemu-img bench`` (QEMU's libiscsi block driver): reads or writes (``-w``) a fixed count
  of commands at depth ``-d``; reports the elapsed time. Used for writes and for the digest
  pair, since ``--image-opts ... header-digest=crc32c`` makes QEMU require CRC32C.
- ``bench/latency.py`` (libiscsi's synchronous API via ctypes): QD1 with per-command timing.

No libiscsi-based client offers DataDigest (it always sends ``DataDigest=None``), so the
digest workload measures header digests only.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.targets import FILE_LUN, IQN, NULL_LUN, Target, die_with_parent

MIB = 1 << 20
WRITE_PATTERN = 0xA5
IOPS_LINE = re.compile(r"iops average (\d+)")
QEMU_DONE = re.compile(r"Run completed in ([0-9.]+) seconds")


class ClientError(RuntimeError):
    """A client exited with an error or printed no result."""


@dataclass
class Sample:
    """One run of one workload against one target."""

    value: float
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class Workload:
    """A named measurement: which client, what it reports, and how to run it."""

    name: str
    title: str
    client: str
    unit: str
    higher_is_better: bool
    run: Callable[[Target, float, dict[str, int]], Sample]


def client_timeout(seconds: float) -> float:
    """How long a client may take for a run of ``seconds`` before it counts as hung."""
    return 2 * seconds + 15


def _cmd(cmd: list[str], timeout: float) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                         errors="replace", preexec_fn=die_with_parent)
    out = res.stdout.replace("\r", "\n")
    if res.returncode != 0:
        tail = "\n".join((out + res.stderr).strip().splitlines()[-5:])
        raise ClientError(f"`{' '.join(cmd)}` -> rc {res.returncode}: {tail}")
    return out


def iscsi_perf_cmd(url: str, depth: int, blocks: int, seconds: int, rand: bool,
                   initiator: str | None = None) -> list[str]:
    cmd = ["iscsi-perf", "-m", str(depth), "-b", str(blocks), "-t", str(seconds)]
    if rand:
        cmd.append("-r")
    if initiator:
        cmd += ["-i", initiator]
    return [*cmd, url]


def parse_iscsi_perf(out: str, cmd: list[str]) -> float:
    found = IOPS_LINE.findall(out)
    if not found:
        raise ClientError(f"`{' '.join(cmd)}` printed no 'iops average': {out[-300:]!r}")
    return float(found[-1])


def iscsi_perf(lun: int, size: int, depth: int, rand: bool) -> Callable[..., Sample]:
    """A workload body: one iscsi-perf for ``duration`` seconds; IOPS, or MiB/s if 1 MiB."""

    def run(t: Target, duration: float, cal: dict[str, int]) -> Sample:
        secs = max(1, round(duration))
        cmd = iscsi_perf_cmd(t.url(lun), depth, size // t.blocksize(lun), secs, rand)
        iops = parse_iscsi_perf(_cmd(cmd, client_timeout(secs)), cmd)
        if size >= MIB:
            return Sample(iops * size / MIB, {"iops": iops})
        return Sample(iops)

    return run


def many_sessions(sessions: int, depth: int, size: int) -> Callable[..., Sample]:
    """``sessions`` iscsi-perf processes at once (own initiator names); summed IOPS."""

    def run(t: Target, duration: float, cal: dict[str, int]) -> Sample:
        secs = max(1, round(duration))
        cmds = [iscsi_perf_cmd(t.url(FILE_LUN), depth, size // t.blocksize(FILE_LUN), secs, True,
                               f"iqn.2026-11.org.pytgt:bench-s{i}") for i in range(sessions)]
        procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, errors="replace", preexec_fn=die_with_parent)
                 for c in cmds]
        total, errors = 0.0, []
        deadline = time.monotonic() + client_timeout(secs)
        for cmd, p in zip(cmds, procs, strict=True):
            try:
                out, _ = p.communicate(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate()
            out = out.replace("\r", "\n")
            try:
                if p.returncode != 0:
                    raise ClientError(f"rc {p.returncode}: {out.strip()[-200:]}")
                total += parse_iscsi_perf(out, cmd)
            except ClientError as exc:
                errors.append(str(exc))
        if errors:
            raise ClientError(f"{len(errors)}/{sessions} sessions failed; first: {errors[0]}")
        return Sample(total, {"sessions": sessions})

    return run


def image_opts(t: Target, lun: int, digest: str | None) -> str:
    opts = (f"driver=iscsi,transport=tcp,portal={t.portal()},target={IQN},lun={lun},"
            f"initiator-name=iqn.2026-11.org.pytgt:bench-qemu")
    return opts + (f",header-digest={digest}" if digest else "")


def qemu_once(t: Target, lun: int, size: int, depth: int, write: bool, digest: str | None,
              count: int, duration: float, step: int = 0) -> float:
    """One ``qemu-img bench`` of ``count`` requests; returns requests per second.

    ``step``: bytes from one request's offset to the next (``-S``, wrapping at the end);
    0 is qemu-img's default, sequential.
    """
    cmd = ["qemu-img", "bench", "-c", str(count), "-d", str(depth), "-s", str(size),
           "-t", "none"]
    if step:
        cmd += ["-S", str(step)]
    if write:  # a non-zero pattern keeps the prefilled file free of zero blocks
        cmd += ["-w", f"--pattern={WRITE_PATTERN}"]
    cmd += ["--image-opts", image_opts(t, lun, digest)]
    out = _cmd(cmd, client_timeout(duration * 5))
    m = QEMU_DONE.search(out)
    if not m:
        raise ClientError(f"`{' '.join(cmd)}` printed no run time: {out[-300:]!r}")
    return count / max(float(m.group(1)), 1e-6)


def calibrate(t: Target, cal: dict[str, int], duration: float, size: int, depth: int,
              once: Callable[[int, float], float]) -> int:
    """The request count that lasts about ``duration`` (measured once per workload).

    The count is measured on the first target's first run and reused for every run of the
    workload, so all targets do the same work.
    """
    if "count" not in cal:
        pilot = max(depth * 4, int(200 * MIB / size) if size >= MIB else 2000)
        rate = once(pilot, 10.0)
        cal["count"] = max(pilot, int(rate * duration))
    return cal["count"]


def qemu_bench(lun: int, size: int, depth: int, write: bool,
               digest: str | None = None, step: int = 0) -> Callable[..., Sample]:
    """A workload body: ``qemu-img bench``, IOPS = calibrated count / elapsed."""

    def run(t: Target, duration: float, cal: dict[str, int]) -> Sample:
        def once(count: int, secs: float) -> float:
            return qemu_once(t, lun, size, depth, write, digest, count, secs, step)

        count = calibrate(t, cal, duration, size, depth, once)
        iops = once(count, duration)
        if size >= MIB:
            return Sample(iops * size / MIB, {"iops": iops, "count": count})
        return Sample(iops, {"count": count})

    return run


def digest_pair(lun: int, size: int, depth: int) -> Callable[..., Sample]:
    """A workload body: reads with HeaderDigest=None and =CRC32C back to back (the order
    swapped every run); MiB/s with digests, and the paired cost in percent."""

    def run(t: Target, duration: float, cal: dict[str, int]) -> Sample:
        def once(digest: str) -> Callable[[int, float], float]:
            return lambda count, secs: qemu_once(t, lun, size, depth, False, digest, count,
                                                 secs)

        count = calibrate(t, cal, duration, size, depth, once("none"))
        turn = cal[f"turn:{t.name}"] = cal.get(f"turn:{t.name}", 0) + 1
        order = ("none", "crc32c") if turn % 2 else ("crc32c", "none")
        rate = {d: once(d)(count, duration) * size / MIB for d in order}
        on, off = rate["crc32c"], rate["none"]
        return Sample(on, {"off_mib_s": off, "cost_pct": (1.0 - on / off) * 100.0,
                           "count": count})

    return run


def latency(lun: int, size: int) -> Callable[..., Sample]:
    """A workload body: bench/latency.py, QD1 random reads; median µs (p99 in extra)."""

    def run(t: Target, duration: float, cal: dict[str, int]) -> Sample:
        cmd = [sys.executable, str(Path(__file__).with_name("latency.py")),
               "--portal", t.portal(), "--target", IQN, "--lun", str(lun),
               "--size", str(size), "--duration", str(duration), "--random"]
        out = _cmd(cmd, client_timeout(duration))
        try:
            res = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError) as exc:
            raise ClientError(f"latency client printed {out[-300:]!r}") from exc
        return Sample(res["median_us"], {k: res[k] for k in ("p99_us", "mean_us", "iops",
                                                                 "count")})

    return run


K4, M1 = 4096, MIB
WORKLOADS: list[Workload] = [
    Workload("4k_randread_qd32", "4 KiB random read QD32 (file)", "iscsi-perf", "IOPS", True,
             iscsi_perf(FILE_LUN, K4, 32, True)),
    Workload("4k_seqread_qd32", "4 KiB sequential read QD32 (file)", "iscsi-perf", "IOPS",
             True, iscsi_perf(FILE_LUN, K4, 32, False)),
    Workload("4k_write_qd32", "4 KiB sequential write QD32 (file)", "qemu-img bench", "IOPS",
             True, qemu_bench(FILE_LUN, K4, 32, True)),
    Workload("1m_seqread_qd16", "1 MiB sequential read QD16 (file)", "iscsi-perf", "MiB/s",
             True, iscsi_perf(FILE_LUN, M1, 16, False)),
    Workload("1m_write_qd16", "1 MiB sequential write QD16 (file)", "qemu-img bench", "MiB/s",
             True, qemu_bench(FILE_LUN, M1, 16, True)),
    Workload("4k_randread_qd32_null", "4 KiB random read QD32 (null store)", "iscsi-perf",
             "IOPS", True, iscsi_perf(NULL_LUN, K4, 32, True)),
    Workload("4k_randread_qd1_lat", "4 KiB random read QD1 latency, median (file)",
             "libiscsi sync (latency.py)", "µs", False, latency(FILE_LUN, K4)),
    Workload("16sess_qd4", "16 sessions x 4 KiB random read QD4 (file)", "16 x iscsi-perf",
             "IOPS", True, many_sessions(16, 4, K4)),
    Workload("1m_read_qd16_digest", "1 MiB read QD16, HeaderDigest=CRC32C (file)",
             "qemu-img bench", "MiB/s", True, digest_pair(FILE_LUN, M1, 16)),
]
BY_NAME = {w.name: w for w in WORKLOADS}

# Issue 5's goals as pytgt/tgt ratios: at least this (higher is better) or at most this
# (latency). The 1 MiB digest pair has its own goal (cost against digests off), not a ratio.
GOALS: dict[str, float] = {
    "4k_randread_qd32": 1.0, "4k_seqread_qd32": 1.0, "4k_write_qd32": 1.0,
    "1m_seqread_qd16": 1.3, "1m_write_qd16": 1.0, "4k_randread_qd32_null": 1.0,
    "4k_randread_qd1_lat": 1.1, "16sess_qd4": 1.0,
}
DIGEST_COST_GOAL_PCT = 15.0


def timed(fn: Callable[[], Sample]) -> tuple[Sample, float]:
    t0 = time.monotonic()
    s = fn()
    return s, time.monotonic() - t0
