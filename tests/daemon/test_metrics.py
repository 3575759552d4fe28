"""``pytgtd --metrics``: a real daemon scraped over HTTP while pytgt.initiator works;
every counter moves by exactly what the client did, and ``--op stat`` agrees."""

from __future__ import annotations

import asyncio
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pytgt.daemon.metrics import LATENCY_SAMPLE
from pytgt.initiator import Initiator, LoginFailed
from pytgt.iscsi.constants import TmfFunction
from tests.helpers import RunningDaemon, start_daemon

IQN = "iqn.2026-11.org.pytgt:metrics"
CLOSED = "iqn.2026-11.org.pytgt:closed"
A, B = "iqn.2024-01.test:a", "iqn.2024-01.test:b"
METRICS_AT = re.compile(r"metrics on http://(\S+)/metrics")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def metrics_url(d: RunningDaemon) -> str:
    """The endpoint the daemon logged (logged before the portal line start_daemon waits for)."""
    for line in d.log:
        m = METRICS_AT.search(line)
        if m:
            return f"http://{m.group(1)}/metrics"
    raise AssertionError("no metrics line in the log:\n" + "".join(d.log))


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as rsp:
        assert rsp.status == 200
        assert rsp.headers["Content-Type"].startswith("text/plain; version=")
        text = rsp.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def lu(op: str | None = None, **more: str) -> dict[str, str]:
    labels = {"target": IQN, "lun": "1", **more}
    return labels if op is None else {**labels, "op": op}


def adm(d: RunningDaemon, *args: str) -> str:
    return d.adm("--lld", "iscsi", *args).stdout


@pytest.fixture(params=["127.0.0.1", "::1"])
def daemon(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningDaemon]:
    host = request.param
    at = f"[{host}]:0" if ":" in host else f"{host}:0"
    d = start_daemon(tmp_path, host=host, extra=("--metrics", at))
    try:
        path = tmp_path / "lun1.img"
        with open(path, "wb") as f:
            f.truncate(4 << 20)
        adm(d, "--op", "new", "--mode", "target", "--tid", "1", "-T", IQN)
        adm(d, "--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1",
            "-b", str(path))
        adm(d, "--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")
        adm(d, "--op", "new", "--mode", "target", "--tid", "2", "-T", CLOSED)
        adm(d, "--op", "bind", "--mode", "target", "--tid", "2", "-Q", B)  # A is refused
        yield d
    finally:
        assert d.stop() == 0, "".join(d.log[-30:])


WRITES, WRITE_SIZE = 32, 4096
READS, READ_SIZE = 32, 8192
TURS = 16  # 80 commands in all: exactly 80 / LATENCY_SAMPLE of them timed


