"""The READ/WRITE fast path (pytgt.scsi.fastpath) answers byte for byte as the generic path.

The same script of SCSI Command PDUs goes through the portal's protocol class twice, on
fresh targets with the same data: once as shipped, once with the fast path switched off
(every command then takes ScsiTarget.execute). The bytes sent back must be identical.
"""

from __future__ import annotations

import asyncio
import os
import struct
from pathlib import Path
from typing import Any

import pytest

from pytgt.daemon.server import Daemon
from pytgt.iscsi.framer import Framer
from pytgt.iscsi.pdu import LoginRequest, ScsiCommand
from pytgt.iscsi.text import encode_text
from pytgt.net.portal import IscsiProtocol
from pytgt.scsi import fastpath

IQN = "iqn.2026-11.org.pytgt:fastpath"
FILE_BLOCKS = 2048  # 1 MiB of 512-byte blocks


class Transport:
    """Just enough of an asyncio transport: collects what the protocol writes."""

    def __init__(self) -> None:
        self.out: list[bytes] = []

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 3260)}.get(
            name, default)

    def writelines(self, bufs: list[Any]) -> None:
        self.out.extend(bytes(b) for b in bufs)

    def write(self, buf: Any) -> None:
        self.out.append(bytes(buf))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def rw(op: int, lba: int, blocks: int, flags: int = 0) -> bytes:
    if op in (0x28, 0x2A):
        return struct.pack(">BBIBHB", op, flags, lba, 0, blocks, 0)
    return struct.pack(">BBQIBB", op, flags, lba, blocks, 0, 0)


# (LUN, CDB, read, write, EDTL, immediate data, CmdSN offset, immediate bit)
Step = tuple[int, bytes, bool, bool, int, bytes, int, bool]


def script() -> list[list[Step]]:
    """Batches of commands, each batch fed to the target in one piece."""
    data = bytes(range(256)) * 16  # 4 KiB
    steps: list[list[Step]] = [
        [(1, bytes(16), False, False, 0, b"", 0, False)],  # TEST UNIT READY: the POWER ON UA
        [(2, bytes(16), False, False, 0, b"", 0, False)],
        [(1, rw(0x28, 0, 8), True, False, 4096, b"", 0, False)],
        [(1, rw(0x88, 100, 8), True, False, 4096, b"", 0, False)],
        [(1, rw(0x88, 100, 8), True, False, 8192, b"", 0, False)],  # underflow
        [(1, rw(0x88, 100, 8), True, False, 2048, b"", 0, False)],  # overflow
        [(1, rw(0x28, FILE_BLOCKS - 4, 8), True, False, 4096, b"", 0, False)],  # out of range
        [(1, rw(0x88, 0, 8, 0x20), True, False, 4096, b"", 0, False)],  # RDPROTECT
        [(1, rw(0x28, 0, 0), True, False, 0, b"", 0, False)],  # no blocks
        [(1, rw(0x88, 16, 128), True, False, 65536, b"", 0, False)],  # several Data-In
        [(1, rw(0x2A, 8, 8), False, True, 4096, data, 0, False)],
        [(1, rw(0x88, 8, 8), True, False, 4096, b"", 0, False)],  # reads the write back
        [(1, rw(0x8A, 24, 8, 0x08), False, True, 4096, data[::-1], 0, False)],  # FUA
        [(1, rw(0x8A, 32, 8), False, True, 2048, data[:2048], 0, False)],  # short Data-Out
        [(1, rw(0x8A, FILE_BLOCKS, 8), False, True, 4096, data, 0, False)],  # out of range
        [(1, rw(0x88, 24, 16), True, False, 8192, b"", 0, False)],
        [(2, rw(0x88, 1 << 30, 8), True, False, 4096, b"", 0, False)],  # null store
        [(2, rw(0x2A, 64, 8), False, True, 4096, data, 0, False)],
        # a CmdSN gap: the second is held until the first arrives, then both run
        [(1, rw(0x88, 40, 8), True, False, 4096, b"", 1, False)],
        [(1, rw(0x28, 48, 8), True, False, 4096, b"", -1, False)],
        [(1, rw(0x88, 56, 8), True, False, 4096, b"", 0, True)],  # immediate delivery
        [(1 + i % 2, rw(0x88, i * 8, 8), True, False, 4096, b"", 0, False)
         for i in range(32)],  # a queue-depth-32 burst in one read
        [(1, rw(0x2A, 200 + 8 * i, 8), False, True, 4096, data, 0, False)
         for i in range(8)],
        [(3, rw(0x88, 0, 8), True, False, 4096, b"", 0, False)],  # no such LUN
    ]
    return steps


