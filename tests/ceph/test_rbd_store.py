"""The rbd store on the dev cluster: I/O, unmap and allocation, errors, identity, resize,
the shared connection and the COMPARE AND WRITE lock across gateways."""

from __future__ import annotations

import asyncio
import errno
import sys
from collections.abc import Callable, Iterator

import pytest
from ceph_dev_cluster import DevCluster

from pytgt.daemon.capacity import prepare_resize
from pytgt.scsi.lu import create_lu
from pytgt.stores import StoreError, StoreIOError, available, open_store
from pytgt.stores.base import (
    StoreCapability,
    SupportsAllocationStatus,
    SupportsCompareAndWrite,
    SupportsIdentity,
    SupportsRescan,
)
from pytgt.stores.rbd import CAW_LOCK_SECONDS, RbdStore, _Connection, parse_image_path
from tests.ceph.conftest import need_bindings

MIB = 1 << 20
OBJECT = 4 * MIB  # the default RBD object size (order 22)


@pytest.fixture
def opener(ceph: DevCluster) -> Iterator[Callable[[str], RbdStore]]:
    """``opener("rbd/img")``: an open RbdStore, closed after the test."""
    need_bindings()
    opened: list[RbdStore] = []

    def open_(spec: str) -> RbdStore:
        store = open_store("rbd", spec, bsopts=f"conf={ceph.conf}")
        assert isinstance(store, RbdStore)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        asyncio.run(store.close())
    assert not _Connection._table  # the last close shut the shared connection down


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_path_spelling() -> None:
    assert parse_image_path("pool/img") == ("pool", "img", None)
    assert parse_image_path("img") == ("rbd", "img", None)
    assert parse_image_path("p/img@snap") == ("p", "img", "snap")
    for bad in ("", "/img", "p/", "p/a/b", "img@"):
        with pytest.raises(StoreError, match="bad rbd image path"):
            parse_image_path(bad)


def test_read_write_flush(opener: Callable[[str], RbdStore],
                          rbd_image: Callable[..., str]) -> None:
    store = opener(rbd_image("16M"))
    assert store.size == 16 * MIB
    assert store.capabilities == StoreCapability.FLUSH | StoreCapability.UNMAP | \
        StoreCapability.THIN
    for proto in (SupportsAllocationStatus, SupportsCompareAndWrite, SupportsIdentity,
                  SupportsRescan):
        assert isinstance(store, proto)

    async def go() -> None:
        assert await store.read(0, 4096) == bytes(4096)
        await store.write(512, b"a" * 512)
        await store.write(4096, bytearray(b"b" * 4096))
        await store.write(OBJECT - 512, memoryview(bytearray(b"c" * 2048))[512:1536])
        await store.write_fua(8192, b"d" * 512)
        await store.flush()
        assert await store.read(512, 512) == b"a" * 512
        assert await store.read(4096, 4096) == b"b" * 4096
        assert await store.read(OBJECT - 512, 1024) == b"c" * 1024  # across two objects
        assert await store.read(8192, 512) == b"d" * 512

    run(go())
    assert store.cluster.conf_get("rbd_cache") == "false"


def test_io_errors(opener: Callable[[str], RbdStore], rbd_image: Callable[..., str]) -> None:
    store = opener(rbd_image("8M"))

    async def go() -> None:
        for op in (store.read(8 * MIB - 512, 1024), store.write(8 * MIB, b"x"),
                   store.unmap(-512, 512)):
            with pytest.raises(StoreIOError) as err:
                await op
            assert err.value.errno == errno.EINVAL

    run(go())


