"""A target with LUN 0 (controller) and LUN 1 (disk on a MemoryStore), driven synchronously."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pytgt.scsi import ItNexus, ScsiResult, ScsiTarget, ScsiTask, create_lu, tmf
from pytgt.scsi.lu import LogicalUnit
from pytgt.scsi.sense import decode_sense
from pytgt.stores.memory import MemoryStore

BLOCKS = 2048
BS = 512
RAW_LUN1 = 1 << 48  # the 8-byte LUN field for LUN 1, peripheral addressing


@dataclass
class Harness:
    """Runs CDBs against a target from one nexus; UAs from login already consumed."""

    target: ScsiTarget
    lu: LogicalUnit
    store: MemoryStore
    nexus: ItNexus
    loop: asyncio.AbstractEventLoop

    def run(self, cdb: bytes | list[int], data: bytes = b"", lun: int = RAW_LUN1,
            nexus: ItNexus | None = None) -> ScsiResult:
        task = ScsiTask(nexus or self.nexus, lun, bytes(cdb), data_out=data)
        return self.loop.run_until_complete(self.target.execute(task))

    def sense(self, cdb: bytes | list[int], data: bytes = b"", lun: int = RAW_LUN1,
              nexus: ItNexus | None = None) -> tuple[int, int, int] | None:
        r = self.run(cdb, data, lun, nexus)
        return decode_sense(r.sense) if r.sense else None

    @staticmethod
    def sense_of(result: ScsiResult) -> tuple[int, int, int] | None:
        return decode_sense(result.sense) if result.sense else None

    def tmf(self, function: tmf.Function, lun: int = RAW_LUN1,
            nexus: ItNexus | None = None) -> tmf.ServiceResponse:
        """Run a task management function to its answer."""
        out: list[tmf.ServiceResponse] = []
        self.loop.run_until_complete(
            tmf.execute(self.target, function, nexus or self.nexus, lun, out.append))
        return out[0]

    def new_nexus(self, key: str) -> ItNexus:
        name = f"iqn.2024-01.test:{key}"
        n = ItNexus(key, name, initiator_port=f"{name},i,0x23d000000001")
        self.target.add_nexus(n)
        for lun in list(self.target.luns):
            while self.run([0, 0, 0, 0, 0, 0], lun=lun, nexus=n).sense:
                pass
        return n


def make_harness(loop: asyncio.AbstractEventLoop) -> Harness:
    """The target of this module's docstring, run on ``loop`` (the caller closes it)."""
    target = ScsiTarget("iqn.2024-01.test:target", tid=1)
    store = MemoryStore(BLOCKS * BS)
    lu = create_lu("disk", 1, store, tid=1, path="mem", bstype="memory")
    target.add_lu(lu)
    harness = Harness(target, lu, store, ItNexus("n1", "iqn.2024-01.test:n1"), loop)
    harness.nexus = harness.new_nexus("n1")
    return harness


@pytest.fixture
def h() -> Iterator[Harness]:
    loop = asyncio.new_event_loop()
    yield make_harness(loop)
    loop.close()


def cdb10(op: int, lba: int, n: int, flags: int = 0) -> bytes:
    return bytes([op, flags]) + lba.to_bytes(4, "big") + b"\0" + n.to_bytes(2, "big") + b"\0"


def cdb12(op: int, lba: int, n: int, flags: int = 0) -> bytes:
    return bytes([op, flags]) + lba.to_bytes(4, "big") + n.to_bytes(4, "big") + b"\0\0"


def cdb16(op: int, lba: int, n: int, flags: int = 0) -> bytes:
    return bytes([op, flags]) + lba.to_bytes(8, "big") + n.to_bytes(4, "big") + b"\0\0"


def cdb6(op: int, lba: int, n: int) -> bytes:
    return bytes([op, (lba >> 16) & 0x1F, (lba >> 8) & 0xFF, lba & 0xFF, n & 0xFF, 0])