async def wait_idle(proto: IscsiProtocol) -> None:
    assert proto.conn is not None
    for _ in range(2000):
        await asyncio.sleep(0)
        busy = any(t.delivered for t in proto.conn.tasks.values())
        if not busy and not proto._running:  # (a command held for a CmdSN gap is not busy)
            break
        await asyncio.sleep(0.001)
    for _ in range(3):
        await asyncio.sleep(0)


def feed(proto: IscsiProtocol, data: bytes) -> None:
    view = memoryview(data)
    while view:
        buf = proto.get_buffer(len(view))
        n = min(len(buf), len(view))
        buf[:n] = view[:n]
        proto.buffer_updated(n)
        view = view[n:]


async def run(image: Path) -> list[bytes]:
    daemon = Daemon([("127.0.0.1", 0)])
    await daemon.start()
    try:
        for request in (
                {"mode": "target", "op": "new", "tid": 1, "targetname": IQN},
                {"mode": "logicalunit", "op": "new", "tid": 1, "lun": 1,
                 "backing_store": str(image), "bstype": "rdwr"},
                {"mode": "logicalunit", "op": "new", "tid": 1, "lun": 2,
                 "backing_store": "null0", "bstype": "null", "bsopts": f"size={1 << 40}"},
                {"mode": "target", "op": "bind", "tid": 1, "initiator_address": "ALL"}):
            rc, out = await daemon.management.handle(request)
            assert not rc, out
        proto = IscsiProtocol(daemon.service)
        transport = Transport()
        proto.connection_made(transport)  # type: ignore[arg-type]
        keys = [("InitiatorName", "iqn.2026-11.org.pytgt:fp-client"), ("TargetName", IQN),
                ("SessionType", "Normal"), ("HeaderDigest", "None"), ("DataDigest", "None"),
                ("MaxRecvDataSegmentLength", "8192"), ("ImmediateData", "Yes"),
                ("InitialR2T", "No"), ("FirstBurstLength", "65536"),
                ("MaxBurstLength", "32768")]
        tx = Framer()
        login = LoginRequest(1, 0x400001370000, cmd_sn=1, transit=True, csg=1, nsg=3,
                             data=encode_text(keys))
        feed(proto, b"".join(bytes(b) for b in tx.frame(login.encode(), login.data)))
        await wait_idle(proto)
        assert transport.out and transport.out[0][36] == 0  # login status class: success
        replies = [b"".join(transport.out)]
        transport.out.clear()
        cmd_sn, itt = 1, 0x100
        for batch in script():
            wire = b""
            for lun, cdb, read, write, edtl, data, sn_delta, immediate in batch:
                itt += 1
                cmd = ScsiCommand(itt, cdb, lun << 48, edtl, cmd_sn + sn_delta, 0, read, write,
                                  True, 1, immediate, 0, data)
                if not immediate:
                    cmd_sn += 1
                wire += b"".join(bytes(b) for b in tx.frame(cmd.encode(), cmd.data))
            feed(proto, wire)
            await wait_idle(proto)
            replies.append(b"".join(transport.out))
            transport.out.clear()
        return replies
    finally:
        await daemon.stop()