def test_unmap_reads_zeros_and_deallocates(opener: Callable[[str], RbdStore],
                                           rbd_image: Callable[..., str]) -> None:
    store = opener(rbd_image("16M"))

    async def go() -> None:
        assert await store.allocation(0, store.size) == (False, store.size)
        await store.write(0, b"x" * (2 * OBJECT))
        assert await store.allocation(0, store.size) == (True, 2 * OBJECT)
        assert await store.allocation(OBJECT, 4096) == (True, 4096)
        await store.unmap(512, 512)  # below the discard granularity: zeroed all the same
        assert await store.read(0, 1536) == b"x" * 512 + bytes(512) + b"x" * 512
        await store.unmap(OBJECT, OBJECT)  # a whole object: deallocated
        assert await store.read(OBJECT, 4096) == bytes(4096)
        assert await store.allocation(OBJECT, store.size - OBJECT) == \
            (False, store.size - OBJECT)
        assert await store.allocation(0, store.size) == (True, OBJECT)

    run(go())


def test_quiesce_waits_for_every_completion(opener: Callable[[str], RbdStore],
                                            rbd_image: Callable[..., str]) -> None:
    store = opener(rbd_image("8M"))

    async def go() -> None:
        tasks = [asyncio.ensure_future(store.write(i * 4096, bytes([i]) * 4096))
                 for i in range(64)]
        await asyncio.sleep(0)  # let them submit
        tasks[0].cancel()  # a cancelled caller's write still counts
        await store.quiesce()
        assert not store._in_flight
        await asyncio.gather(*tasks[1:])
        assert await store.read(63 * 4096, 4096) == bytes([63]) * 4096

    run(go())


def test_errors_are_one_line(opener: Callable[[str], RbdStore], ceph: DevCluster,
                             rbd_image: Callable[..., str]) -> None:
    conf = f"conf={ceph.conf}"
    cases = [("rbd/no-such-image", conf, "rbd/no-such-image: no such image"),
             ("nopool/img", conf, "pool nopool: no such pool"),
             (rbd_image("4M"), conf + ";bogus=1", "unknown rbd store option: bogus")]
    for path, opts, text in cases:
        with pytest.raises(StoreError) as err:
            open_store("rbd", path, bsopts=opts)
        assert text in str(err.value) and "\n" not in str(err.value)
    assert not _Connection._table  # a failed open released its connection


def test_missing_bindings_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rados", None)  # import rados -> ImportError
    monkeypatch.setitem(sys.modules, "rbd", None)
    with pytest.raises(StoreError) as err:
        open_store("rbd", "rbd/img")
    text = str(err.value)
    assert "\n" not in text
    assert "python3-rbd" in text and "python3-rados" in text
    assert "--system-site-packages" in text
    assert "rbd" in available()
    assert open_store("memory", "1M").size == MIB  # nothing else breaks


def test_identity_from_the_image_id(opener: Callable[[str], RbdStore],
                                    rbd_image: Callable[..., str]) -> None:
    spec, other = rbd_image("8M"), rbd_image("8M")
    a = opener(spec)
    ident = a.identity()
    assert a.image_id in ident and len(ident) <= 40 and ident.isascii()
    run(a.close())
    b, c = opener(spec), opener(other)  # reopened (a restart, another gateway)
    assert b.identity() == ident and c.identity() != ident
    assert b.pool == "rbd" and b.image_name == spec.split("/")[1]
    lu1 = create_lu("disk", 1, b, tid=1)
    lu2 = create_lu("disk", 7, b, tid=3)  # other tid and LUN: the same LU
    assert lu1.scsi_id == lu2.scsi_id == lu1.scsi_sn == ident
    named = create_lu("disk", 1, b, tid=1, params={"scsi_id": "mine", "scsi_sn": "s1"})
    assert (named.scsi_id, named.scsi_sn) == ("mine", "s1")  # the admin's choice wins


def test_connection_is_shared(opener: Callable[[str], RbdStore],
                              rbd_image: Callable[..., str]) -> None:
    a, b = opener(rbd_image("4M")), opener(rbd_image("4M"))
    assert a.cluster is b.cluster and a.ioctx is not b.ioctx
    assert len(_Connection._table) == 1
    run(a.close())
    assert len(_Connection._table) == 1  # b still uses it
    assert run(b.read(0, 512)) == bytes(512)