def test_counters_move_by_what_the_client_did(daemon: RunningDaemon) -> None:
    url = metrics_url(daemon)

    async def work() -> tuple[Samples, Samples]:
        async with Initiator.login(daemon.host, daemon.port, target=IQN,
                                   initiator_name=A) as s:
            for lun in (0, 1):  # the POWER ON unit attentions of a new nexus
                await s.test_unit_ready(lun)
            before = await asyncio.to_thread(scrape, url)
            for i in range(WRITES):
                await s.write16(1, i * 8, bytes([i]) * WRITE_SIZE)
            for i in range(READS):
                await s.read16(1, i * 16, READ_SIZE // 512)
            for _ in range(TURS):
                await s.test_unit_ready(1)
            await s.task_management(TmfFunction.LOGICAL_UNIT_RESET, lun=1)
            during = await asyncio.to_thread(scrape, url)
        return before, during

    before, during = asyncio.run(work())

    def delta(name: str, **labels: str) -> float:
        return value(during, name, **labels) - value(before, name, **labels)

    assert delta("pytgt_lu_commands_total", **lu("write")) == WRITES
    assert delta("pytgt_lu_commands_total", **lu("read")) == READS
    assert delta("pytgt_lu_commands_total", **lu("other")) == TURS
    assert delta("pytgt_lu_write_bytes_total", **lu()) == WRITES * WRITE_SIZE
    assert delta("pytgt_lu_read_bytes_total", **lu()) == READS * READ_SIZE
    timed = {op: delta("pytgt_lu_command_latency_seconds_count", **lu(op))
             for op in ("read", "write", "other")}
    assert sum(timed.values()) == (WRITES + READS + TURS) // LATENCY_SAMPLE
    for op, n in timed.items():
        assert delta("pytgt_lu_command_latency_seconds_bucket", **lu(op, le="+Inf")) == n
        assert (delta("pytgt_lu_command_latency_seconds_sum", **lu(op)) > 0) == (n > 0)
    # the two POWER ON unit attentions consumed before the first scrape, none since
    assert value(before, "pytgt_lu_errors_total", **lu(status="check_condition",
                                                      sense_key="unit_attention")) == 1
    assert sum(v for (name, _l), v in during.items() if name == "pytgt_lu_errors_total") == 2
    assert value(during, "pytgt_target_sessions", target=IQN) == 1
    assert value(during, "pytgt_target_connections", target=IQN) == 1
    assert value(during, "pytgt_target_logins_total", target=IQN) == 1
    assert value(during, "pytgt_target_tmf_total", target=IQN, function="logical_unit_reset",
                 response="function_complete") == 1
    assert ("pytgt_lu_store_pool_queue_depth", frozenset(lu().items())) in during

    after = scrape(url)
    assert value(after, "pytgt_target_sessions", target=IQN) == 0
    assert value(after, "pytgt_target_connections", target=IQN) == 0
    assert value(after, "pytgt_target_logins_total", target=IQN) == 1
    assert value(after, "process_open_fds") > 0  # prometheus_client's process collector

    # --op stat prints the same counters
    row = next(line.split() for line in adm(daemon, "--op", "stat", "--mode", "logicalunit",
                                            "--tid", "1", "--lun", "1").splitlines()
               if line.split()[:2] == ["1", "1"])
    assert int(row[3]) == value(after, "pytgt_lu_read_bytes_total", **lu())
    assert int(row[4]) == value(after, "pytgt_lu_commands_total", **lu("read"))
    assert int(row[7]) == value(after, "pytgt_lu_write_bytes_total", **lu())
    assert int(row[8]) == value(after, "pytgt_lu_commands_total", **lu("write"))


def test_login_failures_by_reason(daemon: RunningDaemon) -> None:
    url = metrics_url(daemon)

    async def refused(target: str) -> None:
        with pytest.raises(LoginFailed):
            async with Initiator.login(daemon.host, daemon.port, target=target,
                                       initiator_name=A):
                pass

    asyncio.run(refused("iqn.2026-11.org.pytgt:nonexistent"))
    asyncio.run(refused(CLOSED))
    asyncio.run(refused(CLOSED))
    m = scrape(url)
    assert value(m, "pytgt_login_failures_total", reason="not_found") == 1
    assert value(m, "pytgt_login_failures_total", reason="authorization_failure") == 2
    assert value(m, "pytgt_target_login_failures_total", target=CLOSED,
                 reason="authorization_failure") == 2
    assert value(m, "pytgt_target_logins_total", target=CLOSED) == 0
    assert value(m, "pytgt_chap_backoffs_total") == 0


def test_only_get_metrics_is_served(daemon: RunningDaemon) -> None:
    url = metrics_url(daemon)
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(url.replace("/metrics", "/nothing"), timeout=10)
    assert exc.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(urllib.request.Request(url, data=b"x"), timeout=10)
    assert exc.value.code == 405


@pytest.mark.parametrize("bad", ["127.0.0.1", "nohost:", "[::1]:99999"])
def test_bad_metrics_address_is_one_line_error(bad: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from pytgt.daemon.main import main

    assert main(["-f", "--metrics", bad]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pytgtd: bad --metrics address")
