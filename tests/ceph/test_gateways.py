"""Two pytgtd gateways exporting one RBD image under one target name (issue 10): data in
through one and out through the other, coherent at once, no acknowledged write lost when
a gateway is SIGKILLed mid-write, and one LU identity whichever gateway answers.

Gateway A listens on 127.0.0.1 with tpgt=1, gateway B on 127.0.0.2 with tpgt=2; each has
its own state directory. Waits are bounded; processes are stopped by their own PIDs.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from ceph_dev_cluster import DevCluster

from pytgt.initiator import Initiator, InitiatorError, InitiatorSession, Inquiry
from tests.ceph.conftest import need_bindings
from tests.ceph.gateways import IQN, two_gateways
from tests.helpers import RunningDaemon, start_daemon

HOST_NAME = "iqn.2026-12.org.pytgt:multipath-host"  # one host, a session through each path
A_HOST, B_HOST = "127.0.0.1", "127.0.0.2"
SIZE = 32 << 20
LUN = 1


def export(d: RunningDaemon, conf: Path, luns: dict[int, str]) -> None:
    """Target ``IQN`` (tid 1) with ``{lun: "pool/image"}`` on the rbd store, open to all
    (tests.ceph.gateways exports one image as LUN 1; the identity test needs more)."""
    d.adm("--lld", "iscsi", "--op", "new", "--mode", "target", "--tid", "1", "-T", IQN)
    for lun, spec in luns.items():
        d.adm("--lld", "iscsi", "--op", "new", "--mode", "logicalunit", "--tid", "1",
              "--lun", str(lun), "-E", "rbd", "-b", spec, "--bsopts", f"conf={conf}")
    d.adm("--lld", "iscsi", "--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")


@contextmanager
def gateway(directory: Path, host: str, tpgt: int, conf: Path,
            luns: dict[int, str]) -> Iterator[RunningDaemon]:
    """A pytgtd on ``host`` with portal group tag ``tpgt`` exporting ``luns``; stopped after."""
    directory.mkdir(parents=True, exist_ok=True)
    d = start_daemon(directory, host, ("--iscsi", f"tpgt={tpgt}"))
    try:
        export(d, conf, luns)
        yield d
    finally:
        d.stop()


@pytest.fixture
def image(rbd_image: Callable[..., str]) -> str:
    need_bindings()
    return rbd_image(f"{SIZE >> 20}M")


@pytest.fixture
def pair(ceph: DevCluster, image: str, tmp_path: Path) -> Iterator[tuple[RunningDaemon,
                                                                         RunningDaemon]]:
    """Gateways A and B exporting ``image`` as LUN 1 of ``IQN``."""
    with two_gateways(tmp_path, ceph, image) as gw:
        yield gw.a, gw.b


async def open_session(d: RunningDaemon, timeout: float = 20.0) -> InitiatorSession:
    """The host's session through gateway ``d``."""
    return await Initiator.login(d.host, d.port, target=IQN, initiator_name=HOST_NAME,
                                 timeout=timeout)


@asynccontextmanager
async def login(d: RunningDaemon) -> AsyncIterator[InitiatorSession]:
    s = await open_session(d)
    try:
        yield s
    finally:
        await s.logout()


