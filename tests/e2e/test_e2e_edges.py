"""Residuals, unknown LUNs, resets, immediate commands and digest errors end to end."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from pytgt.initiator import CommandRejected, ConnectionLost
from pytgt.initiator.scsi import cdb_read16, cdb_write16
from pytgt.iscsi.constants import TmfFunction, TmfResponse

from .util import clear_unit_attentions, login, run, target


def test_read_residuals(tmp_path: Path) -> None:
    async def body() -> None:
        async with target(tmp_path, bstype="memory") as (d, port), await login(port) as s:
            await clear_unit_attentions(s)
            await s.write16(1, 0, bytes(range(256)) * 4)
            under = await s.execute(1, cdb_read16(0, 1), read_length=1024)
            assert under.ok and under.underflow and under.residual == 512
            assert under.data == bytes(range(256)) * 2
            over = await s.execute(1, cdb_read16(0, 2), read_length=512)
            assert over.ok and over.overflow and over.residual == 512
            assert over.data == bytes(range(256)) * 2
    run(body)


def test_write_residual_underflow(tmp_path: Path) -> None:
    async def body() -> None:
        async with target(tmp_path, bstype="memory") as (d, port), await login(port) as s:
            await clear_unit_attentions(s)
            r = await s.execute(1, cdb_write16(0, 1), data_out=os.urandom(1024))
            assert r.ok and r.underflow and r.residual == 512
    run(body)


def test_unknown_lun_is_illegal_request(tmp_path: Path) -> None:
    async def body() -> None:
        async with target(tmp_path) as (d, port), await login(port) as s:
            r = await s.execute(7, cdb_read16(0, 1), read_length=512)
            assert (r.status, r.sense_key, r.asc) == (2, 5, 0x25)  # LU NOT SUPPORTED
            inq = await s.inquiry(7)
            assert inq.peripheral_qualifier == 3 and inq.peripheral_device_type == 0x1F
    run(body)


def test_lun_reset_then_unit_attention(tmp_path: Path) -> None:
    async def body() -> None:
        async with target(tmp_path) as (d, port), await login(port) as s:
            await clear_unit_attentions(s)
            rsp = await s.task_management(TmfFunction.LOGICAL_UNIT_RESET, 1)
            assert rsp == TmfResponse.FUNCTION_COMPLETE
            r = await s.execute(1, bytes(6))
            assert (r.status, r.sense_key, r.asc) == (2, 6, 0x29)  # RESET OCCURRED
            await s.test_unit_ready(1)
    run(body)


def test_immediate_command(tmp_path: Path) -> None:
    async def body() -> None:
        async with target(tmp_path) as (d, port), await login(port) as s:
            before = s.conn.cmd_sn
            inq = await s.execute(1, bytes([0x12, 0, 0, 0, 96, 0]), read_length=96,
                                  immediate=True)
            assert inq.ok and len(inq.data) >= 36 and s.conn.cmd_sn == before
    run(body)


def _corrupt_next_data_digest(s: Any) -> None:
    framer = s.conn.framer
    original = framer.frame

    def frame(header: bytes, data: Any = b"") -> list[Any]:
        bufs = original(header, data)
        if data:
            framer.frame = original
            tail = bytearray(bytes(bufs[-1]))
            tail[-1] ^= 0xFF
            bufs[-1] = bytes(tail)
        return bufs

    framer.frame = frame


def test_data_digest_error_on_write(tmp_path: Path) -> None:
    """RFC 7143 7.8: the target rejects the PDU (reason 0x02); at ERL 0 it may then close."""

    async def body() -> None:
        async with target(tmp_path) as (d, port):
            s = await login(port, data_digest=True, immediate_data=True)
            await clear_unit_attentions(s)
            _corrupt_next_data_digest(s)
            with pytest.raises((CommandRejected, ConnectionLost)) as info:
                await s.write16(1, 0, os.urandom(4096))
            if isinstance(info.value, CommandRejected):
                assert info.value.reason == 0x02
            await s.logout()
    run(body)


def test_header_digest_error_drops_connection(tmp_path: Path) -> None:
    async def body() -> None:
        async with target(tmp_path) as (d, port):
            s = await login(port, header_digest=True)
            framer = s.conn.framer
            original = framer.frame

            def frame(header: bytes, data: Any = b"") -> list[Any]:
                bufs = original(header, data)
                first = bytearray(bytes(bufs[0]))
                first[-1] ^= 0xFF
                bufs[0] = bytes(first)
                return bufs

            framer.frame = frame
            with pytest.raises(ConnectionLost):
                await s.nop(b"x", timeout=5)
            await asyncio.wait_for(s._closed.wait(), 5)
    run(body)
