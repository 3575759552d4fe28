"""SANITIZE (SBC-4 5.30, 4.11): overwrite, block erase, crypto erase, exit failure mode.

A sanitize runs as a background operation owned by the logical unit, not by the
command: task management (ABORT TASK, LOGICAL UNIT RESET, target resets) and the loss
of the I_T nexus that started it do not stop it (SBC-4 4.11.3). While it runs, every
command except INQUIRY, REPORT LUNS and REQUEST SENSE ends with NOT READY, LOGICAL UNIT
NOT READY, SANITIZE IN PROGRESS; REQUEST SENSE reports that sense with the progress
indication. If it fails, the LU enters failure mode: commands that access the medium
end with MEDIUM ERROR, SANITIZE COMMAND FAILED until a sanitize completes or, when the
failed one had AUSE set, EXIT FAILURE MODE is sent (SBC-4 4.11.4).

BLOCK ERASE and CRYPTO ERASE deallocate every block (reads then return zeros, LBPRZ);
they are offered only on thin-provisioned LUs (SBC-4 requires LBPME for block erase,
and the block device characteristics VPD page reports WABEREQ/WACEREQ accordingly).
OVERWRITE writes the initialization pattern over the whole LU at a bounded rate
(``OVERWRITE_RATE``) so that it does not starve other LUs sharing the backing device.
"""

from __future__ import annotations

import asyncio
import enum
import struct
import time
from typing import TYPE_CHECKING

from pytgt.scsi.cdb import Command
from pytgt.scsi.sense import (
    Asc,
    CheckCondition,
    SenseKey,
    build_sense,
    invalid_field,
    invalid_param,
)
from pytgt.scsi.task import ScsiResult, ScsiTask, Status
from pytgt.stores.base import StoreCapability, StoreIOError

if TYPE_CHECKING:
    from pytgt.scsi.lu import LogicalUnit

SANITIZE = 0x48

SANITIZE_IN_PROGRESS = (0x04, 0x1B)  # LOGICAL UNIT NOT READY, SANITIZE IN PROGRESS
SANITIZE_COMMAND_FAILED = (0x31, 0x03)

OVERWRITE_RATE = 16 << 20  # bytes per second written by OVERWRITE
CHUNK = 1 << 20  # bytes per store write

# Commands a sanitize in progress lets through (SBC-4 4.11.2).
ALLOWED_WHILE_SANITIZING = frozenset({0x03, 0x12, 0xA0})  # REQUEST SENSE, INQUIRY, REPORT LUNS

_IMMED, _RESERVED_1, _AUSE = 0x80, 0x40, 0x20
_PARAM_LEN = struct.Struct(">H")


class SanitizeAction(enum.IntEnum):
    """SANITIZE service actions (SBC-4 table 80)."""

    OVERWRITE = 0x01
    BLOCK_ERASE = 0x02
    CRYPTO_ERASE = 0x03
    EXIT_FAILURE_MODE = 0x1F


