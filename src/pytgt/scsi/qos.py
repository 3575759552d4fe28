"""Per-LU quality of service: ``max_iops`` and ``max_bps`` as token buckets that delay.

A LU with a limit (``pytgtadm --op update --mode logicalunit --params max_iops=N,max_bps=N``;
0 is unlimited) makes each READ or WRITE command (the ``--op stat`` classes,
:mod:`pytgt.scsi.lu_stats`) reserve one operation and its data length from the LU's
buckets once it is enabled and admitted by preflight (SAM-5 8.6: it is then running in
the task set, so task management aborts it while it waits). The reservation returns how
long the command must wait before it touches the store; ``LogicalUnit.run`` waits that
long on an asyncio timer, so other LUs and the event loop carry on, and commands are
never refused (no BUSY or TASK SET FULL, which initiators treat as errors to retry).

Reservations go into debt: a bucket's tokens may go below zero, and each command waits
until the debt its own reservation made is paid back at the bucket's rate. Commands are
thus spaced exactly ``1/rate`` apart however many are queued, and the long-run rate is
the limit, whatever the queue depth. A bucket holds at most :data:`BURST_SECONDS` worth
of tokens (at least one command), so an idle LU can burst only briefly.

A LU without limits has ``qos = None``: the fast path tests that one attribute.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pytgt.scsi.lu_stats import READ_OPS, WRITE_OPS

BURST_SECONDS = 0.1  # what an idle LU may send at once, in seconds of its rate
LIMITED_OPS = READ_OPS | WRITE_OPS


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` kept; reservations may go into debt."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("a token bucket needs a positive rate and burst")
        self.rate = float(rate)
        self.burst = float(burst)
        self.tokens = self.burst  # full: a new limit lets a short burst through
        self.stamp = now

    def reserve(self, cost: float, now: float) -> float:
        """Take ``cost`` tokens at time ``now``; the seconds to wait before using them
        (0.0 when the bucket held enough)."""
        tokens = self.tokens + (now - self.stamp) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        self.stamp = now
        tokens -= cost
        self.tokens = tokens
        return 0.0 if tokens >= 0 else -tokens / self.rate


class QosLimits:
    """The limits of one LU and their buckets, with counters for ``--op show`` and tests.

    ``clock`` is the time source (``time.monotonic``, as asyncio's loop clock; a fake in
    tests). ``admitted`` counts the commands that reserved, ``delayed`` those that had
    to wait, ``delay_total`` the seconds they were told to wait.
    """

    __slots__ = ("max_iops", "max_bps", "_iops", "_bps", "clock", "admitted", "delayed",
                 "delay_total", "bytes_admitted")

    def __init__(self, max_iops: int, max_bps: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_iops < 0 or max_bps < 0:
            raise ValueError("limits must be 0 (unlimited) or more")
        self.max_iops = max_iops
        self.max_bps = max_bps
        self.clock = clock
        now = clock()
        self._iops = (TokenBucket(max_iops, max(1.0, max_iops * BURST_SECONDS), now)
                      if max_iops else None)
        self._bps = (TokenBucket(max_bps, max(1.0, max_bps * BURST_SECONDS), now)
                     if max_bps else None)
        self.admitted = self.delayed = self.bytes_admitted = 0
        self.delay_total = 0.0

    @property
    def unlimited(self) -> bool:
        return self._iops is None and self._bps is None

    def reserve(self, nbytes: int) -> float:
        """One command moving ``nbytes``: the seconds it must wait before it runs."""
        now = self.clock()
        wait = self._iops.reserve(1.0, now) if self._iops is not None else 0.0
        if self._bps is not None:
            wait = max(wait, self._bps.reserve(float(nbytes), now))
        self.admitted += 1
        self.bytes_admitted += nbytes
        if wait > 0.0:
            self.delayed += 1
            self.delay_total += wait
        return wait


def make_limits(max_iops: int, max_bps: int,
                clock: Callable[[], float] = time.monotonic) -> QosLimits | None:
    """The limits object for a LU, or None when both are 0 (unlimited: no cost)."""
    if not max_iops and not max_bps:
        return None
    return QosLimits(max_iops, max_bps, clock)


def parse_limit(key: str, value: str) -> int:
    """``max_iops``/``max_bps`` as given to ``--params``: a whole number >= 0, with an
    optional K/M/G suffix (powers of 1024) for max_bps. Raises ValueError."""
    text = value.strip().upper()
    scale = 1
    if key == "max_bps" and text[-1:] in ("K", "M", "G"):
        scale = 1024 ** ("KMG".index(text[-1]) + 1)
        text = text[:-1]
    if not text.isdigit():
        raise ValueError(f"bad value for {key}: {value!r} (a whole number, 0 = unlimited)")
    return int(text) * scale