def qemu_img(*args: str) -> None:
    res = subprocess.run(["qemu-img", *args], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"qemu-img {' '.join(args)}: {res.stderr}"


# -- data in through A, out through B ---------------------------------------------------

def test_qemu_convert_in_through_a_out_through_b(
        pair: tuple[RunningDaemon, RunningDaemon], tmp_path: Path) -> None:
    a, b = pair
    src, out = tmp_path / "in.raw", tmp_path / "out.raw"
    src.write_bytes(os.urandom(SIZE))
    qemu_img("convert", "-n", "-f", "raw", "-O", "raw", str(src), a.url(IQN, LUN))
    qemu_img("convert", "-f", "raw", "-O", "raw", b.url(IQN, LUN), str(out))
    assert out.read_bytes() == src.read_bytes()


async def _coherence(a: RunningDaemon, b: RunningDaemon, rounds: int) -> None:
    async with login(a) as sa, login(b) as sb:
        bs = (await sa.read_capacity16(LUN)).block_size
        blocks = SIZE // bs
        rng = random.Random(10)
        for i in range(rounds):
            # mostly A -> B; every fourth round B -> A, which moves the image's lock back
            writer, reader = (sb, sa) if i % 4 == 3 else (sa, sb)
            lba, count = rng.randrange(blocks - 16), rng.randint(1, 16)
            await reader.read16(LUN, lba, count, bs)  # anything the reader might keep
            data = rng.randbytes(count * bs)
            await writer.write16(LUN, lba, data, bs)
            assert await reader.read16(LUN, lba, count, bs) == data, f"round {i} lba {lba}"


def test_write_through_a_reads_back_through_b_at_once(
        pair: tuple[RunningDaemon, RunningDaemon]) -> None:
    asyncio.run(asyncio.wait_for(_coherence(*pair, rounds=60), 120))


# -- SIGKILL of a gateway mid-write ------------------------------------------------------

WRITERS, SPAN = 4, 512  # each writer owns SPAN blocks
BEFORE_KILL, AFTER_KILL = 40, 30  # acknowledged writes in all, before / per writer after


def pattern(writer: int, seq: int, bs: int) -> bytes:
    return (f"w{writer:02d}s{seq:06d}.".encode() * (bs // 8 + 1))[:bs]


class Multipath:
    """A host's multipath device over the two sessions: commands go down the current
    path; a path that fails is given up for the next, and the failed command retried."""

    def __init__(self, paths: list[InitiatorSession]) -> None:
        self.paths, self.current = paths, 0
        self.failovers: list[str] = []

    async def write(self, lba: int, data: bytes, bs: int, fua: bool) -> None:
        while True:
            path = self.current
            try:
                await self.paths[path].write16(LUN, lba, data, bs, fua=fua, timeout=60)
                return
            except (InitiatorError, TimeoutError, OSError) as exc:
                if path + 1 >= len(self.paths):
                    raise
                if self.current == path:
                    self.current = path + 1
                    self.failovers.append(f"{type(exc).__name__}: {exc}")


class Writer:
    """Sequential blocks in its own span; records the ones the target acknowledged."""

    def __init__(self, index: int, mp: Multipath, bs: int, progress: asyncio.Event) -> None:
        self.index, self.mp, self.bs, self.progress = index, mp, bs, progress
        self.acked: list[int] = []
        self.after_kill = 0
        self.killed = False

    async def run(self) -> None:
        for seq in range(SPAN):
            if self.after_kill >= AFTER_KILL:
                return
            await self.mp.write(self.index * SPAN + seq, pattern(self.index, seq, self.bs),
                                self.bs, fua=seq % 2 == 0)
            self.acked.append(seq)
            self.after_kill += self.killed
            self.progress.set()


async def _write_through_kill(a: RunningDaemon, b: RunningDaemon) -> tuple[list[Writer], int]:
    sa, sb = await open_session(a), await open_session(b)
    try:
        bs = (await sb.read_capacity16(LUN)).block_size
        mp, progress = Multipath([sa, sb]), asyncio.Event()
        writers = [Writer(i, mp, bs, progress) for i in range(WRITERS)]
        tasks = [asyncio.create_task(w.run()) for w in writers]
        while sum(len(w.acked) for w in writers) < BEFORE_KILL:
            progress.clear()
            await asyncio.wait_for(progress.wait(), 30)
        a.proc.kill()  # SIGKILL, our own gateway A, by PID
        for w in writers:
            w.killed = True
        await asyncio.wait_for(asyncio.gather(*tasks), 180)
        assert mp.current == 1 and mp.failovers, "the writes never left gateway A"
        for w in writers:  # everything acknowledged, read back through B
            for seq in w.acked:
                got = await sb.read16(LUN, w.index * SPAN + seq, 1, bs)
                assert got == pattern(w.index, seq, bs), f"writer {w.index} seq {seq} via B"
        return writers, bs
    finally:
        sa.abort()
        await sb.logout()


def blocklist(ceph: DevCluster) -> set[str]:
    """The client addresses the cluster has blocklisted (fenced)."""
    return {line.split()[0] for line in ceph.ceph("osd", "blocklist", "ls").splitlines()
            if line.strip() and not line.startswith("listed")}


def test_sigkill_gateway_a_mid_write_loses_no_acknowledged_write(
        ceph: DevCluster, image: str, pair: tuple[RunningDaemon, RunningDaemon],
        tmp_path: Path) -> None:
    a, b = pair
    fenced_before = blocklist(ceph)
    writers, bs = asyncio.run(_write_through_kill(a, b))
    assert a.proc.wait(timeout=10) == -9
    assert blocklist(ceph) - fenced_before, "gateway A's client was not blocklisted"
    exported = tmp_path / "export.raw"
    ceph.rbd("export", "--no-progress", image, str(exported), timeout=120)
    data = exported.read_bytes()
    for w in writers:
        assert len(w.acked) >= AFTER_KILL
        for seq in w.acked:
            off = (w.index * SPAN + seq) * bs
            assert data[off:off + bs] == pattern(w.index, seq, bs), \
                f"writer {w.index} seq {seq} in rbd export"


# -- one identity ------------------------------------------------------------------------

Identity = tuple[str, str, bytes, frozenset[bytes]]


def designators(page: bytes) -> list[tuple[int, bytes]]:
    """VPD 0x83 -> [(association, whole designator)]."""
    out, pos, end = [], 4, 4 + int.from_bytes(page[2:4], "big")
    while pos + 4 <= end:
        n = page[pos + 3]
        out.append(((page[pos + 1] >> 4) & 0x3, page[pos:pos + 4 + n]))
        pos += 4 + n
    return out


async def identities(d: RunningDaemon, luns: dict[str, int]) -> tuple[dict[str, Identity],
                                                                        set[bytes]]:
    """Per image: vendor, product, VPD 0x80 and the LU's 0x83 designators; and the
    target-port designators (relative port, port group) this gateway reports."""
    ids: dict[str, Identity] = {}
    ports: set[bytes] = set()
    async with login(d) as s:
        for spec, lun in luns.items():
            std = await s.inquiry(lun)
            serial = await s.inquiry(lun, evpd=True, page=0x80)
            page83 = await s.inquiry(lun, evpd=True, page=0x83)
            assert isinstance(std, Inquiry) and isinstance(serial, bytes | bytearray)
            assert isinstance(page83, bytes | bytearray)
            found = designators(bytes(page83))
            serial = bytes(serial)
            ids[spec] = (std.vendor, std.product, serial,
                         frozenset(v for assoc, v in found if assoc == 0))
            ports |= {v for assoc, v in found if assoc == 1}
    return ids, ports


def test_both_gateways_report_one_identity_per_image(
        ceph: DevCluster, rbd_image: Callable[..., str], tmp_path: Path) -> None:
    need_bindings()
    x, y = rbd_image("8M"), rbd_image("8M")
    # the LUN numbers are swapped on B: an identity made from tid/LUN would differ
    with gateway(tmp_path / "a", A_HOST, 1, ceph.conf, {1: x, 2: y}) as a:
        with gateway(tmp_path / "b", B_HOST, 2, ceph.conf, {1: y, 2: x}) as b:
            ids_a, ports_a = asyncio.run(identities(a, {x: 1, y: 2}))
            ids_b, ports_b = asyncio.run(identities(b, {x: 2, y: 1}))
        with gateway(tmp_path / "b2", B_HOST, 2, ceph.conf, {1: y, 2: x}) as b:
            ids_restarted, _ = asyncio.run(identities(b, {x: 2, y: 1}))
    assert ids_a[x] != ids_a[y]
    assert all(ids[x][2] and ids[x][3] for ids in (ids_a, ids_b))
    assert ids_b == ids_a, "gateways disagree on the LU identity"
    assert ids_restarted == ids_a, "the identity changed across a restart"
    assert ports_a and ports_b and not ports_a & ports_b, "target port ids must differ"