class SanitizeOperation:
    """One sanitize of a LU: running in the background, then done or failed."""

    def __init__(self, lu: LogicalUnit, action: SanitizeAction, ause: bool,
                 pattern: bytes = b"", passes: int = 1, invert: bool = False) -> None:
        self.lu = lu
        self.action = action
        self.ause = ause
        self.block = _fill(pattern, lu.block_size) if pattern else b""
        self.passes = passes
        self.invert = invert
        self.total = max(1, lu.size * (passes if pattern else 1))
        self.done = 0
        self.failed = False
        self.task: asyncio.Future[None] | None = None

    @property
    def running(self) -> bool:
        return not self.failed

    @property
    def progress(self) -> int:
        """PROGRESS INDICATION (SPC-4 4.5.2.4.4): fraction done, in 1/65536 units."""
        return min(0xFFFF, self.done * 0x10000 // self.total)

    def sense(self, descriptor: bool) -> bytes:
        """REQUEST SENSE data: in progress with its PROGRESS INDICATION, or failed."""
        if not self.running:
            return build_sense(SenseKey.MEDIUM_ERROR, *SANITIZE_COMMAND_FAILED,
                               descriptor=descriptor)
        sks = bytes((0x80,)) + struct.pack(">H", self.progress)  # SKSV, progress
        return build_sense(SenseKey.NOT_READY, *SANITIZE_IN_PROGRESS, descriptor=descriptor,
                           sks=sks)

    def check(self, row: Command) -> None:
        """Preflight for another command: raises while running, or in failure mode."""
        if row.opcode in ALLOWED_WHILE_SANITIZING:
            return
        if self.running:
            raise CheckCondition(SenseKey.NOT_READY, SANITIZE_IN_PROGRESS)
        if row.medium and row.opcode != SANITIZE:
            raise CheckCondition(SenseKey.MEDIUM_ERROR, SANITIZE_COMMAND_FAILED)

    def start(self) -> asyncio.Future[None]:
        self.lu.sanitizing = self
        self.task = asyncio.ensure_future(self._run())
        return self.task

    async def _run(self) -> None:
        try:
            if self.action == SanitizeAction.OVERWRITE:
                await self._overwrite()
            else:
                await self._erase()
            store = self.lu.store
            if store is not None:
                await store.flush()
        except (StoreIOError, OSError):
            self.failed = True
            raise
        finally:
            if not self.failed and self.lu.sanitizing is self:
                self.lu.sanitizing = None

    async def _overwrite(self) -> None:
        store = self.lu.store
        assert store is not None
        size = store.size - store.size % self.lu.block_size
        started = time.monotonic()
        for n in range(self.passes):
            block = _inverted(self.block) if self.invert and n % 2 else self.block
            chunk = block * max(1, CHUNK // len(block))
            for offset in range(0, size, len(chunk)):
                piece = chunk[:min(len(chunk), size - offset)]
                await store.write(offset, piece)
                self.done += len(piece)
                await _pace(started, self.done)

    async def _erase(self) -> None:
        store = self.lu.store
        assert store is not None
        size = store.size - store.size % self.lu.block_size
        if StoreCapability.UNMAP in store.capabilities:
            await store.unmap(0, size)
            self.done = size
            return
        zeros = bytes(CHUNK)
        for offset in range(0, size, CHUNK):
            await store.write(offset, zeros[:min(CHUNK, size - offset)])
            self.done += min(CHUNK, size - offset)


async def _pace(started: float, written: int) -> None:
    """Sleep so that ``written`` bytes take at least ``written / OVERWRITE_RATE`` seconds."""
    if OVERWRITE_RATE <= 0:
        await asyncio.sleep(0)
        return
    ahead = written / OVERWRITE_RATE - (time.monotonic() - started)
    await asyncio.sleep(max(0.0, ahead))


def _fill(pattern: bytes, block_size: int) -> bytes:
    """One logical block of the initialization pattern, repeated from its start."""
    return (pattern * -(-block_size // len(pattern)))[:block_size]


def _inverted(block: bytes) -> bytes:
    return bytes(b ^ 0xFF for b in block)


def erase_supported(lu: LogicalUnit) -> bool:
    """BLOCK ERASE and CRYPTO ERASE need logical block provisioning (LBPME, LBPRZ)."""
    return lu.thin_provisioning


# The command (SBC-4 5.30).
def _check_cdb(cdb: bytes, length: int, action: SanitizeAction) -> None:
    if cdb[1] & _RESERVED_1:
        raise invalid_field(1, 6)
    for i in range(2, 7):
        if cdb[i]:
            raise invalid_field(i)
    if action == SanitizeAction.OVERWRITE:
        if length <= 4:
            raise invalid_field(7)
    elif length:
        raise invalid_field(7)  # only OVERWRITE has a parameter list


def _overwrite_params(lu: LogicalUnit, task: ScsiTask, length: int) -> tuple[bytes, int, bool]:
    """(pattern, passes, invert) from the OVERWRITE parameter list (SBC-4 5.30.3)."""
    if length > lu.block_size + 4:
        raise invalid_field(7)
    data = bytes(memoryview(task.data_out).cast("B")[:length])
    if len(data) < length:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.PARAMETER_LIST_LENGTH_ERROR)
    invert, test, passes = bool(data[0] & 0x80), (data[0] >> 5) & 0x03, data[0] & 0x1F
    if test:
        raise invalid_param(0, 6)
    if not passes:
        raise invalid_param(0, 4)
    plen = _PARAM_LEN.unpack_from(data, 2)[0]
    if not 0 < plen <= min(lu.block_size, length - 4):
        raise invalid_param(2)
    return data[4:4 + plen], passes, invert


async def sanitize(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    """SANITIZE: check the CDB and parameters, start the operation, wait unless IMMED."""
    cdb = task.cdb
    action = SanitizeAction(cdb[1] & 0x1F)  # the command table only routes known ones
    length = _PARAM_LEN.unpack_from(cdb, 7)[0]
    _check_cdb(cdb, length, action)
    ause = bool(cdb[1] & _AUSE)
    current = lu.sanitizing
    if action == SanitizeAction.EXIT_FAILURE_MODE:
        if current is not None and current.failed:
            if not current.ause:
                raise invalid_field(1, 4)  # failed without AUSE: only a new sanitize clears it
            lu.sanitizing = None
        return ScsiResult(Status.GOOD)
    if action == SanitizeAction.OVERWRITE:
        pattern, passes, invert = _overwrite_params(lu, task, length)
        op = SanitizeOperation(lu, action, ause, pattern, passes, invert)
    else:
        op = SanitizeOperation(lu, action, ause)
    running = op.start()
    running.add_done_callback(_consume)
    if cdb[1] & _IMMED:
        return ScsiResult(Status.GOOD)
    try:
        await asyncio.shield(running)
    except (StoreIOError, OSError) as exc:
        raise CheckCondition(SenseKey.MEDIUM_ERROR, SANITIZE_COMMAND_FAILED) from exc
    return ScsiResult(Status.GOOD)


def _consume(fut: asyncio.Future[None]) -> None:
    """An IMMED sanitize's failure is reported through failure mode, not raised."""
    if not fut.cancelled():
        fut.exception()


def sanitize_rows() -> list[Command]:
    """The SANITIZE rows of the disk command table, one per service action."""
    def row(sa: SanitizeAction, name: str, available: bool = False) -> Command:
        return Command(SANITIZE, f"SANITIZE {name}", sanitize, _param_len,
                       service_action=sa, writes=True,
                       available=erase_supported if available else None)

    return [
        row(SanitizeAction.OVERWRITE, "OVERWRITE"),
        row(SanitizeAction.BLOCK_ERASE, "BLOCK ERASE", True),
        row(SanitizeAction.CRYPTO_ERASE, "CRYPTO ERASE", True),
        row(SanitizeAction.EXIT_FAILURE_MODE, "EXIT FAILURE MODE"),
    ]


def _param_len(cdb: bytes, bs: int) -> int:
    return int(_PARAM_LEN.unpack_from(cdb, 7)[0])
