"""QoS (scsi/qos.py): the token bucket on a fake clock, and a limited LU beside an
unlimited one, with the delays read from the buckets' accounting."""

from __future__ import annotations

import asyncio

import pytest

from pytgt.scsi import ScsiResult, ScsiTask, create_lu
from pytgt.scsi.qos import BURST_SECONDS, QosLimits, TokenBucket, make_limits, parse_limit
from pytgt.stores.memory import MemoryStore
from tests.scsi.conftest import BS, RAW_LUN1, Harness, cdb16


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- the bucket ---------------------------------------------------------------------------
def test_bucket_spends_burst_then_spaces_reservations_by_the_rate() -> None:
    b = TokenBucket(rate=10, burst=2, now=0.0)
    assert [b.reserve(1, 0.0) for _ in range(5)] == pytest.approx([0, 0, 0.1, 0.2, 0.3])
    # time pays the debt back at the rate
    assert b.reserve(1, 0.3) == pytest.approx(0.1)
    assert b.reserve(1, 10.0) == 0.0  # refilled, capped at the burst
    assert b.tokens == pytest.approx(1.0)


def test_bucket_cost_larger_than_burst_waits_for_the_difference() -> None:
    b = TokenBucket(rate=1000, burst=100, now=0.0)
    assert b.reserve(1100, 0.0) == pytest.approx(1.0)
    assert b.reserve(0, 1.0) == 0.0


def test_bucket_long_run_rate_is_the_limit() -> None:
    """Back-to-back reservations arriving faster than the rate: the k-th may start at
    (k - burst) / rate, whatever the arrival pattern."""
    b = TokenBucket(rate=500, burst=50, now=0.0)
    starts = []
    now = 0.0
    for _ in range(2050):
        starts.append(now + b.reserve(1, now))
        now += 0.0001  # 10,000 arrivals per second
    assert starts[-1] == pytest.approx((2050 - 50) / 500, rel=1e-6)


def test_bucket_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0, 1, 0.0)


def test_limits_take_the_longer_wait_and_count() -> None:
    clock = FakeClock()
    q = QosLimits(max_iops=100, max_bps=4096 * 10, clock=clock)
    # iops burst 10, bytes burst 4096: the second 4 KiB command waits on bytes
    assert q.reserve(4096) == 0.0
    assert q.reserve(4096) == pytest.approx(0.1)
    assert (q.admitted, q.delayed, q.bytes_admitted) == (2, 1, 8192)
    assert q.delay_total == pytest.approx(0.1)


def test_make_limits_unlimited_is_none() -> None:
    assert make_limits(0, 0) is None
    q = make_limits(1000, 0)
    assert q is not None and not q.unlimited and q.max_iops == 1000


@pytest.mark.parametrize(("key", "text", "value"), [
    ("max_iops", "0", 0), ("max_iops", " 2500 ", 2500), ("max_bps", "10M", 10 << 20),
    ("max_bps", "512k", 512 << 10), ("max_bps", "1G", 1 << 30), ("max_bps", "123", 123)])
def test_parse_limit(key: str, text: str, value: int) -> None:
    assert parse_limit(key, text) == value


@pytest.mark.parametrize(("key", "text"), [
    ("max_iops", "-1"), ("max_iops", "1.5"), ("max_iops", "10M"), ("max_bps", ""),
    ("max_bps", "M")])
def test_parse_limit_rejects(key: str, text: str) -> None:
    with pytest.raises(ValueError):
        parse_limit(key, text)


# -- on a LU ------------------------------------------------------------------------------
def test_lu_params_set_show_and_clear(h: Harness) -> None:
    lu = h.lu
    assert lu.qos is None and (lu.max_iops, lu.max_bps) == (0, 0)
    lu.update_params({"max_iops": "300", "max_bps": "1M"})
    assert lu.qos is not None and (lu.max_iops, lu.max_bps) == (300, 1 << 20)
    with pytest.raises(ValueError):
        lu.update_params({"max_iops": "5", "max_bps": "lots"})  # nothing applied
    assert lu.max_iops == 300
    lu.update_params({"max_iops": "0", "max_bps": "0"})
    assert lu.qos is None  # unlimited costs nothing


def _read(h: Harness, lun: int, lba: int) -> ScsiTask:
    return ScsiTask(h.nexus, lun, cdb16(0x88, lba, 8), expected_in=8 * BS)


def test_limited_lu_waits_on_timers_while_another_lu_runs(h: Harness) -> None:
    """Eight reads on a LU limited to 10 IOPS (burst 1) wait 0, 0.1, ... 0.7 s of its
    bucket (a frozen clock makes the delays exact); a read on an unlimited LU beside it,
    sent last, completes before all but the first of them."""
    lu2 = create_lu("disk", 2, MemoryStore(64 * BS), tid=1, path="mem2", bstype="memory")
    h.target.add_lu(lu2)
    for lun in (RAW_LUN1, 2 << 48):  # the unit attentions adding LU 2 raised
        while h.run(bytes(6), lun=lun).sense:
            pass
    clock = FakeClock()
    h.lu.qos = QosLimits(max_iops=10, max_bps=0, clock=clock)
    order: list[str] = []

    async def one(name: str, task: ScsiTask) -> ScsiResult:
        r = await h.target.execute(task)
        order.append(name)
        return r

    async def scenario() -> list[ScsiResult]:
        limited = [asyncio.ensure_future(one(f"l{i}", _read(h, RAW_LUN1, i))) for i in range(8)]
        await asyncio.sleep(0)  # all eight reserved (the clock is frozen)
        other = asyncio.ensure_future(one("u", _read(h, 2 << 48, 0)))
        return await asyncio.gather(*limited, other)

    results = h.loop.run_until_complete(scenario())
    assert all(r.status == 0 and len(r.data) == 8 * BS for r in results)
    q = h.lu.qos
    assert (q.admitted, q.delayed) == (8, 7)
    assert q.delay_total == pytest.approx(sum(i / 10 for i in range(8)))
    assert order.index("u") <= 1 and order[-1] == "l7"


def test_fast_path_skipped_only_while_limited(h: Harness) -> None:
    """ScsiTarget.submit answers a READ at once when unlimited; with a limit the read
    goes through the bucket and is answered by done()."""
    answers: list[tuple[int, bytes]] = []

    def done(task: ScsiTask, status: int, data: object, sense: bytes) -> None:
        answers.append((status, bytes(data)))  # type: ignore[arg-type]

    h.store.read_nowait = lambda off, n: bytes(n)  # type: ignore[attr-defined]
    assert h.target.submit(_read(h, RAW_LUN1, 0), done) is not None
    h.lu.update_params({"max_iops": "1000"})
    assert h.target.submit(_read(h, RAW_LUN1, 0), done) is None
    h.loop.run_until_complete(asyncio.sleep(0))
    assert answers == [(0, bytes(8 * BS))]
    assert h.lu.qos is not None and h.lu.qos.admitted == 1


def test_burst_is_a_tenth_of_a_second() -> None:
    clock = FakeClock()
    q = QosLimits(max_iops=1000, max_bps=0, clock=clock)
    waits = [q.reserve(0) for _ in range(int(1000 * BURST_SECONDS) + 1)]
    assert waits[-2] == 0.0 and waits[-1] > 0.0
