"""``pytgtd --metrics HOST:PORT``: Prometheus text format over HTTP (``GET /metrics``).

:class:`PytgtCollector` is a ``prometheus_client`` custom collector that reads pytgt's own
counters at scrape time, the same attributes ``pytgtadm --op stat`` prints: the per-LU
``stat_*`` ints (``pytgt.scsi.lu_stats``), each target's :class:`~pytgt.daemon.stats.
LoginStats` and sessions, the TMF counts of ``ScsiTarget.stat_tmf``, the daemon's
:class:`~pytgt.daemon.security.SecurityCounters` and the portal's Data-In holds. So the
per-command path never calls ``prometheus_client``; it only bumps ints (and, with
``--metrics``, times one command in :data:`LATENCY_SAMPLE` into a bucket list).

The endpoint is served on the daemon's event loop (:func:`serve_metrics`): a scrape
reads the counters between two events, never while the loop changes them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from pytgt.daemon.logfmt import fields
from pytgt.daemon.stats import login_stats
from pytgt.scsi import lu_stats
from pytgt.stores.base import SupportsPoolStats

if TYPE_CHECKING:
    from pytgt.config.model import Target
    from pytgt.daemon.server import Daemon
    from pytgt.scsi.lu import LogicalUnit

log = logging.getLogger("pytgt.metrics")

LATENCY_SAMPLE = 16  # the latency of one command in 16 is measured (lu_stats)
_LU = ["target", "lun"]
_BOUNDS = [*(repr(ns / 1e9) for ns in lu_stats.BUCKET_BOUNDS_NS), "+Inf"]


class PytgtCollector(Collector):
    """Every pytgt metric, read from the daemon's objects when scraped."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def collect(self) -> Iterator[Metric]:
        targets = sorted(self.daemon.registry.targets.values(), key=lambda t: t.tid)
        yield from _lu_metrics(targets)
        yield from _target_metrics(targets)
        yield from self._daemon_metrics()

    def _daemon_metrics(self) -> Iterator[Metric]:
        security = self.daemon.security
        c = security.counters
        failures = CounterMetricFamily(
            "pytgt_login_failures", "Failed logins daemon-wide (discovery and unknown "
            "targets included) by reason", labels=["reason"])
        for reason, n in sorted(c.login_failures.items()):
            failures.add_metric([reason], n)
        yield failures
        yield CounterMetricFamily("pytgt_chap_backoffs", "CHAP back-off delays started",
                                  value=c.backoffs)
        yield CounterMetricFamily("pytgt_chap_backoff_refused_logins",
                                  "Logins refused while their source was held off",
                                  value=c.backoff_refused)
        yield GaugeMetricFamily("pytgt_chap_backoff_sources", "Source addresses held off now",
                                value=security.backoff.held_off())
        yield CounterMetricFamily("pytgt_control_refused", "Control requests refused",
                                  value=c.control_refused)
        yield CounterMetricFamily(
            "pytgt_data_in_holds", "Commands held for Data-In back-pressure",
            value=self.daemon.service.data_in_holds)


def _luns(t: Target) -> list[LogicalUnit]:
    return [lu for _n, lu in sorted(t.scsi.luns.items())]


def _lu_metrics(targets: list[Target]) -> Iterator[Metric]:
    cmds = CounterMetricFamily("pytgt_lu_commands", "Commands completed GOOD by operation "
                               "class", labels=[*_LU, "op"])
    rbytes = CounterMetricFamily("pytgt_lu_read_bytes", "Bytes read (Data-In of reads)",
                                 labels=_LU)
    wbytes = CounterMetricFamily("pytgt_lu_write_bytes", "Bytes written (Data-Out of writes)",
                                 labels=_LU)
    errors = CounterMetricFamily("pytgt_lu_errors", "Commands completed with a status other "
                                 "than GOOD, by status and sense key",
                                 labels=[*_LU, "status", "sense_key"])
    latency = HistogramMetricFamily("pytgt_lu_command_latency_seconds", "Command latency "
                                    f"in the SCSI layer by operation class (one command in "
                                    f"{LATENCY_SAMPLE} per target timed)",
                                    labels=[*_LU, "op"])
    queued = GaugeMetricFamily("pytgt_lu_store_pool_queue_depth", "Store jobs waiting for "
                               "a pool thread", labels=_LU)
    pending = GaugeMetricFamily("pytgt_lu_store_pool_jobs", "Store pool jobs submitted and "
                                "not yet ended", labels=_LU)
    for t in targets:
        for lu in _luns(t):
            labels = [t.name, str(lu.lun)]
            for op, n in zip(lu_stats.OP_CLASSES, (lu.stat_read_cmds, lu.stat_write_cmds,
                                                   lu.stat_other_cmds), strict=True):
                cmds.add_metric([*labels, op], n)
            rbytes.add_metric(labels, lu.stat_read_bytes)
            wbytes.add_metric(labels, lu.stat_write_bytes)
            for (status, key), n in sorted(lu.stat_error_kinds.items()):
                errors.add_metric([*labels, status, key], n)
            _add_latency(latency, labels, lu.stat_latency)
            if isinstance(lu.store, SupportsPoolStats):
                waiting, jobs = lu.store.pool_stats()
                queued.add_metric(labels, waiting)
                pending.add_metric(labels, jobs)
    yield from (cmds, rbytes, wbytes, errors, latency, queued, pending)


