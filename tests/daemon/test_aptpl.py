"""pytgtd's APTPL files (daemon/aptpl.py): saved, restored into the same LU only, kept
when unreadable, and surviving a ``kill -9`` of pytgtd."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytgt.daemon.aptpl import AptplStore
from pytgt.scsi import Status, create_lu
from pytgt.scsi.pr import PrType
from pytgt.stores.memory import MemoryStore
from tests.scsi.conftest import Harness, make_harness
from tests.scsi.test_pr import K1, K2, out, prin
from tests.scsi.test_pr_aptpl import nexus


@pytest.fixture
def h() -> Iterator[Harness]:
    loop = asyncio.new_event_loop()
    yield make_harness(loop)
    loop.close()


def _lu_with_store(h: Harness, directory: Path) -> AptplStore:
    store = AptplStore(str(directory))
    assert store.attach(h.lu, h.target.name) is False
    return store


def test_aptpl_saves_restores_and_clears(h: Harness, tmp_path: Path) -> None:
    store = _lu_with_store(h, tmp_path / "pr")
    n2 = nexus(h, "n2")
    assert out(h, h.nexus, 0, 0, K1, flags=0x01) == Status.GOOD
    assert out(h, n2, 0, 0, K2) == Status.GOOD  # APTPL=0 now, file removed
    assert list((tmp_path / "pr").iterdir()) == []
    assert out(h, n2, 0, K2, K2, flags=0x01) == Status.GOOD
    assert out(h, h.nexus, 1, K1, ptype=PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY) == Status.GOOD
    path = store.path(h.target.name, 1)
    saved = json.loads(Path(path).read_text())
    assert os.stat(path).st_mode & 0o777 == 0o600 and saved["scsi_id"] == h.lu.scsi_id
    assert d2(h) == bytes(h.run(prin(2)).data)
    assert h.run(prin(2)).data[3] & 0x01  # PTPL_A

    # "power loss": a fresh LU with the same identity gets everything back
    lu = create_lu("disk", 1, MemoryStore(1 << 20), tid=1)
    assert AptplStore(str(tmp_path / "pr")).attach(lu, h.target.name) is True
    assert lu.pr.registrations == h.lu.pr.registrations
    assert (lu.pr.type, lu.pr.holder, lu.pr.generation, lu.pr.aptpl) == \
        (h.lu.pr.type, h.lu.pr.holder, h.lu.pr.generation, True)
    other = create_lu("disk", 1, MemoryStore(1 << 20), tid=1, params={"scsi_id": "other"})
    assert AptplStore(str(tmp_path / "pr")).attach(other, h.target.name) is False
    assert other.pr.registrations == {}


def d2(h: Harness) -> bytes:
    return bytes(h.run(prin(2)).data)


def test_aptpl_unreadable_file_is_kept(h: Harness, tmp_path: Path) -> None:
    store = AptplStore(str(tmp_path))
    path = Path(store.path(h.target.name, 1))
    path.write_text("{not json")
    assert store.attach(h.lu, h.target.name) is False
    assert path.read_text() == "{not json"


# -- end to end: kill -9 and restart ------------------------------------------------------
def test_aptpl_survives_kill_9(tmp_path: Path) -> None:
    from tests.helpers import start_daemon

    backing = tmp_path / "lun.img"
    backing.write_bytes(b"")
    os.truncate(backing, 8 << 20)
    iqn = "iqn.2026-11.org.pytgt:aptpl"
    d = start_daemon(tmp_path, extra=("--persist",))
    try:
        d.adm("--lld", "iscsi", "--op", "new", "--mode", "target", "--tid", "1", "-T", iqn)
        d.adm("--lld", "iscsi", "--op", "new", "--mode", "logicalunit", "--tid", "1",
              "--lun", "1", "-b", str(backing))
        d.adm("--lld", "iscsi", "--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")
        before = asyncio.run(_register_and_read(d.port, iqn, register=True))
        assert before[0][1] == [K1, K2] and before[1] == (K1, PrType.WRITE_EXCLUSIVE)
        shown = d.adm("--lld", "iscsi", "--op", "show", "--mode", "target").stdout
        assert "            Reservation: WRITE EXCLUSIVE by iqn.2024-01.test:a,i,0x" in shown
        assert "            Registrations: 2\n" in shown
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(timeout=10)
    finally:
        d.stop()
    d = start_daemon(tmp_path, extra=("--persist",))
    try:
        after = asyncio.run(_register_and_read(d.port, iqn, register=False))
        assert after == before
    finally:
        assert d.stop() == 0


async def _register_and_read(port: int, iqn: str, register: bool) -> tuple[
        tuple[int, list[int]], tuple[int, int] | None]:
    from pytgt.initiator import Initiator

    def prout(action: int, ptype: int = 0) -> bytes:
        return bytes([0x5F, action, ptype, 0, 0, 0, 0, 0, 24, 0])

    def params(key: int, sa_key: int, flags: int = 0) -> bytes:
        return struct.pack(">QQ4xBx2x", key, sa_key, flags)

    async with Initiator.login("127.0.0.1", port, target=iqn,
                               initiator_name="iqn.2024-01.test:a") as a, \
            Initiator.login("127.0.0.1", port, target=iqn,
                            initiator_name="iqn.2024-01.test:b") as b:
        for s in (a, b):
            await s.test_unit_ready(1)
        if register:
            r = await a.execute(1, prout(0), params(0, K1, 0x01))
            assert r.status == 0, r
            r = await b.execute(1, prout(6), params(0, K2, 0x01))
            assert r.status == 0, r
            r = await a.execute(1, prout(1, ptype=1), params(K1, 0))
            assert r.status == 0, r
        d = (await a.execute(1, prin(0), read_length=1024)).data
        gen, n = struct.unpack_from(">II", d)
        got = sorted(struct.unpack_from(">Q", d, 8 + i)[0] for i in range(0, n, 8))
        d = (await a.execute(1, prin(1), read_length=1024)).data
        res = None
        if struct.unpack_from(">I", d, 4)[0]:
            key, scope_type = struct.unpack_from(">Q4xxB", d, 8)
            res = (key, scope_type & 0x0F)
        return (gen, got), res