def unordered(reply: bytes) -> list[bytes]:
    """The PDUs of a reply, StatSN/ExpCmdSN/MaxCmdSN blanked, sorted: of a batch, commands
    may complete in another order or before the rest of the batch was read (a write the
    fast path did at once, the generic path in the pool); the PDUs must still match."""
    rx = Framer(1 << 24)
    rx.receive_data(reply)
    out = []
    while (frame := rx.next_frame()) is not None:
        bhs = bytearray(frame.bhs)
        bhs[24:36] = bytes(12)
        out.append(bytes(bhs) + bytes(frame.data))
    return sorted(out)


def test_fast_path_answers_like_the_generic_path(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    content = os.urandom(FILE_BLOCKS * 512)
    (tmp_path / "a.img").write_bytes(content)
    (tmp_path / "b.img").write_bytes(content)
    used = {"read": 0, "write": 0}
    real_read, real_write = fastpath.read, fastpath.write

    def counting_read(*args: Any) -> Any:
        out = real_read(*args)
        used["read"] += out is not None
        return out

    def counting_write(*args: Any) -> Any:
        out = real_write(*args)
        used["write"] += out is not None
        return out

    monkeypatch.setattr(fastpath, "read", counting_read)
    monkeypatch.setattr(fastpath, "write", counting_write)
    fast = asyncio.run(run(tmp_path / "a.img"))
    assert used["read"] >= 30 and used["write"] >= 9  # the fast path really ran
    monkeypatch.setattr(fastpath, "read", lambda *args: None)
    monkeypatch.setattr(fastpath, "write", lambda *args: None)
    generic = asyncio.run(run(tmp_path / "b.img"))
    assert len(fast) == len(generic) == len(script()) + 1
    gap = 1 + next(i for i, batch in enumerate(script()) if batch[0][6] == 1)
    for i, (f, g) in enumerate(zip(fast, generic, strict=True)):
        assert unordered(f) == unordered(g), f"batch {i}: the fast path answered differently"
        if len(script()[i - 1]) == 1 or not i:
            assert f == g, f"batch {i}: the fast path answered differently"
        assert bool(f) == (i != gap)  # every batch answered, except the one held for a gap
    assert (tmp_path / "a.img").read_bytes() == (tmp_path / "b.img").read_bytes()


# Names LogicalUnit.execute / ScsiTarget.execute use today, all mirrored (or irrelevant to a
# plain READ/WRITE) in pytgt.scsi.fastpath. A new preflight check shows up as a new name.
_LU_EXECUTE_NAMES = {
    "Asc", "CheckCondition", "DATA_PROTECT", "IndexError", "RESERVATION_CONFLICT",
    "ScsiResult", "SenseKey", "Status", "StoreIOError", "TASK_ABORTED", "UNIT_ATTENTION",
    "WRITE_PROTECTED", "_ORDERED", "_admitted", "_not_ready", "aborted", "active", "alua",
    "attribute", "available", "barrier", "cdb", "check", "check_condition", "commands",
    "conflicts", "drained", "error", "get", "handler", "invalid_field", "invalid_opcode",
    "key", "len", "loaded", "lookup", "medium", "nexus", "online", "opcode", "pr",
    "pr_access", "readonly", "reservation", "restricted", "run", "sanitizing",
    "service_action", "skip_ua", "store_error", "struct", "swp", "task_set", "type", "ua",
    "ua_take", "wake", "writes"}
_TARGET_EXECUTE_NAMES = {
    "OperationCode", "REPORT_LUNS", "_by_field", "_no_lu", "_report_luns", "bytes", "cdb",
    "execute", "get", "len", "ljust", "lu", "lu_stats", "lun", "record"}


def test_fast_path_knows_every_preflight_check() -> None:
    from pytgt.scsi.lu import LogicalUnit
    from pytgt.scsi.target import ScsiTarget

    for fn, known in ((LogicalUnit.execute, _LU_EXECUTE_NAMES),
                      (ScsiTarget.execute, _TARGET_EXECUTE_NAMES)):
        new = set(fn.__code__.co_names) - known
        assert not new, (f"{fn.__qualname__} now uses {sorted(new)}: mirror the new check in "
                         "pytgt.scsi.fastpath (_plain_lu, read, write), then list it here")
