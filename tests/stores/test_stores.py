"""Backing stores: registry, rdwr (file, O_DIRECT, sync, punch hole, errors), null, memory."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import pytest

from pytgt.stores import StoreError, StoreIOError, available, open_store, parse_size
from pytgt.stores.base import BackingStore, StoreCapability
from pytgt.stores.memory import MemoryStore
from pytgt.stores.null import NullStore
from pytgt.stores.rdwr import RdwrStore

T = TypeVar("T")
MIB = 1 << 20


def run(aw: Awaitable[T]) -> T:
    async def main() -> T:
        return await aw

    return asyncio.run(main())


@pytest.fixture
def image(tmp_path: Path) -> Path:
    p = tmp_path / "disk.img"
    with open(p, "wb") as f:
        f.truncate(4 * MIB)
    return p


def test_registry_lists_builtin_stores() -> None:
    assert {"rdwr", "null", "memory"} <= set(available())


@pytest.mark.parametrize(("bstype", "cls"), [("rdwr", RdwrStore), ("null", NullStore),
                                             ("memory", MemoryStore)])
def test_open_by_type(image: Path, bstype: str, cls: type) -> None:
    store = open_store(bstype, str(image), size=MIB)
    assert isinstance(store, cls) and isinstance(store, BackingStore)
    assert store.name == bstype
    run(store.close())


@pytest.mark.parametrize(("bstype", "path", "kw", "match"), [
    ("nope", "/x", {}, "unknown backing store type"),
    ("rdwr", "/nonexistent/disk.img", {}, "No such file or directory"),
    ("rdwr", "", {}, "path"),
    ("rdwr", "IMAGE", {"bsoflags": "turbo"}, "bsoflags"),
    ("rdwr", "IMAGE", {"bsopts": "x=1"}, "option"),
    ("rdwr", "DIR", {}, "directory"),
    ("memory", "", {}, "size"),
    ("memory", "", {"bsopts": "size=lots"}, "bad size"),
    ("null", "", {"bsopts": "junk"}, "key=value"),
])
def test_open_errors(image: Path, bstype: str, path: str, kw: dict, match: str) -> None:
    path = {"IMAGE": str(image), "DIR": str(image.parent)}.get(path, path)
    with pytest.raises(StoreError, match=match):
        open_store(bstype, path, **kw)


@pytest.mark.parametrize(("text", "value"), [("4096", 4096), ("64M", 64 * MIB), ("1g", 1 << 30),
                                             ("2TiB", 2 << 40), ("10k", 10240)])
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("oflags", ["", "sync", "direct", "direct,sync"])
def test_rdwr_read_write(image: Path, oflags: str) -> None:
    async def main() -> None:
        store = open_store("rdwr", str(image), bsoflags=oflags)
        assert store.size == 4 * MIB
        await store.write(8192, b"A" * 8192)
        await store.write(100, b"xyz")  # unaligned: buffered path under O_DIRECT
        assert bytes(await store.read(8192, 8192)) == b"A" * 8192
        assert bytes(await store.read(99, 5)) == b"\0xyz\0"
        assert bytes(await store.read(0, 0)) == b""
        await store.flush()
        await store.close()

    run(main())
    assert image.read_bytes()[8192:16384] == b"A" * 8192


def test_rdwr_bounds_and_closed(image: Path) -> None:
    async def main() -> None:
        store = open_store("rdwr", str(image))
        with pytest.raises(StoreIOError) as exc:
            await store.read(4 * MIB - 1, 2)
        assert exc.value.errno == errno.EINVAL
        await store.close()
        with pytest.raises(StoreIOError):
            await store.read(0, 1)

    run(main())


def test_rdwr_flush_is_durable(image: Path) -> None:
    async def main() -> None:
        store = open_store("rdwr", str(image))
        await store.write(0, b"durable")
        await store.flush()
        fd = os.open(image, os.O_RDONLY)
        try:
            assert os.pread(fd, 7, 0) == b"durable"
        finally:
            os.close(fd)
        await store.close()

    run(main())


def test_rdwr_unmap_punches_a_hole(image: Path) -> None:
    async def main() -> None:
        store = open_store("rdwr", str(image))
        await store.write(0, b"\xff" * MIB)
        await store.flush()
        before = os.stat(image).st_blocks
        await store.unmap(0, MIB // 2)
        assert bytes(await store.read(0, MIB // 2)) == bytes(MIB // 2)
        assert bytes(await store.read(MIB // 2, 4)) == b"\xff" * 4
        assert os.stat(image).st_size == 4 * MIB
        await store.close()
        return before

    before = run(main())
    assert os.stat(image).st_blocks <= before
    store = RdwrStore.open(str(image))
    assert StoreCapability.UNMAP in store.capabilities
    run(store.close())


def test_rdwr_unmap_falls_back_to_zeros(image: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytgt.stores import rdwr

    monkeypatch.setattr(rdwr, "_fallocate", None)

    async def main() -> None:
        store = open_store("rdwr", str(image))
        await store.write(4096, b"\x01" * 4096)
        await store.unmap(4096, 4096)
        assert bytes(await store.read(4096, 4096)) == bytes(4096)
        await store.close()

    run(main())


def test_rdwr_read_only_fallback(image: Path) -> None:
    os.chmod(image, 0o444)
    if os.access(image, os.W_OK):  # running as root: permissions do not apply
        pytest.skip("root can write a read-only file")

    async def main() -> None:
        store = open_store("rdwr", str(image))
        assert getattr(store, "readonly", False)
        with pytest.raises(StoreIOError) as exc:
            await store.write(0, b"x")
        assert exc.value.errno == errno.EROFS
        await store.close()

    run(main())


def test_rdwr_io_runs_off_the_loop(image: Path) -> None:
    import threading

    seen: list[str] = []
    store = RdwrStore.open(str(image))
    store._nowait = False
    orig = store._read_sync

    def spy(offset: int, length: int) -> bytes | memoryview:
        seen.append(threading.current_thread().name)
        return orig(offset, length)

    store._read_sync = spy  # type: ignore[method-assign]
    run(store.read(0, 512))
    run(store.close())
    assert seen and seen[0].startswith("pytgt-rdwr")


def test_rdwr_errors_become_store_io_errors(image: Path) -> None:
    store = RdwrStore.open(str(image))
    os.close(store._fd)
    store._fd = os.open(image, os.O_RDONLY)

    async def main() -> None:
        with pytest.raises(StoreIOError) as exc:
            await store.write(0, b"x")
        assert exc.value.errno == errno.EBADF
        await store.close()

    run(main())


def test_null_store() -> None:
    async def main() -> None:
        store = open_store("null", "", bsopts="size=1G")
        assert store.size == 1 << 30
        assert bytes(await store.read(0, 4096)) == bytes(4096)
        assert len(await store.read(0, 3 * MIB)) == 3 * MIB
        await store.write(0, b"ignored")
        assert bytes(await store.read(0, 7)) == bytes(7)
        await store.unmap(0, 4096)
        await store.flush()
        await store.close()

    run(main())
    assert open_store("null", "").size == 1 << 40


def test_memory_store() -> None:
    async def main() -> None:
        store = open_store("memory", "", bsopts="size=64K")
        assert store.size == 64 * 1024
        await store.write(10, memoryview(b"hello"))
        data = await store.read(10, 5)
        await store.write(10, b"HELLO")
        assert bytes(data) == b"hello"  # earlier read unaffected
        await store.unmap(10, 2)
        assert bytes(await store.read(10, 5)) == b"\0\0LLO"
        with pytest.raises(StoreIOError):
            await store.write(64 * 1024 - 1, b"xx")

    run(main())
    assert open_store("memory", "16M").size == 16 * MIB


def test_rdwr_allocation_status(image: Path) -> None:
    async def main() -> list[tuple[bool, int]]:
        store = open_store("rdwr", str(image))
        await store.write(MIB, b"\x01" * MIB)
        out = [await store.allocation(0, 4 * MIB), await store.allocation(MIB, 3 * MIB),  # type: ignore[attr-defined]
               await store.allocation(3 * MIB, MIB)]  # type: ignore[attr-defined]
        await store.close()
        return out

    hole, data, tail = run(main())
    assert hole == (False, MIB) and data == (True, MIB) and tail == (False, MIB)


def test_rdwr_cached_reads_skip_the_pool(image: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytgt.stores import rdwr

    if rdwr._RWF_NOWAIT is None:
        pytest.skip("no RWF_NOWAIT")
    store = RdwrStore.open(str(image))
    run(store.write(0, b"c" * 4096))
    pooled: list[int] = []
    orig = store._read_sync

    def spy(offset: int, length: int) -> bytes | memoryview:
        pooled.append(offset)
        return orig(offset, length)

    store._read_sync = spy  # type: ignore[method-assign]
    assert bytes(run(store.read(0, 4096))) == b"c" * 4096
    calls = len(pooled)  # 0 when the page cache answered (RWF_NOWAIT)

    def would_block(*args: object) -> int:
        raise BlockingIOError(errno.EAGAIN, "would block")

    monkeypatch.setattr(rdwr.os, "preadv", would_block)
    assert bytes(run(store.read(0, 4096))) == b"c" * 4096
    assert len(pooled) == calls + 1  # a cache miss goes to the pool
    run(store.close())


def test_rdwr_many_concurrent_ios(image: Path) -> None:
    async def main() -> None:
        store = open_store("rdwr", str(image))
        blocks = [bytes([i]) * 4096 for i in range(256)]
        await asyncio.gather(*(store.write(i * 4096, b) for i, b in enumerate(blocks)))
        store._nowait = False  # type: ignore[attr-defined]  # every read through the pool
        got = await asyncio.gather(*(store.read(i * 4096, 4096) for i in range(256)))
        assert [bytes(g) for g in got] == blocks
        await store.close()

    run(main())


def test_rdwr_pool_errors_reach_their_own_caller(image: Path) -> None:
    async def main() -> None:
        store = RdwrStore.open(str(image))
        orig = store._write_sync

        def flaky(offset: int, view: memoryview) -> None:
            if offset == 8192:
                raise StoreIOError(errno.EIO, "boom")
            orig(offset, view)

        store._write_sync = flaky  # type: ignore[method-assign]
        results = await asyncio.gather(*(store.write(i * 4096, b"x" * 4096) for i in range(6)),
                                       return_exceptions=True)
        assert [type(r).__name__ for r in results] == [
            "NoneType", "NoneType", "StoreIOError", "NoneType", "NoneType", "NoneType"]
        await store.close()

    run(main())


@pytest.mark.parametrize("bstype", ["rdwr", "memory", "null"])
def test_write_durable(image: Path, bstype: str) -> None:
    from pytgt.stores.base import SupportsWriteFua, write_durable

    calls: list[str] = []

    async def main() -> bytes:
        store = open_store(bstype, str(image), size=MIB)
        orig_flush = store.flush

        async def flush() -> None:
            calls.append("flush")
            await orig_flush()

        store.flush = flush  # type: ignore[method-assign]
        await write_durable(store, 4096, b"d" * 512)
        data = bytes(await store.read(4096, 512))
        await store.close()
        return data

    data = run(main())
    fused = bstype == "rdwr"
    assert isinstance(RdwrStore, type) and (calls == []) == fused
    assert data == (bytes(512) if bstype == "null" else b"d" * 512)
    assert issubclass(RdwrStore, SupportsWriteFua) if fused else True


@pytest.mark.parametrize("bstype", ["null", "memory"])
def test_quiesce_of_a_store_without_background_io(bstype: str) -> None:
    store = open_store(bstype, "", size=MIB)
    run(asyncio.wait_for(store.quiesce(), 1))


def test_rdwr_quiesce_waits_for_a_pool_write_whose_caller_was_cancelled(image: Path) -> None:
    """An aborted command's pwrite cannot be stopped; quiesce() returns once it has ended,
    and does not wait for I/O submitted after it was called."""
    import threading

    store = RdwrStore.open(str(image), bsoflags="sync")  # no inline writes: the pool
    entered, release, later = threading.Event(), threading.Event(), threading.Event()
    orig = store._write_sync

    def gated(offset: int, view: memoryview) -> None:
        if offset == 0:
            entered.set()
            release.wait(10)
        else:
            later.wait(10)
        orig(offset, view)

    store._write_sync = gated  # type: ignore[method-assign]

    async def body() -> None:
        loop = asyncio.get_running_loop()
        write = asyncio.ensure_future(store.write(0, b"A" * 4096))
        assert await loop.run_in_executor(None, entered.wait, 10)
        write.cancel()  # the command is aborted; its pwrite goes on in the thread
        with pytest.raises(asyncio.CancelledError):
            await write
        quiet = asyncio.ensure_future(store.quiesce())
        newer = asyncio.ensure_future(store.write(8192, b"C" * 4096))  # after the call
        done, _ = await asyncio.wait([quiet], timeout=0.05)
        assert not done  # the old write is still in its thread
        release.set()
        await asyncio.wait_for(quiet, 5)  # returns although the newer write still waits
        assert not newer.done()
        with open(image, "rb") as f:
            assert f.read(4096) == b"A" * 4096  # the old write had landed by then
        later.set()
        await newer
        await store.quiesce()

    try:
        run(body())
    finally:
        release.set()
        later.set()
        run(store.close())


def test_rdwr_job_cancelled_before_it_starts_is_skipped(image: Path) -> None:
    import threading

    store = RdwrStore(str(image), os.open(image, os.O_RDWR), 4 * MIB, workers=1,
                      inline_writes=False)
    entered, release = threading.Event(), threading.Event()
    orig = store._write_sync
    written: list[int] = []

    def gated(offset: int, view: memoryview) -> None:
        written.append(offset)
        if offset == 0:
            entered.set()
            release.wait(10)
        orig(offset, view)

    store._write_sync = gated  # type: ignore[method-assign]

    async def body() -> None:
        loop = asyncio.get_running_loop()
        first = asyncio.ensure_future(store.write(0, b"A" * 512))
        assert await loop.run_in_executor(None, entered.wait, 10)
        queued = asyncio.ensure_future(store.write(4096, b"B" * 512))
        await asyncio.sleep(0)  # submitted behind the first (one worker)
        queued.cancel()
        release.set()
        await first
        await asyncio.wait_for(store.quiesce(), 5)
        assert written == [0]

    try:
        run(body())
    finally:
        release.set()
        run(store.close())


def test_rdwr_inline_writes_option(image: Path) -> None:
    """``--bsopts inline_writes=0``: every write goes through the pool, none on the loop."""
    on = open_store("rdwr", str(image))
    off = open_store("rdwr", str(image), bsopts="inline_writes=0")
    try:
        assert on.write_nowait(0, b"a" * 4096)  # page-cache write in place (the default)
        assert not off.write_nowait(0, b"b" * 4096)
        with pytest.raises(StoreError, match="inline_writes"):
            open_store("rdwr", str(image), bsopts="inline_writes=maybe")
    finally:
        run(on.close())
        run(off.close())