def test_rescan_sees_rbd_resize(opener: Callable[[str], RbdStore], ceph: DevCluster,
                                rbd_image: Callable[..., str]) -> None:
    """``--params rescan=1`` after ``rbd resize``: the new size, and CAPACITY DATA HAS
    CHANGED for every nexus (SBC-3 4.10)."""
    spec = rbd_image("8M")
    store = opener(spec)
    lu = create_lu("disk", 1, store, tid=1, bstype="rbd")
    lu.nexuses["nexus-a"] = None  # type: ignore[assignment]  # only its key matters here
    ceph.rbd("resize", "--size", "24M", spec)
    assert store.backing_size() == 24 * MIB
    change = prepare_resize(lu, {"rescan": "1"})
    assert change is not None and change() is True
    assert store.size == 24 * MIB and lu.num_blocks == 24 * MIB // 512
    assert (0x2A, 0x09) in lu.ua["nexus-a"]
    run(store.write(20 * MIB, b"y" * 512))  # the new end takes I/O
    assert run(store.read(20 * MIB, 512)) == b"y" * 512
    with pytest.raises(ValueError, match="larger than the rbd store"):
        prepare_resize(lu, {"size": "64M"})
    unchanged = prepare_resize(lu, {"rescan": "1"})
    assert unchanged is not None and unchanged() is False


def test_compare_and_write(opener: Callable[[str], RbdStore],
                           rbd_image: Callable[..., str]) -> None:
    store = opener(rbd_image("8M"))

    async def go() -> None:
        await store.write(0, b"A" * 1024)
        assert await store.compare_and_write(0, b"A" * 1024, b"B" * 1024) is None
        assert await store.read(0, 1024) == b"B" * 1024
        assert await store.compare_and_write(0, b"B" * 700 + b"x" * 324, b"C" * 1024) == 700
        assert await store.read(0, 1024) == b"B" * 1024  # nothing written

    run(go())


def test_compare_and_write_is_atomic_across_gateways(
        opener: Callable[[str], RbdStore], rbd_image: Callable[..., str]) -> None:
    """Two stores on one image (two gateways): of two racing COMPARE AND WRITEs from the
    same old data, exactly one succeeds, every round."""
    spec = rbd_image("8M")
    a, b = opener(spec), opener(spec)

    async def go() -> None:
        old = b"0" * 512
        await a.write(0, old)
        for i in range(10):
            new_a, new_b = b"a%04d" % i * 128, b"b%04d" % i * 128
            got = await asyncio.gather(a.compare_and_write(0, old, new_a[:512]),
                                       b.compare_and_write(0, old, new_b[:512]))
            assert sorted(g is None for g in got) == [False, True]
            old = await a.read(0, 512)
            assert old in (new_a[:512], new_b[:512])

    run(go())


def test_compare_and_write_waits_for_another_gateways_lock(
        opener: Callable[[str], RbdStore], rbd_image: Callable[..., str]) -> None:
    spec = rbd_image("8M")
    a, other = opener(spec), opener(spec)
    assert CAW_LOCK_SECONDS > 1

    async def go() -> None:
        await other._lock_caw()  # another gateway is in its COMPARE AND WRITE
        task = asyncio.ensure_future(a.compare_and_write(0, bytes(512), b"z" * 512))
        done, _ = await asyncio.wait([task], timeout=0.5)
        assert not done  # still waiting for the lock
        await asyncio.to_thread(other._unlock_caw)
        assert await task is None
        assert await a.read(0, 512) == b"z" * 512

    run(go())


def test_snapshot_is_read_only(opener: Callable[[str], RbdStore], ceph: DevCluster,
                               rbd_image: Callable[..., str]) -> None:
    spec = rbd_image("4M")
    live = opener(spec)
    run(live.write(0, b"s" * 512))
    ceph.rbd("snap", "create", f"{spec}@s1")
    snap = opener(f"{spec}@s1")
    assert snap.readonly
    assert run(snap.read(0, 512)) == b"s" * 512
    with pytest.raises(StoreIOError) as err:
        run(snap.write(0, b"t" * 512))
    assert err.value.errno == errno.EROFS
