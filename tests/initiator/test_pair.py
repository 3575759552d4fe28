"""The initiator core paired in memory with the target core (no network, bounded rounds)."""

from __future__ import annotations

import os
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from pytgt.initiator.core import InitiatorConnection
from pytgt.initiator.events import (
    CommandComplete,
    ConnectionClosed,
    LoginComplete,
    LogoutComplete,
    NopReply,
    RequestFailed,
    TaskManagementComplete,
    TextComplete,
)
from pytgt.initiator.options import InitiatorOptions
from pytgt.initiator.scsi import cdb_read16, cdb_write16
from pytgt.iscsi.connection import TargetConnection
from pytgt.iscsi.events import CommandReady, TaskManagement
from pytgt.iscsi.keys import SessionParams
from pytgt.iscsi.policy import BasePolicy
from pytgt.iscsi.session import SessionTable

IQN = "iqn.2026-11.org.pytgt:pair"


class StubPolicy(BasePolicy[SimpleNamespace]):
    """Login and discovery answers for one target, optional CHAP."""

    def __init__(self, settings: dict[str, str] | None = None,
                 secrets: dict[str, str] | None = None,
                 mutual: tuple[str, str] | None = None) -> None:
        self.target = SimpleNamespace(name=IQN)
        self.settings, self.secrets, self.mutual = settings or {}, secrets or {}, mutual

    def find_target(self, name: str) -> SimpleNamespace | None:
        return self.target if name.lower() == IQN else None

    def target_allows(self, target: SimpleNamespace, initiator_name: str,
                      address: str) -> bool:
        return True

    def target_settings(self, target: SimpleNamespace | None) -> dict[str, str]:
        return dict(self.settings)

    def target_alias(self, target: SimpleNamespace | None) -> str:
        return "pair"

    def auth_required(self, target: SimpleNamespace | None) -> bool:
        return bool(self.secrets)

    def chap_secret(self, target: SimpleNamespace | None, user: str) -> str | None:
        return self.secrets.get(user)

    def chap_mutual_account(self, target: SimpleNamespace | None) -> tuple[str, str] | None:
        return self.mutual

    def send_targets(self, initiator_name: str, address: str, value: str, session_type: str,
                     local_address: str = "") -> list[tuple[str, str]]:
        return [("TargetName", IQN), ("TargetAddress", "127.0.0.1:3260,1")]


class Pair:
    """Moves bytes between the two cores; the target's SCSI layer is a bytearray disk."""

    def __init__(self, policy: StubPolicy, *, sessions: SessionTable | None = None,
                 disk: bytearray | None = None, **options: Any) -> None:
        options.setdefault("target_name", IQN)
        self.ini = InitiatorConnection(InitiatorOptions(**options))
        self.tgt = TargetConnection(policy, sessions or SessionTable(), "127.0.0.1")
        self.disk = bytearray(1 << 20) if disk is None else disk
        self.events: list[Any] = []

    def run(self, rounds: int = 200) -> list[Any]:
        start = len(self.events)
        for _ in range(rounds):
            moved = False
            for out in self.ini.data_to_send():
                self.tgt.receive_data(bytes(out))
                moved = True
            while (ev := self.tgt.next_event()) is not None:
                self._target_event(ev)
            for out in self.tgt.data_to_send():
                self.ini.receive_data(bytes(out))
                moved = True
            while (ev := self.ini.next_event()) is not None:
                self.events.append(ev)
            if not moved:
                break
        return self.events[start:]

    def _target_event(self, ev: Any) -> None:
        if isinstance(ev, CommandReady):
            task, cdb = ev.task, ev.task.command.cdb
            lba, blocks = int.from_bytes(cdb[2:10], "big"), int.from_bytes(cdb[10:14], "big")
            off, n = lba * 512, blocks * 512
            if cdb[0] == 0x8A:
                self.disk[off : off + n] = task.data_out_buffer()
                self.tgt.complete_command(task, 0, b"", write_length=n)
            else:
                self.tgt.complete_command(task, 0, bytes(self.disk[off : off + n]))
        elif isinstance(ev, TaskManagement):
            self.tgt.complete_tmf(ev.itt, 0)

    def login(self) -> LoginComplete:
        self.ini.start_login()
        (ev,) = self.run()
        assert isinstance(ev, LoginComplete), ev
        return ev


