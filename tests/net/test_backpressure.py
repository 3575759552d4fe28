"""Data-In back-pressure in the portal: a peer that does not read cannot make one
connection hold more than ``max_outstanding_data_in`` of read data (plus one command),
commands wait in order and run once it reads, and nothing deadlocks.

The protocol is driven with a stub transport whose write buffer fills like asyncio's
(pause_writing above 64 KiB, resume_writing once the peer read it all).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pytgt.daemon.server import Daemon
from pytgt.iscsi.constants import RESERVED_TAG, TmfFunction
from pytgt.iscsi.framer import Framer
from pytgt.iscsi.pdu import (
    DataIn,
    LoginRequest,
    NopIn,
    NopOut,
    ScsiCommand,
    TaskMgmtRequest,
    TaskMgmtResponse,
    decode_pdu,
)
from pytgt.iscsi.text import encode_text
from pytgt.net.portal import IscsiProtocol, PortalOptions
from tests.net.test_fastpath import feed, rw, wait_idle

IQN = "iqn.2026-11.org.pytgt:backpressure"
MiB = 1 << 20
LUN1 = 1 << 48


class PeerTransport:
    """A transport whose peer reads only when told to (:meth:`drain`)."""

    HIGH = 64 * 1024

    def __init__(self) -> None:
        self.proto: IscsiProtocol | None = None
        self.queued: list[bytes] = []
        self.size = 0
        self.paused = False
        self.reading = True
        self.peak = 0
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 3260)}.get(
            name, default)

    def writelines(self, bufs: list[Any]) -> None:
        for b in bufs:
            self.queued.append(bytes(b))
            self.size += len(b)
        self.peak = max(self.peak, self.size)
        if not self.paused and self.size > self.HIGH:
            self.paused = True
            assert self.proto is not None
            self.proto.pause_writing()

    def get_write_buffer_size(self) -> int:
        return self.size

    def drain(self) -> bytes:
        """The peer reads everything queued."""
        out = b"".join(self.queued)
        self.queued.clear()
        self.size = 0
        if self.paused:
            self.paused = False
            assert self.proto is not None
            self.proto.resume_writing()
        return out

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            assert self.proto is not None
            asyncio.get_running_loop().call_soon(self.proto.connection_lost, None)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


class Peer:
    def __init__(self, proto: IscsiProtocol, transport: PeerTransport) -> None:
        self.proto, self.transport = proto, transport
        self.tx, self.rx = Framer(), Framer(1 << 24)
        self.cmd_sn, self.itt = 1, 0x100
        self.data: dict[int, int] = {}  # ITT -> Data-In bytes received
        self.done: set[int] = set()  # ITTs with status
        self.other: list[Any] = []

    def send(self, *pdus: Any) -> None:
        feed(self.proto, b"".join(bytes(b) for p in pdus for b in self.tx.frame(p.encode(),
                                                                                p.data)))

    def read_command(self, blocks: int) -> ScsiCommand:
        self.itt += 1
        cmd = ScsiCommand(self.itt, rw(0x88, 0, blocks), LUN1, blocks * 512, self.cmd_sn, 0,
                          True, False, True, 1, False)
        self.cmd_sn += 1
        return cmd

    def receive(self) -> None:
        self.rx.receive_data(self.transport.drain())
        while (frame := self.rx.next_frame()) is not None:
            pdu = decode_pdu(frame.bhs, frame.data, frame.ahs)
            if isinstance(pdu, DataIn):
                self.data[pdu.itt] = self.data.get(pdu.itt, 0) + len(pdu.data)
                if pdu.status_present:
                    self.done.add(pdu.itt)
            else:
                self.other.append(pdu)


@asynccontextmanager
async def connected(cap: int) -> AsyncIterator[Peer]:
    daemon = Daemon([("127.0.0.1", 0)], options=PortalOptions(max_outstanding_data_in=cap))
    await daemon.start()
    try:
        for request in (
                {"mode": "target", "op": "new", "tid": 1, "targetname": IQN},
                {"mode": "logicalunit", "op": "new", "tid": 1, "lun": 1,
                 "backing_store": "64M", "bstype": "memory"},
                {"mode": "target", "op": "bind", "tid": 1, "initiator_address": "ALL"}):
            rc, out = await daemon.management.handle(request)
            assert not rc, out
        proto = IscsiProtocol(daemon.service)
        transport = PeerTransport()
        transport.proto = proto
        proto.connection_made(transport)  # type: ignore[arg-type]
        peer = Peer(proto, transport)
        keys = [("InitiatorName", "iqn.2026-11.org.pytgt:bp-client"), ("TargetName", IQN),
                ("SessionType", "Normal"), ("MaxRecvDataSegmentLength", "262144"),
                ("MaxBurstLength", "16776192")]
        peer.send(LoginRequest(1, 0x400001370000, cmd_sn=1, transit=True, csg=1, nsg=3,
                               data=encode_text(keys)))
        await wait_idle(proto)
        assert transport.drain()[36] == 0  # login status class: success
        peer.send(ScsiCommand(0x10, bytes(16), LUN1, 0, 1, 0, False, False, True, 1, False))
        peer.cmd_sn = 2
        await settle(proto)
        transport.drain()  # TEST UNIT READY: the power-on unit attention
        yield peer
        proto.connection_lost(None)  # the peer goes: nothing for a graceful stop to wait on
    finally:
        await daemon.stop()


async def settle(proto: IscsiProtocol) -> None:
    """Until no command waits on I/O and no pump or flush is scheduled (bounded)."""
    for _ in range(1000):
        await asyncio.sleep(0)
        if not (proto._pending or proto._pump_scheduled or proto._flush_scheduled):
            break
    await asyncio.sleep(0)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_non_reading_peer_is_held_at_the_cap_and_served_once_it_reads() -> None:
    async def body() -> None:
        async with connected(cap=4 * MiB) as peer:
            reads = [peer.read_command(2048) for _ in range(20)]  # 20 x 1 MiB
            nop = NopOut(0x77, RESERVED_TAG, peer.cmd_sn, 0, immediate=True, data=b"ping")
            peer.send(*reads, nop)
            await settle(peer.proto)
            t = peer.transport
            assert t.size <= 5 * MiB + 64 * 1024  # the cap plus one command
            assert len(peer.proto._held) >= 14 and not t.reading
            holds = peer.proto.service.data_in_holds  # pytgt_data_in_holds_total
            assert 20 >= holds >= len(peer.proto._held)
            peer.receive()
            assert any(isinstance(p, NopIn) and bytes(p.data) == b"ping" for p in peer.other)
            for _ in range(40):  # the peer reads; the rest follow in order
                if len(peer.done) == 20:
                    break
                await settle(peer.proto)
                peer.receive()
            assert peer.done == {r.itt for r in reads}
            assert all(peer.data[r.itt] == MiB for r in reads)
            assert t.peak <= 5 * MiB + 64 * 1024
            assert t.reading and not peer.proto._held
            assert peer.proto._reading == peer.proto._unsent == 0

    run(body())


def test_a_command_bigger_than_the_cap_runs_when_nothing_is_outstanding() -> None:
    async def body() -> None:
        async with connected(cap=1 * MiB) as peer:
            big = [peer.read_command(8192) for _ in range(3)]  # 3 x 4 MiB
            peer.send(*big)
            for _ in range(40):
                if len(peer.done) == 3:
                    break
                await settle(peer.proto)
                peer.receive()
            assert peer.done == {r.itt for r in big}
            assert peer.transport.peak <= 4 * MiB + 64 * 1024  # one at a time

    run(body())


def test_task_management_answers_while_commands_are_held() -> None:
    async def body() -> None:
        async with connected(cap=2 * MiB) as peer:
            reads = [peer.read_command(2048) for _ in range(10)]
            tmf = TaskMgmtRequest(0x78, TmfFunction.ABORT_TASK_SET, LUN1, cmd_sn=peer.cmd_sn)
            peer.send(*reads, tmf)
            await settle(peer.proto)
            peer.receive()
            (rsp,) = [p for p in peer.other if isinstance(p, TaskMgmtResponse)]
            assert rsp.itt == 0x78 and rsp.response == 0
            answered = set(peer.done)
            assert 0 < len(answered) < 10
            await settle(peer.proto)
            peer.receive()
            assert peer.done == answered  # the held ones were aborted: no response
            assert not peer.proto._held and peer.transport.reading
            after = peer.read_command(8)
            peer.send(after)
            await settle(peer.proto)
            peer.receive()
            assert after.itt in peer.done

    run(body())
