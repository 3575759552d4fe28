"""``--op stat`` and live changes against a real pytgtd with pytgt.initiator sessions:
LUN add/remove and resize raise their unit attentions on every nexus; deleting a busy
target needs --force and ends its sessions with an async event."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytgt.daemon import stats
from pytgt.initiator import Initiator, LoginFailed
from tests.helpers import RunningDaemon, running_daemon

IQN = "iqn.2026-11.org.pytgt:live"
A, B = "iqn.2024-01.test:a", "iqn.2024-01.test:b"
ROW = re.compile(r"^\s*(\d+)\s+(\d+)\s+-" + r"\s+(\d+)" * 9 + r"$")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[RunningDaemon]:
    with running_daemon(tmp_path) as d:
        yield d


def adm(d: RunningDaemon, *args: str, check: bool = True) -> str:
    return d.adm("--lld", "iscsi", *args, check=check).stdout


def make_lun(d: RunningDaemon, tmp: Path, lun: int, size: int = 4 << 20) -> Path:
    path = tmp / f"lun{lun}.img"
    with open(path, "wb") as f:
        f.truncate(size)
    adm(d, "--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", str(lun),
        "-b", str(path))
    return path


@pytest.fixture
def target(daemon: RunningDaemon, tmp_path: Path) -> Path:
    adm(daemon, "--op", "new", "--mode", "target", "--tid", "1", "-T", IQN)
    path = make_lun(daemon, tmp_path, 1)
    adm(daemon, "--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")
    return path


def login(d: RunningDaemon, name: str) -> object:
    return Initiator.login("127.0.0.1", d.port, target=IQN, initiator_name=name)


async def settle(*sessions: object) -> None:
    """Consume the POWER ON unit attentions of a fresh login on LUN 0 and 1."""
    for s in sessions:
        for lun in (0, 1):
            await s.test_unit_ready(lun)  # type: ignore[attr-defined]


def size(cap: object) -> int:
    return (cap.last_lba + 1) * cap.block_size  # type: ignore[attr-defined]


async def ua_of(s: object, lun: int = 1) -> tuple[int, int, int] | None:
    r = await s.execute(lun, bytes(6))  # type: ignore[attr-defined]
    return (r.sense_key, r.asc, r.ascq) if r.status == 2 else None


# -- --op stat -----------------------------------------------------------------------------
def parse_rows(text: str) -> dict[tuple[int, int], list[int]]:
    lines = text.splitlines()
    assert lines[0] == stats.HEADER
    rows = {}
    for line in lines[1:]:
        if line == " ":
            break
        m = ROW.match(line)
        assert m, line
        v = [int(x) for x in m.groups()]
        rows[(v[0], v[1])] = v[2:]
    return rows


def test_stat_counts_reads_writes_errors_and_logins(daemon: RunningDaemon,
                                                    target: Path) -> None:
    async def io() -> None:
        async with login(daemon, A) as s:
            await settle(s)
            await s.write16(1, 0, b"\1" * 8192)
            await s.write16(1, 16, b"\2" * 512)
            await s.read16(1, 0, 8)
            r = await s.execute(1, bytes([0x88]) + (1 << 40).to_bytes(8, "big")
                                + (1).to_bytes(4, "big") + bytes(2), read_length=512)
            assert r.status == 2  # LBA out of range: an error
    asyncio.run(io())
    out = adm(daemon, "--op", "stat", "--mode", "target", "--tid", "1")
    rows = parse_rows(out)
    rb, rc, _rb, _rc, wb, wc, _wb, _wc, errs = rows[(1, 1)]
    assert (rb, rc, wb, wc, errs) == (4096, 1, 8704, 2, 2)  # + the POWER ON UA, as tgt
    assert rows[(1, 0)][:8] == [0] * 8
    logins = out.splitlines()[out.splitlines().index(stats.LOGIN_HEADER) + 1].split()
    assert logins[0] == "1" and int(logins[1]) >= 4 and logins[2:] == ["1", "0", "0", "0"]
    assert parse_rows(adm(daemon, "--op", "stat", "--mode", "system")) == rows
    lu_only = adm(daemon, "--op", "stat", "--mode", "logicalunit", "--tid", "1", "--lun", "1")
    assert parse_rows(lu_only) == {(1, 1): rows[(1, 1)]}
    assert stats.LOGIN_HEADER not in lu_only
    res = daemon.adm("--lld", "iscsi", "--op", "stat", "--mode", "target", "--tid", "7",
                     check=False)
    assert res.returncode != 0 and "can't find the target" in res.stderr


def test_stat_counts_acl_denials_and_chap_failures(daemon: RunningDaemon,
                                                   target: Path) -> None:
    adm(daemon, "--op", "new", "--mode", "account", "--user", "u1", "--password", "s3cret-pw12")
    adm(daemon, "--op", "bind", "--mode", "account", "--tid", "1", "--user", "u1")
    adm(daemon, "--op", "unbind", "--mode", "target", "--tid", "1", "-I", "ALL")
    adm(daemon, "--op", "bind", "--mode", "target", "--tid", "1", "-I", "10.0.0.0/8")

    async def attempt(**kw: object) -> None:
        with pytest.raises(LoginFailed):
            async with Initiator.login("127.0.0.1", daemon.port, target=IQN,
                                       initiator_name=A, **kw):
                pass
    asyncio.run(attempt(chap=("u1", "wrong-secret12")))  # ACL first: denied
    adm(daemon, "--op", "bind", "--mode", "target", "--tid", "1", "-I", "127.0.0.1")
    asyncio.run(attempt(chap=("u1", "wrong-secret12")))
    out = adm(daemon, "--op", "stat", "--mode", "target", "--tid", "1")
    row = out.splitlines()[out.splitlines().index(stats.LOGIN_HEADER) + 1].split()
    assert row[2:] == ["0", "1", "1", "1"]  # ok, failed (CHAP), auth failures, ACL denials


# -- LUN add / remove ----------------------------------------------------------------------
def test_lun_add_and_remove_raise_reported_luns_data_has_changed(
        daemon: RunningDaemon, target: Path, tmp_path: Path) -> None:
    async def run() -> None:
        async with login(daemon, A) as a, login(daemon, B) as b:
            await settle(a, b)
            make_lun(daemon, tmp_path, 2)
            for s in (a, b):
                assert await ua_of(s) == (6, 0x3F, 0x0E)
                assert await ua_of(s) is None
                assert sorted(await s.report_luns()) == [0, 1, 2]
            adm(daemon, "--op", "delete", "--mode", "logicalunit", "--tid", "1", "--lun", "2")
            for s in (a, b):
                assert await ua_of(s, 0) == (6, 0x3F, 0x0E)
                assert sorted(await s.report_luns()) == [0, 1]
                assert await ua_of(s) is None  # REPORT LUNS cleared it on every LU
    asyncio.run(run())


# -- capacity --------------------------------------------------------------------------------
def test_rescan_and_size_raise_capacity_data_has_changed(daemon: RunningDaemon,
                                                         target: Path) -> None:
    async def run() -> None:
        async with login(daemon, A) as a, login(daemon, B) as b:
            await settle(a, b)
            os.truncate(target, 8 << 20)  # the admin grows the file
            adm(daemon, "--op", "update", "--mode", "logicalunit", "--tid", "1", "--lun", "1",
                "--params", "rescan=1")
            for s in (a, b):
                assert await ua_of(s) == (6, 0x2A, 0x09)
                assert size(await s.read_capacity16(1)) == 8 << 20
            adm(daemon, "--op", "update", "--mode", "logicalunit", "--tid", "1", "--lun", "1",
                "--params", "size=16M")
            assert os.path.getsize(target) == 16 << 20  # extended, sparse
            for s in (a, b):
                assert await ua_of(s) == (6, 0x2A, 0x09)
                assert size(await s.read_capacity16(1)) == 16 << 20
            await a.write16(1, (16 << 20) // 512 - 1, b"\7" * 512)  # the new last block
            adm(daemon, "--op", "update", "--mode", "logicalunit", "--tid", "1", "--lun", "1",
                "--params", "rescan=1")
            assert await ua_of(a) is None  # same size: nothing to report
    asyncio.run(run())
    show = adm(daemon, "--op", "show", "--mode", "target")
    assert "            Size: 17 MB, Block size: 512\n" in show


@pytest.mark.parametrize("params", ["size=1000", "size=0", "size=lots", "rescan=2",
                                    "size=8M,vendor_id=TOO-LONG-VENDOR"])
def test_bad_resize_changes_nothing(daemon: RunningDaemon, target: Path, params: str) -> None:
    res = daemon.adm("--lld", "iscsi", "--op", "update", "--mode", "logicalunit", "--tid", "1",
                     "--lun", "1", "--params", params, check=False)
    assert res.returncode == 22, res.stderr
    if params == "size=1000":  # pytgt's own parameter: the reason, on one line
        assert "not a positive multiple of the block size" in res.stderr
    assert os.path.getsize(target) == 4 << 20
    assert "Size: 4 MB" in adm(daemon, "--op", "show", "--mode", "target")


# -- target removal ----------------------------------------------------------------------------
def test_delete_busy_target_needs_force_and_ends_sessions(daemon: RunningDaemon,
                                                          target: Path) -> None:
    async def run() -> None:
        async with login(daemon, A) as a:
            await settle(a)
            res = daemon.adm("--lld", "iscsi", "--op", "delete", "--mode", "target",
                             "--tid", "1", check=False)
            assert res.returncode != 0 and "this target is still active" in res.stderr
            assert await ua_of(a) is None  # untouched
            adm(daemon, "--op", "delete", "--mode", "target", "--tid", "1", "--force")
            for _ in range(100):
                if a.closed:
                    break
                await asyncio.sleep(0.05)
            assert a.closed
            assert [m.async_event for m in a.async_events] == [3]  # drop all connections
            assert a.async_events[0].parameter2 == 2
    asyncio.run(run())
    assert adm(daemon, "--op", "show", "--mode", "target") == ""
    with pytest.raises(LoginFailed):
        asyncio.run(login(daemon, A).__aenter__())  # type: ignore[attr-defined]


# -- in process: stores without a file --------------------------------------------------------
def test_memory_store_grows_and_cannot_rescan(admin: object) -> None:
    from pytgt.scsi import ItNexus

    ok = admin.ok  # type: ignore[attr-defined]
    ok(mode="target", op="new", tid=1, targetname=IQN)
    ok(mode="logicalunit", op="new", tid=1, lun=1, bstype="memory", backing_store="1M")
    mgmt = admin.mgmt  # type: ignore[attr-defined]
    lu = mgmt.registry.targets[1].scsi.luns[1]
    n = ItNexus("n1", A, initiator_port=f"{A},i,0x1")
    mgmt.registry.targets[1].scsi.add_nexus(n)
    lu.ua.clear()
    ok(mode="logicalunit", op="update", tid=1, lun=1, params="size=2M")
    assert lu.size == 2 << 20 and lu.ua == {"n1": [(0x2A, 0x09)]}
    rc, _ = admin(mode="logicalunit", op="update", tid=1, lun=1,  # type: ignore[operator]
                  params="rescan=1")
    assert rc == 22 and lu.size == 2 << 20