NEGOTIATIONS: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "defaults": ({}, {}),
    "no-immediate": ({"immediate_data": False}, {}),
    "unsolicited": ({"initial_r2t": False}, {"InitialR2T": "No"}),
    "unsolicited-no-immediate": ({"initial_r2t": False, "immediate_data": False},
                                 {"InitialR2T": "No"}),
    "small-segments": ({"max_recv_data_segment_length": 4096, "max_burst_length": 16384,
                        "first_burst_length": 8192, "initial_r2t": False},
                       {"MaxRecvDataSegmentLength": "4096", "InitialR2T": "No"}),
    "digests": ({"header_digest": True, "data_digest": True}, {}),
}


@pytest.mark.parametrize("name", list(NEGOTIATIONS))
def test_write_then_read_back(name: str) -> None:
    options, settings = NEGOTIATIONS[name]
    p = Pair(StubPolicy(settings), **options)
    p.login()
    data = os.urandom(300 * 512)
    w = p.ini.send_command(1, cdb_write16(8, 300), data_out=data)
    (ev,) = p.run()
    assert isinstance(ev, CommandComplete) and ev.itt == w and ev.result.ok, ev
    assert p.disk[8 * 512 : 308 * 512] == data
    r = p.ini.send_command(1, cdb_read16(8, 300), read_length=len(data))
    (ev,) = p.run()
    assert ev.itt == r and ev.result.data == data


@pytest.mark.parametrize("name", list(NEGOTIATIONS))
def test_both_sides_hold_the_same_parameter_record(name: str) -> None:
    """One SessionParams type on both sides: after login the records are equal, with
    the data segment lengths mirrored (what one side receives, the other sends)."""
    options, settings = NEGOTIATIONS[name]
    p = Pair(StubPolicy(settings), **options)
    ours = p.login().negotiated
    theirs = p.tgt.session.params
    assert type(ours) is type(theirs) is SessionParams
    assert ours == replace(theirs, max_recv_data_segment_length=theirs.max_xmit_data_segment_length,
                           max_xmit_data_segment_length=theirs.max_recv_data_segment_length)
    assert (ours.target_alias, ours.target_portal_group_tag) == ("pair", 1)


def test_many_commands_through_a_small_window() -> None:
    p = Pair(StubPolicy())
    p.login()
    p.ini.max_cmd_sn = p.ini.exp_cmd_sn  # pretend the target allowed only one
    itts = [p.ini.send_command(1, cdb_write16(i, 1), data_out=bytes([i]) * 512)
            for i in range(100)]
    events = p.run(rounds=1000)
    assert sorted(e.itt for e in events if isinstance(e, CommandComplete)) == sorted(itts)
    assert p.ini.outstanding == 0


def test_discovery_nop_tmf_logout() -> None:
    p = Pair(StubPolicy(), target_name=None)
    p.login()
    t = p.ini.send_text([("SendTargets", "All")])
    (ev,) = p.run()
    assert isinstance(ev, TextComplete) and ev.itt == t
    assert ev.pairs == [("TargetName", IQN), ("TargetAddress", "127.0.0.1:3260,1")]
    p.ini.send_nop(b"x" * 100)
    (ev,) = p.run()
    assert isinstance(ev, NopReply) and ev.data == b"x" * 100
    p.ini.send_logout()
    (ev,) = p.run()
    assert isinstance(ev, LogoutComplete) and ev.response == 0
    assert p.tgt.closed


