"""ALUA end to end: pytgtadm's alua_state, show, and an initiator seeing the states.

The model: the daemon's portal group (tag 1) is target port group 1 and relative target
port 1; the login's TargetPortalGroupTag, VPD page 83h and REPORT TARGET PORT GROUPS
agree on it.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytgt.initiator import InitiatorSession
from pytgt.net.portal import PortalOptions
from tests.daemon.conftest import IQN, Admin, golden, golden_params
from tests.e2e.util import admin, clear_unit_attentions, login, run, target
from tests.helpers import RunningDaemon, start_daemon

NOT_READY, UNIT_ATTENTION = 0x2, 0x6


def rtpg(fmt: int = 1, alloc: int = 1024) -> bytes:
    return bytes((0xA3, fmt << 5 | 0x0A, 0, 0, 0, 0)) + struct.pack(">I", alloc) + bytes(2)


def stpg(state: int, group: int = 1) -> tuple[bytes, bytes]:
    data = bytes(4) + bytes((state, 0)) + struct.pack(">H", group)
    return bytes((0xA4, 0x0A, 0, 0, 0, 0)) + struct.pack(">I", len(data)) + bytes(2), data


READ10 = bytes((0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0))
UPDATE = {"mode": "target", "op": "update", "tid": 1}


# The control plane alone.
@pytest.mark.parametrize("request_", [
    {"name": "alua_state", "value": "standby"},
    {"params": "alua_state=standby"},
    {"name": "alua_state", "value": "1:standby"},
])
def test_update_sets_state(configured: Admin, request_: dict[str, str]) -> None:
    configured.ok(**UPDATE, **request_)
    groups = configured.mgmt.registry.targets[1].scsi.alua
    assert groups.groups[1].state == 2 and groups.restricted


@pytest.mark.parametrize("request_", [
    {"name": "alua_state", "value": "sleepy"},
    {"name": "alua_state", "value": "transitioning"},
    {"name": "alua_state", "value": "7:standby"},
    {"params": "alua_state=standby,MaxConnections=0"},
])
def test_update_rejects_and_applies_nothing(configured: Admin, request_: dict[str, str]) -> None:
    rc, out = configured(**UPDATE, **request_)
    assert rc != 0 and out == "invalid request"
    assert configured.mgmt.registry.targets[1].scsi.alua.default


def test_show_keeps_tgt_layout_until_alua_changes(configured: Admin, lun_file: str) -> None:
    assert configured.ok(mode="target", op="show") == golden("show_target.txt", lun_file)
    assert configured.ok(mode="target", op="show", tid=1) == golden_params()
    configured.ok(**UPDATE, name="alua_state", value="nonoptimized")
    shown = configured.ok(mode="target", op="show")
    expected = golden("show_target.txt", lun_file).replace(
        "        State: ready\n",
        "        State: ready\n        ALUA target port group 1: active/non-optimized\n")
    assert shown == expected
    assert configured.ok(mode="target", op="show", tid=1) == (
        golden_params() + "alua_state=nonoptimized\n")
    configured.ok(**UPDATE, name="alua_state", value="active")
    assert configured.ok(mode="target", op="show") == golden("show_target.txt", lun_file)


# An initiator against an in-process daemon.
async def _result(s: InitiatorSession, cdb: bytes, data: bytes = b"", lun: int = 1,
                  read: int = 0) -> Any:
    return await s.execute(lun, cdb, data, read)


async def _drain_ua(s: InitiatorSession, lun: int = 1) -> tuple[int, int] | None:
    """Consume the pending UA (returns its asc/ascq)."""
    r = await _result(s, bytes(6), lun=lun)
    if r.sense_key == UNIT_ATTENTION:
        return (r.asc, r.ascq)
    return None


@pytest.mark.parametrize("tag", [1, 7])  # pytgtd --iscsi tpgt=N (a gateway's own tag)
def test_portal_group_tag_vpd_and_rtpg_agree(tmp_path: Path, tag: int) -> None:
    async def body() -> None:
        async with target(tmp_path, size=1 << 20, options=PortalOptions(tpgt=tag)) as (_d, port):
            s = await login(port)
            await clear_unit_attentions(s)
            inq = await _result(s, bytes((0x12, 0, 0, 0, 96, 0)), read=96)
            assert inq.data[5] & 0x30 == 0x30  # TPGS 11b
            vpd = (await _result(s, bytes((0x12, 1, 0x83, 1, 0, 0)), read=256)).data
            designators: dict[int, int] = {}
            pos = 4
            while pos < len(vpd):
                if vpd[pos + 1] & 0x30 == 0x10:  # target port association
                    designators[vpd[pos + 1] & 0x0F] = struct.unpack_from(">H", vpd, pos + 6)[0]
                pos += 4 + vpd[pos + 3]
            r = await _result(s, rtpg(1), read=1024)
            assert r.ok and r.data[4] == 0x10
            group = struct.unpack_from(">H", r.data, 10)[0]
            port_id = struct.unpack_from(">H", r.data, 18)[0]
            assert s.params.target_portal_group_tag == group == designators[5] == tag
            assert port_id == designators[4] == tag
            assert struct.unpack_from(">I", r.data)[0] == 4 + 12  # that group alone
            await s.logout()
    run(body)


def test_admin_standby_then_initiator_stpg(tmp_path: Path) -> None:
    async def body() -> None:
        async with target(tmp_path, size=1 << 20) as (d, port):
            a = await login(port, isid=0x23D000000001)
            b = await login(port, isid=0x23D000000002)
            for s in (a, b):
                await clear_unit_attentions(s)
            await admin(d, {**UPDATE, "name": "alua_state", "value": "standby"})
            for s in (a, b):
                assert await _drain_ua(s) == (0x2A, 0x06)
            r = await _result(a, READ10, read=512)
            assert (r.sense_key, r.asc, r.ascq) == (NOT_READY, 0x04, 0x0B)
            r = await _result(a, rtpg(0), read=1024)
            assert r.ok and r.data[4] & 0x0F == 2 and r.data[9] == 0x02
            cdb, data = stpg(0)  # explicit: back to active/optimized
            assert (await _result(a, cdb, data)).ok
            assert (await _result(a, READ10, read=512)).ok  # no UA for the sender
            assert await _drain_ua(b) == (0x2A, 0x06)
            assert (await _result(b, READ10, read=512)).ok
            r = await _result(b, rtpg(0), read=1024)
            assert r.data[4] & 0x0F == 0 and r.data[9] == 0x01
            await asyncio.gather(a.logout(), b.logout())
    run(body)


def test_unavailable_allows_only_the_basics(tmp_path: Path) -> None:
    async def body() -> None:
        params = {"alua_state": "unavailable"}
        async with target(tmp_path, size=1 << 20, params=params) as (_d, port):
            s = await login(port)
            r = await _result(s, bytes(6))  # POWER ON first
            assert r.sense_key == UNIT_ATTENTION
            r = await _result(s, bytes(6))
            assert (r.sense_key, r.asc, r.ascq) == (NOT_READY, 0x04, 0x0C)
            rl = bytes((0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0))
            assert (await _result(s, rl, lun=0, read=256)).ok
            assert (await _result(s, rtpg(), read=64)).ok
            sense = await _result(s, bytes((3, 0, 0, 0, 252, 0)), read=252)
            assert sense.ok and sense.data[2] & 0x0F == NOT_READY
            assert sense.data[12:14] == b"\x04\x0c"
            await s.logout()
    run(body)


# The real pytgtadm against a real pytgtd.
@pytest.fixture
def daemon(tmp_path: Path, lun_file: str) -> Iterator[RunningDaemon]:
    d = start_daemon(tmp_path)
    try:
        d.adm("--lld", "iscsi", "--op", "new", "--mode", "target", "--tid", "1", "-T", IQN)
        d.adm("--lld", "iscsi", "--op", "new", "--mode", "logicalunit", "--tid", "1",
              "--lun", "1", "-b", lun_file)
        d.adm("--lld", "iscsi", "--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")
        yield d
    finally:
        assert d.stop() == 0, "pytgtd did not exit cleanly:\n" + "".join(d.log[-30:])


def test_pytgtadm_alua_state(daemon: RunningDaemon, lun_file: str) -> None:
    daemon.adm("--lld", "iscsi", "--op", "update", "--mode", "target", "--tid", "1",
               "--name", "alua_state", "--value", "standby")
    shown = daemon.adm("--lld", "iscsi", "--op", "show", "--mode", "target").stdout
    assert "        ALUA target port group 1: standby\n" in shown
    params = daemon.adm("--lld", "iscsi", "--op", "show", "--mode", "target", "--tid", "1")
    assert params.stdout.endswith("alua_state=standby\n")
    bad = daemon.adm("--lld", "iscsi", "--op", "update", "--mode", "target", "--tid", "1",
                     "--params", "alua_state=bogus", check=False)
    assert bad.returncode != 0 and "invalid request" in bad.stderr
    daemon.adm("--lld", "iscsi", "--op", "update", "--mode", "target", "--tid", "1",
               "--params", "alua_state=active")
    shown = daemon.adm("--lld", "iscsi", "--op", "show", "--mode", "target").stdout
    assert shown == golden("show_target.txt", lun_file)
