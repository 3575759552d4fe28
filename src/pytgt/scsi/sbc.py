"""Block commands (SBC-3) for the "disk" device type, on top of the SPC-4 table.

READ/WRITE(6/10/12/16) are the fast path: one precompiled ``struct`` unpack of the
CDB, a range check, then the store; the store's buffer goes straight into the result
and ``task.data_out`` straight to the store, without copies.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from pytgt.scsi import atomic, defects, fastpath, sanitize, spc, vpd, xcopy
from pytgt.scsi import cdb as c
from pytgt.scsi.cdb import Command, OperationCode, ServiceAction
from pytgt.scsi.pr import PR_ALLOWED, PR_READ
from pytgt.scsi.sense import (
    Asc,
    CheckCondition,
    SenseKey,
    invalid_field,
    invalid_param,
    lba_out_of_range,
)
from pytgt.scsi.task import ScsiResult, ScsiTask, Status
from pytgt.stores.base import (
    BackingStore,
    SupportsAllocationStatus,
    SupportsCompareAndWrite,
    write_durable,
)

if TYPE_CHECKING:
    from pytgt.scsi.lu import LogicalUnit

_RW6 = struct.Struct(">xBHB")  # lba high bits, lba low, transfer length
_RW10 = struct.Struct(">xBIxH")  # flags, lba, transfer length
_RW12 = struct.Struct(">xBII")
_RW16 = struct.Struct(">xBQI")
_CAP10 = struct.Struct(">II")
_CAP16 = struct.Struct(">QIBBH16x")
_FUA = 0x08
_PROTECT = 0xE0
_CHUNK = 1 << 20


def _store(lu: LogicalUnit) -> BackingStore:
    store = lu.store
    if store is None:  # a disk always has one; keeps mypy honest
        raise CheckCondition(SenseKey.NOT_READY, Asc.MEDIUM_NOT_PRESENT)
    return store


def _check_range(lu: LogicalUnit, store: BackingStore, lba: int, n: int) -> None:
    if lba + n > store.size // lu.block_size:
        raise lba_out_of_range()


# READ (SBC-3 5.8-5.11).
async def _read(lu: LogicalUnit, flags: int, lba: int, n: int) -> ScsiResult:
    if flags & _PROTECT:
        raise invalid_field(1, 7)  # RDPROTECT: no protection information
    store = lu.store
    if store is None:
        store = _store(lu)
    bs = lu.block_size
    if lba + n > store.size // bs:
        raise lba_out_of_range()
    if not n:
        return ScsiResult(Status.GOOD)
    return ScsiResult(Status.GOOD, await store.read(lba * bs, n * bs))


async def read_6(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    hi, lo, n = _RW6.unpack_from(task.cdb)
    return await _read(lu, 0, (hi & 0x1F) << 16 | lo, n or 256)


async def read_10(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    # The hot path: _read inlined (one coroutine frame less per command).
    flags, lba, n = _RW10.unpack_from(task.cdb)
    store = lu.store
    if flags & _PROTECT or store is None:
        return await _read(lu, flags, lba, n)
    bs = lu.block_size
    if lba + n > store.size // bs:
        raise lba_out_of_range()
    if not n:
        return ScsiResult(Status.GOOD)
    return ScsiResult(Status.GOOD, await store.read(lba * bs, n * bs))


async def read_12(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    flags, lba, n = _RW12.unpack_from(task.cdb)
    return await _read(lu, flags, lba, n)


async def read_16(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    flags, lba, n = _RW16.unpack_from(task.cdb)
    store = lu.store
    if flags & _PROTECT or store is None:
        return await _read(lu, flags, lba, n)
    bs = lu.block_size
    if lba + n > store.size // bs:
        raise lba_out_of_range()
    if not n:
        return ScsiResult(Status.GOOD)
    return ScsiResult(Status.GOOD, await store.read(lba * bs, n * bs))


# WRITE (SBC-3 5.32-5.35).
def _data_out(task: ScsiTask, length: int, bs: int) -> bytes | bytearray | memoryview:
    """The Data-Out to write: at most ``length``; a short transfer is cut to whole blocks."""
    data = task.data_out
    have = len(data)
    if have == length:
        return data
    if have > length:
        return memoryview(data)[:length]
    return memoryview(data)[:have - have % bs]


async def _write(lu: LogicalUnit, task: ScsiTask, flags: int, lba: int, n: int) -> ScsiResult:
    if flags & _PROTECT:
        raise invalid_field(1, 7)  # WRPROTECT
    store = _store(lu)
    bs = lu.block_size
    if lba + n > store.size // bs:
        raise lba_out_of_range()
    if not n:
        return ScsiResult(Status.GOOD)
    data = _data_out(task, n * bs, bs)
    if len(data):
        if flags & _FUA or not lu.mode.wce:
            await write_durable(store, lba * bs, data)
        else:
            await store.write(lba * bs, data)
    return ScsiResult(Status.GOOD)


async def write_6(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    hi, lo, n = _RW6.unpack_from(task.cdb)
    return await _write(lu, task, 0, (hi & 0x1F) << 16 | lo, n or 256)


async def _write_full(lu: LogicalUnit, task: ScsiTask, flags: int, lba: int,
                      n: int) -> ScsiResult:
    """_write for the common case of a full-length Data-Out, with fewer checks."""
    store, data, bs = lu.store, task.data_out, lu.block_size
    if flags & _PROTECT or store is None or not n or len(data) != n * bs:
        return await _write(lu, task, flags, lba, n)
    if lba + n > store.size // bs:
        raise lba_out_of_range()
    if flags & _FUA or not lu.mode.wce:
        await write_durable(store, lba * bs, data)  # one store round trip for FUA
    else:
        await store.write(lba * bs, data)
    return ScsiResult(Status.GOOD)


async def write_10(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    flags, lba, n = _RW10.unpack_from(task.cdb)
    return await _write_full(lu, task, flags, lba, n)


async def write_12(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    flags, lba, n = _RW12.unpack_from(task.cdb)
    return await _write(lu, task, flags, lba, n)


async def write_16(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    flags, lba, n = _RW16.unpack_from(task.cdb)
    return await _write_full(lu, task, flags, lba, n)


# WRITE AND VERIFY (SBC-3 5.36-5.38): the write is verified by the store's own checks.
async def write_and_verify_10(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    flags, lba, n = _RW10.unpack_from(task.cdb)
    return await _write(lu, task, flags & ~_FUA, lba, n)


async def write_and_verify_12(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    flags, lba, n = _RW12.unpack_from(task.cdb)
    return await _write(lu, task, flags & ~_FUA, lba, n)


async def write_and_verify_16(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    flags, lba, n = _RW16.unpack_from(task.cdb)
    return await _write(lu, task, flags & ~_FUA, lba, n)


# VERIFY (SBC-3 5.29-5.31).
def _first_difference(a: bytes | bytearray | memoryview,
                      b: bytes | bytearray | memoryview) -> int | None:
    """Offset of the first differing byte, or None if equal (over the shorter length)."""
    n = min(len(a), len(b))
    va, vb = memoryview(a)[:n], memoryview(b)[:n]
    if va == vb:
        return None
    lo, hi = 0, n
    while hi - lo > 64:  # bisect on slices compared in C
        mid = (lo + hi) // 2
        if va[lo:mid] != vb[lo:mid]:
            hi = mid
        else:
            lo = mid
    return next(i for i in range(lo, hi) if va[i] != vb[i])


def miscompare(offset: int) -> CheckCondition:
    return CheckCondition(SenseKey.MISCOMPARE, Asc.MISCOMPARE_DURING_VERIFY_OPERATION,
                          information=offset)


async def _verify(lu: LogicalUnit, task: ScsiTask, flags: int, lba: int, n: int) -> ScsiResult:
    if flags & _PROTECT:
        raise invalid_field(1, 7)  # VRPROTECT
    bytchk = (flags >> 1) & 3
    if bytchk == 2:
        raise invalid_field(1, 2)
    store = _store(lu)
    _check_range(lu, store, lba, n)
    if not n or not bytchk:
        return ScsiResult(Status.GOOD)
    bs = lu.block_size
    medium = await store.read(lba * bs, n * bs)
    expected = task.data_out
    if bytchk == 3:  # one block of Data-Out compared with every block
        expected = bytes(memoryview(expected)[:bs]) * n
    offset = _first_difference(medium, expected)
    if offset is not None:
        raise miscompare(offset)
    return ScsiResult(Status.GOOD)


async def verify_10(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    flags, lba, n = _RW10.unpack_from(task.cdb)
    return await _verify(lu, task, flags, lba, n)


async def verify_12(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    flags, lba, n = _RW12.unpack_from(task.cdb)
    return await _verify(lu, task, flags, lba, n)


async def verify_16(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    flags, lba, n = _RW16.unpack_from(task.cdb)
    return await _verify(lu, task, flags, lba, n)


# COMPARE AND WRITE (SBC-3 5.2).
async def compare_and_write(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    flags, lba, n = cdb[1], struct.unpack_from(">Q", cdb, 2)[0], cdb[13]
    if flags & _PROTECT:
        raise invalid_field(1, 7)
    if n > vpd.MAX_COMPARE_AND_WRITE or not n and (task.expected_out or len(task.data_out)):
        # A zero NUMBER OF LOGICAL BLOCKS with Data-Out sent is how a 256-block request
        # wraps around in the one-byte field: refuse it rather than silently do nothing.
        raise invalid_field(13)
    store = _store(lu)
    _check_range(lu, store, lba, n)
    if not n:
        return ScsiResult(Status.GOOD)
    bs = lu.block_size
    data = memoryview(task.data_out)
    if len(data) < 2 * n * bs:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.PARAMETER_LIST_LENGTH_ERROR)
    async with lu.caw_lock:
        offset = await _compare_and_write(store, lba * bs, data[:n * bs],
                                          data[n * bs:2 * n * bs])
        if offset is not None:
            raise miscompare(offset)
        if flags & _FUA or not lu.mode.wce:
            await store.flush()
    return ScsiResult(Status.GOOD)


async def _compare_and_write(store: BackingStore, offset: int, compare: memoryview,
                             data: memoryview) -> int | None:
    """Compare then write; the store's own atomic version when it has one (a store shared
    by several gateways). The offset of the first miscompare, or None once written."""
    if isinstance(store, SupportsCompareAndWrite):
        return await store.compare_and_write(offset, compare, data)
    diff = _first_difference(await store.read(offset, len(compare)), compare)
    if diff is None:
        await store.write(offset, data)
    return diff


# ORWRITE (SBC-3 5.12): OR the Data-Out into the medium, atomically per command.
async def orwrite_16(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    flags, lba, n = _RW16.unpack_from(task.cdb)
    if flags & _PROTECT:
        raise invalid_field(1, 7)  # ORPROTECT
    store = _store(lu)
    _check_range(lu, store, lba, n)
    bs = lu.block_size
    data = _data_out(task, n * bs, bs)
    if not n or not len(data):
        return ScsiResult(Status.GOOD)
    length = len(data)
    async with lu.caw_lock:
        old = await store.read(lba * bs, length)
        merged = (int.from_bytes(old, "little") | int.from_bytes(data, "little"))
        await store.write(lba * bs, merged.to_bytes(length, "little"))
        if flags & _FUA or not lu.mode.wce:
            await store.flush()
    return ScsiResult(Status.GOOD)


# WRITE SAME (SBC-3 5.41, 5.42) and UNMAP (5.28).
async def _write_same(lu: LogicalUnit, task: ScsiTask, flags: int, lba: int, n: int,
                      count_field: int) -> ScsiResult:
    if flags & _PROTECT:
        raise invalid_field(1, 7)
    if flags & 0x10:
        raise invalid_field(1, 4)  # ANCHOR: ANC_SUP is 0
    unmap, ndob = bool(flags & 0x08), bool(flags & 0x01)
    if unmap and not lu.thin_provisioning:
        raise invalid_field(1, 3)
    if n == 0 or n > vpd.MAX_WRITE_SAME_BLOCKS:
        raise invalid_field(count_field)  # WSNZ=1 in the block limits page
    store = _store(lu)
    _check_range(lu, store, lba, n)
    bs = lu.block_size
    if ndob:
        block: bytes = bytes(bs)
    else:
        block = bytes(memoryview(task.data_out)[:bs])
        if len(block) < bs:
            raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.PARAMETER_LIST_LENGTH_ERROR)
    if unmap and not any(block):
        await store.unmap(lba * bs, n * bs)
        return ScsiResult(Status.GOOD)
    per = max(1, min(n, _CHUNK // bs))
    chunk = block * per
    offset, left = lba * bs, n
    while left:
        k = min(left, per)
        await store.write(offset, chunk if k == per else chunk[:k * bs])
        offset, left = offset + k * bs, left - k
    if not lu.mode.wce:
        await store.flush()
    return ScsiResult(Status.GOOD)


async def write_same_10(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    flags, lba, n = _RW10.unpack_from(task.cdb)
    return await _write_same(lu, task, flags & ~0x01, lba, n, 7)


async def write_same_16(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    flags, lba, n = _RW16.unpack_from(task.cdb)
    return await _write_same(lu, task, flags, lba, n, 10)


def _thin(lu: LogicalUnit) -> bool:
    """UNMAP exists only on thin-provisioned LUs (LBPME; RSOC leaves it out otherwise)."""
    return lu.thin_provisioning


async def unmap(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    if not lu.thin_provisioning:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_COMMAND_OPERATION_CODE,
                             field=0)
    if task.cdb[1] & 0x01:
        raise invalid_field(1, 0)  # ANCHOR
    length = struct.unpack_from(">H", task.cdb, 7)[0]
    data = spc.param_list(task, length)
    if length == 0:
        return ScsiResult(Status.GOOD)
    if len(data) < 8:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.PARAMETER_LIST_LENGTH_ERROR)
    bd_len = struct.unpack_from(">H", data, 2)[0]
    descs = data[8:8 + bd_len]
    if len(descs) // 16 > vpd.MAX_UNMAP_DESCRIPTORS:
        raise invalid_param(2)
    store = _store(lu)
    ranges = []
    for pos in range(0, len(descs) - len(descs) % 16, 16):
        lba, count = struct.unpack_from(">QI", descs, pos)
        _check_range(lu, store, lba, count)
        ranges.append((lba, count))
    bs = lu.block_size
    for lba, count in ranges:
        if count:
            await store.unmap(lba * bs, count * bs)
    return ScsiResult(Status.GOOD)


# SYNCHRONIZE CACHE and PRE-FETCH (SBC-3 5.22, 5.23, 5.6, 5.7).
async def _sync(lu: LogicalUnit, lba: int, n: int) -> ScsiResult:
    store = _store(lu)
    _check_range(lu, store, lba, n)
    await store.flush()
    return ScsiResult(Status.GOOD)


async def synchronize_cache_10(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    _, lba, n = _RW10.unpack_from(task.cdb)
    return await _sync(lu, lba, n)


async def synchronize_cache_16(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    _, lba, n = _RW16.unpack_from(task.cdb)
    return await _sync(lu, lba, n)


async def pre_fetch_10(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    _, lba, n = _RW10.unpack_from(task.cdb)
    _check_range(lu, _store(lu), lba, n)
    return ScsiResult(Status.GOOD)


async def pre_fetch_16(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    _, lba, n = _RW16.unpack_from(task.cdb)
    _check_range(lu, _store(lu), lba, n)
    return ScsiResult(Status.GOOD)


# READ CAPACITY (SBC-3 5.15, 5.16) and GET LBA STATUS (5.5).
async def read_capacity_10(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    if not cdb[8] & 0x01 and struct.unpack_from(">I", cdb, 2)[0]:
        raise invalid_field(2)  # LOGICAL BLOCK ADDRESS without PMI
    last = lu.num_blocks - 1
    return ScsiResult(Status.GOOD, _CAP10.pack(min(last, 0xFFFFFFFF), lu.block_size))


async def read_capacity_16(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    alloc = struct.unpack_from(">I", task.cdb, 10)[0]
    lbp = 0xC000 if lu.thin_provisioning else 0  # LBPME, LBPRZ
    data = _CAP16.pack(lu.num_blocks - 1, lu.block_size, 0, 0, lbp)
    return spc.data_in(data, alloc)


async def get_lba_status(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    lba, alloc = struct.unpack_from(">QI", task.cdb, 2)
    blocks, bs = lu.num_blocks, lu.block_size
    if lba >= blocks:
        raise lba_out_of_range()
    count, status = min(blocks - lba, 0xFFFFFFFF), 0  # mapped
    store = _store(lu)
    if lu.thin_provisioning and isinstance(store, SupportsAllocationStatus):
        allocated, length = await store.allocation(lba * bs, count * bs)
        count = max(1, -(-length // bs)) if allocated else max(1, length // bs)
        status = 0 if allocated else 1  # 1: deallocated
    desc = struct.pack(">QIB3x", lba, count, status)
    return spc.data_in(struct.pack(">I4x", len(desc) + 4) + desc, alloc)


# START STOP UNIT (SBC-3 5.25), PREVENT ALLOW MEDIUM REMOVAL (SPC-4 6.13).
async def start_stop_unit(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    b4 = task.cdb[4]
    if b4 >> 4:  # POWER CONDITION: nothing to do, power is always active
        return ScsiResult(Status.GOOD)
    if not b4 & 0x02:  # no LOEJ: START/STOP of a virtual disk is a no-op
        return ScsiResult(Status.GOOD)
    if not lu.removable:
        raise invalid_field(4, 1)
    if lu.prevent_removal:  # neither eject nor load while a PREVENT is in effect
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.MEDIUM_REMOVAL_PREVENTED)
    lu.loaded = bool(b4 & 0x01)
    return ScsiResult(Status.GOOD)


def _rows() -> list[Command]:
    O, W, R, A = OperationCode, True, PR_READ, PR_ALLOWED  # noqa: N806, E741
    return [
        *spc.SPC_COMMANDS,
        Command(O.READ_6, "READ(6)", read_6, pr_access=R),
        Command(O.READ_10, "READ(10)", read_10, pr_access=R, nowait=fastpath.read),
        Command(O.READ_12, "READ(12)", read_12, pr_access=R),
        Command(O.READ_16, "READ(16)", read_16, pr_access=R, nowait=fastpath.read),
        Command(O.WRITE_6, "WRITE(6)", write_6, c.blocks_6, writes=W),
        Command(O.WRITE_10, "WRITE(10)", write_10, c.blocks_10, writes=W,
                nowait=fastpath.write),
        Command(O.WRITE_12, "WRITE(12)", write_12, c.blocks_12, writes=W),
        Command(O.WRITE_16, "WRITE(16)", write_16, c.blocks_16, writes=W,
                nowait=fastpath.write),
        Command(O.WRITE_AND_VERIFY_10, "WRITE AND VERIFY(10)", write_and_verify_10,
                c.blocks_10, writes=W),
        Command(O.WRITE_AND_VERIFY_12, "WRITE AND VERIFY(12)", write_and_verify_12,
                c.blocks_12, writes=W),
        Command(O.WRITE_AND_VERIFY_16, "WRITE AND VERIFY(16)", write_and_verify_16,
                c.blocks_16, writes=W),
        Command(O.ORWRITE_16, "ORWRITE(16)", orwrite_16, c.blocks_16, writes=W),
        Command(O.VERIFY_10, "VERIFY(10)", verify_10, c.verify_10_data_out, pr_access=R),
        Command(O.VERIFY_12, "VERIFY(12)", verify_12, c.verify_12_data_out, pr_access=R),
        Command(O.VERIFY_16, "VERIFY(16)", verify_16, c.verify_16_data_out, pr_access=R),
        Command(O.COMPARE_AND_WRITE, "COMPARE AND WRITE", compare_and_write,
                c.compare_and_write_data_out, writes=W),
        Command(O.WRITE_SAME_10, "WRITE SAME(10)", write_same_10, c.write_same_10_data_out,
                writes=W),
        Command(O.WRITE_SAME_16, "WRITE SAME(16)", write_same_16, c.write_same_16_data_out,
                writes=W),
        Command(O.UNMAP, "UNMAP", unmap, c.param_len_7, writes=W, available=_thin),
        Command(O.SYNCHRONIZE_CACHE_10, "SYNCHRONIZE CACHE(10)", synchronize_cache_10),
        Command(O.SYNCHRONIZE_CACHE_16, "SYNCHRONIZE CACHE(16)", synchronize_cache_16),
        Command(O.PRE_FETCH_10, "PRE-FETCH(10)", pre_fetch_10, pr_access=R),
        Command(O.PRE_FETCH_16, "PRE-FETCH(16)", pre_fetch_16, pr_access=R),
        Command(O.READ_CAPACITY_10, "READ CAPACITY(10)", read_capacity_10, conflicts=False,
                pr_access=A),
        Command(O.SERVICE_ACTION_IN_16, "READ CAPACITY(16)", read_capacity_16,
                service_action=ServiceAction.READ_CAPACITY_16, conflicts=False, pr_access=A),
        Command(O.SERVICE_ACTION_IN_16, "GET LBA STATUS", get_lba_status,
                service_action=ServiceAction.GET_LBA_STATUS, pr_access=R),
        Command(O.START_STOP_UNIT, "START STOP UNIT", start_stop_unit, medium=False),
        Command(O.PREVENT_ALLOW_MEDIUM_REMOVAL, "PREVENT ALLOW MEDIUM REMOVAL",
                spc.prevent_allow_medium_removal, medium=False, pr_access=R),
        *xcopy.COMMANDS,
        *sanitize.sanitize_rows(),
        *atomic.COMMANDS,
        *defects.COMMANDS,
    ]


DISK_COMMANDS: list[Command] = _rows()