def test_tmf_in_normal_session() -> None:
    p = Pair(StubPolicy())
    p.login()
    p.ini.send_task_management(5, 1)  # LOGICAL UNIT RESET
    (ev,) = p.run()
    assert isinstance(ev, TaskManagementComplete) and ev.response == 0


@pytest.mark.parametrize("mutual", [False, True])
def test_chap_login(mutual: bool) -> None:
    policy = StubPolicy(secrets={"alice": "alice-secret-1"},
                        mutual=("tgt", "target-secret-1") if mutual else None)
    p = Pair(policy, chap=("alice", "alice-secret-1"),
             mutual_chap=("tgt", "target-secret-1") if mutual else None)
    p.login()


def test_chap_wrong_secret_is_0201() -> None:
    p = Pair(StubPolicy(secrets={"alice": "alice-secret-1"}), chap=("alice", "nope-nope-nope"))
    p.ini.start_login()
    events = p.run()
    assert isinstance(events[0], RequestFailed) and events[0].error.status == 0x0201
    assert isinstance(events[-1], ConnectionClosed)


def test_unknown_target_is_0203() -> None:
    p = Pair(StubPolicy(), target_name=IQN + ".nope")
    p.ini.start_login()
    events = p.run()
    assert events[0].error.status == 0x0203


JOINED_SESSIONS: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "no-immediate": ({"immediate_data": True, "initial_r2t": True},
                     {"ImmediateData": "No", "InitialR2T": "Yes", "MaxBurstLength": "16384"}),
    "small-first-burst": ({"immediate_data": True, "initial_r2t": False},
                          {"InitialR2T": "No", "FirstBurstLength": "4096",
                           "MaxBurstLength": "16384"}),
}


@pytest.mark.parametrize("name", list(JOINED_SESSIONS))
def test_second_connection_writes_by_the_session_values(name: str) -> None:
    """MaxConnections=2 (RFC 7143 5.3.4): the second connection negotiates no
    session-wide key, works by the session's values (a write by RFC defaults would be
    rejected) and reads back what the first wrote, and the other way round."""
    options, settings = JOINED_SESSIONS[name]
    policy, sessions = StubPolicy({"MaxConnections": "2", **settings}), SessionTable()
    isid = 0x800000777700
    a = Pair(policy, sessions=sessions, isid=isid, max_connections=2, **options)
    lead = a.login()
    assert a.ini.negotiated.max_connections == 2
    b = Pair(policy, sessions=sessions, disk=a.disk, isid=isid, tsih=lead.tsih, cid=1,
             session=a.ini.negotiated, **options)
    b.ini.cmd_sn = a.ini.cmd_sn
    assert b.login().tsih == lead.tsih and b.tgt.session is a.tgt.session
    for attr in ("immediate_data", "initial_r2t", "first_burst_length", "max_burst_length"):
        assert getattr(b.ini.negotiated, attr) == getattr(a.ini.negotiated, attr), attr
    for writer, reader, lba in ((b, a, 16), (a, b, 64)):
        data = os.urandom(100 * 512)
        ev = command(writer, reader, cdb_write16(lba, 100), data_out=data)
        assert ev.result.ok, ev
        ev = command(reader, writer, cdb_read16(lba, 100), read_length=len(data))
        assert ev.result.ok and ev.result.data == data


def command(p: Pair, other: Pair, cdb: bytes, **kw: Any) -> CommandComplete:
    """One command on ``p``'s connection, next in the session's CmdSN sequence, which
    the two initiator cores (numbering per connection) hand over between them."""
    p.ini.cmd_sn = other.ini.cmd_sn = max(p.ini.cmd_sn, other.ini.cmd_sn)
    itt = p.ini.send_command(1, cdb, **kw)
    (ev,) = p.run()
    assert isinstance(ev, CommandComplete) and ev.itt == itt, ev
    other.ini.cmd_sn = p.ini.cmd_sn
    return ev