def _add_latency(family: HistogramMetricFamily, labels: list[str],
                 lat: lu_stats.Latency | None) -> None:
    if lat is None:
        return
    for i, op in enumerate(lu_stats.OP_CLASSES):
        total, buckets = 0, []
        for bound, n in zip(_BOUNDS, lat.counts[i], strict=True):
            total += n
            buckets.append((bound, float(total)))
        family.add_metric([*labels, op], buckets, lat.sums[i] / 1e9)


def _target_metrics(targets: list[Target]) -> Iterator[Metric]:
    sessions = GaugeMetricFamily("pytgt_target_sessions", "Logged-in sessions",
                                 labels=["target"])
    conns = GaugeMetricFamily("pytgt_target_connections", "Connections of logged-in sessions",
                              labels=["target"])
    logins = CounterMetricFamily("pytgt_target_logins", "Successful logins (new sessions)",
                                 labels=["target"])
    failures = CounterMetricFamily("pytgt_target_login_failures", "Failed logins to the "
                                   "target by reason", labels=["target", "reason"])
    tmfs = CounterMetricFamily("pytgt_target_tmf", "Task management functions carried out "
                               "by the SCSI layer, by function and service response",
                               labels=["target", "function", "response"])
    for t in targets:
        sessions.add_metric([t.name], len(t.nexuses))
        conns.add_metric([t.name], sum(len(n.connections) for n in t.nexuses.values()))
        stats = login_stats(t)
        logins.add_metric([t.name], stats.login_ok)
        for reason, n in sorted(stats.failures.items()):
            failures.add_metric([t.name, reason], n)
        for (function, response), n in sorted(t.scsi.stat_tmf.items()):
            tmfs.add_metric([t.name, function, response], n)
    yield from (sessions, conns, logins, failures, tmfs)


def make_registry(daemon: Daemon) -> CollectorRegistry:
    """pytgt's collector plus the process's (CPU, memory, file descriptors)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PytgtCollector(daemon))
    ProcessCollector(registry=registry)
    return registry


class MetricsServer:
    """A minimal HTTP/1.1 responder for ``GET /metrics`` on the daemon's loop."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.server: asyncio.AbstractServer | None = None
        self.address: tuple[str, int] = ("", 0)

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port`` (0: ephemeral); raises OSError."""
        self.server = await asyncio.start_server(self._serve, host, port, reuse_address=True)
        addr = self.server.sockets[0].getsockname()
        self.address = (str(addr[0]), int(addr[1]))

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
            writer.write(self.respond(head))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            pass
        finally:
            writer.close()

    def respond(self, head: bytes) -> bytes:
        """The whole HTTP response to a request head."""
        method, _, rest = head.partition(b" ")
        path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            return _response(b"405 Method Not Allowed", b"text/plain", b"GET only\n")
        if path not in (b"/metrics", b"/"):
            return _response(b"404 Not Found", b"text/plain", b"try /metrics\n")
        body = generate_latest(self.registry)
        return _response(b"200 OK", CONTENT_TYPE_LATEST.encode(),
                         body if method == b"GET" else b"", len(body))


def _response(status: bytes, ctype: bytes, body: bytes, length: int | None = None) -> bytes:
    n = len(body) if length is None else length
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: " + ctype +
            b"\r\nContent-Length: " + str(n).encode() + b"\r\nConnection: close\r\n\r\n" + body)


async def serve_metrics(daemon: Daemon, host: str, port: int) -> MetricsServer:
    """Serve ``daemon``'s metrics on ``host:port``; logs the bound address."""
    server = MetricsServer(make_registry(daemon))
    await server.start(host, port)
    h, p = server.address
    shown = f"[{h}]" if ":" in h else h
    log.info("metrics on http://%s:%d/metrics", shown, p,
             extra=fields("metrics_listening", portal=f"{shown}:{p}"))
    return server
