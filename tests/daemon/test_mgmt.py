"""The mode x op handlers: tgtadm's show layouts (golden files from real tgtd) and errors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pytgt.config.model import ConnectionInfo, NexusInfo
from pytgt.daemon.errors import MESSAGES, TgtadmError
from pytgt.daemon.mgmt import HANDLERS, check_target_param, parse_params
from pytgt.daemon.show import size_mb
from pytgt.iscsi import keys
from tests.daemon.conftest import IQN, Admin, golden, golden_params


def test_show_target_matches_tgtadm(configured: Admin, lun_file: str) -> None:
    assert configured.ok(mode="target", op="show") == golden("show_target.txt", lun_file)


def test_show_target_with_accounts_and_acls(configured: Admin, lun_file: str) -> None:
    configured.ok(mode="account", op="new", user="alice", password="secret1")
    configured.ok(mode="account", op="new", user="bob", password="secret2")
    configured.ok(mode="account", op="bind", tid=1, user="alice")
    configured.ok(mode="account", op="bind", tid=1, user="bob", outgoing=True)
    configured.ok(mode="target", op="bind", tid=1, initiator_address="192.168.0.0/24")
    configured.ok(mode="target", op="bind", tid=1, initiator_name="iqn.2026-11.org.test:init1")
    assert configured.ok(mode="target", op="show") == golden("show_target_acl.txt", lun_file)
    assert configured.ok(mode="account", op="show") == golden("show_account.txt")


def _add_nexus(admin: Admin) -> None:
    target = admin.mgmt.registry.targets[1]
    target.nexuses[1] = NexusInfo(1, "iqn.2026-11.org.test:init1", "testalias",
                                  {0: ConnectionInfo(0, "127.0.0.1")})


def test_show_target_with_nexus(configured: Admin, lun_file: str) -> None:
    _add_nexus(configured)
    assert configured.ok(mode="target", op="show") == golden("show_target_nexus.txt", lun_file)
    assert configured.ok(mode="conn", op="show", tid=1) == golden("show_conn.txt")


def test_show_target_params(configured: Admin) -> None:
    assert configured.ok(mode="target", op="show", tid=1) == golden_params()
    configured.ok(mode="target", op="update", tid=1, name="headerdigest", value="crc32c")
    configured.ok(mode="target", op="update", tid=1, params="MaxBurstLength=0x80000")
    configured.ok(mode="target", op="update", tid=1, name="MaxQueueCmd", value="64")
    shown = configured.ok(mode="target", op="show", tid=1)
    for line in ("HeaderDigest=CRC32C", "MaxBurstLength=524288", "MaxQueueCmd=64"):
        assert f"\n{line}\n" in shown
    assert configured.mgmt.registry.targets[1].iscsi_params == {
        "HeaderDigest": "CRC32C", "MaxBurstLength": "524288", "MaxQueueCmd": "64"}


def test_target_params_are_ones_login_accepts(configured: Admin) -> None:
    configured.ok(mode="target", op="update", tid=1,
                  params="InitialR2T=no,MaxXmitDataSegmentLength=4096")
    configured.ok(mode="target", op="update", tid=1, name="DataDigest", value="none,crc32c")
    params = configured.mgmt.registry.targets[1].iscsi_params
    assert params == {"InitialR2T": "No", "DataDigest": "None,CRC32C",
                      "MaxXmitDataSegmentLength": "4096"}
    keys.target_values(params)  # raises if the login layer would refuse them


def test_nop_interval_shown_in_system_information(configured: Admin) -> None:
    configured.ok(mode="target", op="update", tid=1, name="nop_interval", value="5")
    lines = configured.ok(mode="target", op="show").splitlines()
    assert lines[4:6] == ["        Nop interval: 5", "        Nop count: 0"]


def test_state_offline_and_back(configured: Admin) -> None:
    configured.ok(mode="target", op="update", tid=1, name="state", value="offline")
    assert "        State: offline\n" in configured.ok(mode="target", op="show")
    configured.ok(mode="target", op="update", tid=1, name="state", value="ready")
    assert configured.mgmt.registry.targets[1].state == "ready"


def test_lu_update_params(configured: Admin) -> None:
    configured.ok(mode="logicalunit", op="update", tid=1, lun=1,
                  params="vendor_id=ACME,product_id=Disk,scsi_sn=SN1,scsi_id=ID1")
    configured.ok(mode="logicalunit", op="update", tid=1, lun=1,
                  params="readonly=1,removable=1,online=0,thin_provisioning=1")
    shown = configured.ok(mode="target", op="show")
    for line in ("SCSI ID: ID1", "SCSI SN: SN1", "Online: No", "Removable media: Yes",
                 "Readonly: Yes", "Thin-provisioning: Yes"):
        assert f"            {line}\n" in shown


def test_lu_delete_closes_store(configured: Admin) -> None:
    lu = configured.mgmt.registry.targets[1].scsi.luns[1]
    closed: list[bool] = []
    real_close = lu.store.close

    async def close() -> None:
        closed.append(True)
        await real_close()

    lu.store.close = close
    configured.ok(mode="logicalunit", op="delete", tid=1, lun=1)
    assert closed == [True] and 1 not in configured.mgmt.registry.targets[1].scsi.luns


def test_memory_lun_with_params(admin: Admin) -> None:
    admin.ok(mode="target", op="new", tid=2, targetname="iqn.2026-11.org.example:ram")
    admin.ok(mode="logicalunit", op="new", tid=2, lun=1, bstype="memory",
             backing_store="memory:1048576", bsopts="size=1048576", params="readonly=1")
    lu = admin.mgmt.registry.targets[2].scsi.luns[1]
    assert lu.readonly and lu.size == 1 << 20


# (requests run first, the failing request, exit status, message) -- each checked
# against tgtadm 1.0.85 with the same configuration.
ERRORS: list[tuple[str, dict[str, Any], str]] = [
    ("dup tid", dict(mode="target", op="new", tid=1, targetname="iqn.x:y"),
     "this target already exists"),
    ("dup name", dict(mode="target", op="new", tid=2, targetname=IQN),
     "this target already exists"),
    ("tid 0", dict(mode="target", op="new", tid=0, targetname="iqn.x:z"), "'tid' cannot be 0"),
    ("no name", dict(mode="target", op="new", tid=3),
     "creating new target requires a name, use --targetname"),
    ("no tid", dict(mode="target", op="new", targetname="iqn.x:z"), "'tid' option is necessary"),
    ("bad name", dict(mode="target", op="new", tid=4, targetname="bad name"), "invalid request"),
    ("delete missing", dict(mode="target", op="delete", tid=9), "can't find the target"),
    ("show missing", dict(mode="target", op="show", tid=9), "can't find the target"),
    ("lun exists", dict(mode="logicalunit", op="new", tid=1, lun=1, backing_store="/dev/null"),
     "this logical unit number already exists"),
    ("lun 0 exists", dict(mode="logicalunit", op="new", tid=1, lun=0, backing_store="/dev/null"),
     "this logical unit number already exists"),
    ("no file", dict(mode="logicalunit", op="new", tid=1, lun=2, backing_store="/nonexistent"),
     "invalid request"),
    ("lu no target", dict(mode="logicalunit", op="new", tid=9, lun=2, backing_store="/dev/null"),
     "can't find the target"),
    ("lu no lun", dict(mode="logicalunit", op="new", tid=1, backing_store="/dev/null"),
     "'lun' option is necessary"),
    ("bad bstype", dict(mode="logicalunit", op="new", tid=1, lun=3, backing_store="/dev/null",
                        bstype="bogus"), "invalid request"),
    ("bad oflags", dict(mode="logicalunit", op="new", tid=1, lun=3, backing_store="/dev/null",
                        bsoflags="bogus"), "invalid request"),
    ("del no lun", dict(mode="logicalunit", op="delete", tid=1, lun=5),
     "can't find the logical unit"),
    ("del lun 0", dict(mode="logicalunit", op="delete", tid=1, lun=0), "invalid request"),
    ("del lun no target", dict(mode="logicalunit", op="delete", tid=9, lun=1),
     "can't find the logical unit"),
    ("lu bad param", dict(mode="logicalunit", op="update", tid=1, lun=1, params="bogus=1"),
     "invalid request"),
    ("lu empty param", dict(mode="logicalunit", op="update", tid=1, lun=1, params="="),
     "invalid request"),
    ("lu update no lun", dict(mode="logicalunit", op="update", tid=1, lun=9, params="online=1"),
     "can't find the logical unit"),
    ("lu update no target", dict(mode="logicalunit", op="update", tid=9, lun=1,
                                 params="online=1"), "can't find the target"),
    ("dup acl", dict(mode="target", op="bind", tid=1, initiator_address="ALL"),
     "this access control rule already exists"),
    ("no acl", dict(mode="target", op="unbind", tid=1, initiator_address="1.2.3.4"),
     "this access control rule does not exist"),
    ("no name acl", dict(mode="target", op="unbind", tid=1, initiator_name="iqn.nope"),
     "this access control rule does not exist"),
    ("bind nothing", dict(mode="target", op="bind", tid=1),
     "bind operation requires initiator-address, initiator-nameor bus"),
    ("bind no target", dict(mode="target", op="bind", tid=9, initiator_address="ALL"),
     "can't find the target"),
    ("state bogus", dict(mode="target", op="update", tid=1, name="state", value="bogus"),
     "invalid request"),
    ("State", dict(mode="target", op="update", tid=1, name="State", value="ready"),
     "invalid request"),
    ("bad key", dict(mode="target", op="update", tid=1, name="bogus", value="1"),
     "invalid request"),
    ("bad value", dict(mode="target", op="update", tid=1, name="MaxRecvDataSegmentLength",
                       value="1"), "invalid request"),
    ("bad digest", dict(mode="target", op="update", tid=1, name="HeaderDigest", value="Nope"),
     "invalid request"),
    ("erl 5", dict(mode="target", op="update", tid=1, name="ErrorRecoveryLevel", value="5"),
     "invalid request"),
    ("no value", dict(mode="target", op="update", tid=1, name="state"),
     "update operation requires 'name' and 'value' options"),
    ("update no target", dict(mode="target", op="update", tid=9, name="state", value="ready"),
     "can't find the target"),
    ("account no pass", dict(mode="account", op="new", user="u2"),
     "'user' and 'password' options are required"),
    ("account del none", dict(mode="account", op="delete", user="nobody"),
     "can't find the account"),
    ("account bind none", dict(mode="account", op="bind", tid=1, user="nobody"),
     "can't find the account"),
    ("account bind no target", dict(mode="account", op="bind", tid=9, user="u1"),
     "can't find the target"),
    ("sys state", dict(mode="system", op="update", name="state", value="ready"),
     "invalid request"),
    ("sys bogus", dict(mode="system", op="update", name="State", value="bogus"),
     "invalid request"),
    ("sys no value", dict(mode="system", op="update"),
     "update operation requires 'name' and 'value' options"),
    ("lld stop busy", dict(mode="lld", op="stop", lld="iscsi"), "this driver is busy"),
    ("lld bogus", dict(mode="lld", op="show", lld="bogus"), "can't find the driver"),
    ("target lld bogus", dict(mode="target", op="show", lld="bogus"), "can't find the driver"),
    ("conn no target", dict(mode="conn", op="show", tid=9), "can't find the target"),
    ("conn no tid", dict(mode="conn", op="show"), "can't find the target"),
    ("conn del none", dict(mode="conn", op="delete", tid=1, sid=5, cid=0),
     "can't find the session"),
    ("lu show", dict(mode="logicalunit", op="show", tid=1, lun=1), "invalid request"),
    ("bad tid type", dict(mode="target", op="show", tid="abc"), "invalid request"),
]


@pytest.mark.parametrize("request_, message", [e[1:] for e in ERRORS],
                         ids=[e[0] for e in ERRORS])
def test_errors_as_tgtadm(configured: Admin, request_: dict[str, Any], message: str) -> None:
    configured.ok(mode="account", op="new", user="u1", password="p1")
    assert configured(**request_) == (22, message)


def test_account_bind_errors(configured: Admin) -> None:
    for user in ("u1", "u2", "u3"):
        configured.ok(mode="account", op="new", user=user, password="p")
    assert configured(mode="account", op="new", user="u1", password="x") == (
        22, "this account already exists")
    configured.ok(mode="account", op="bind", tid=1, user="u1")
    assert configured(mode="account", op="bind", tid=1, user="u1") == (
        22, "this account already exists")
    configured.ok(mode="account", op="bind", tid=1, user="u2", outgoing=True)
    assert configured(mode="account", op="bind", tid=1, user="u3", outgoing=True) == (
        22, "this target already has an outgoing account")
    assert configured(mode="account", op="unbind", tid=1, user="u2") == (
        22, "can't find the account")
    configured.ok(mode="account", op="unbind", tid=1, user="u2", outgoing=True)
    configured.ok(mode="account", op="delete", user="u1")
    assert configured.mgmt.registry.targets[1].incoming_accounts == []


def test_discovery_accounts_without_tid(admin: Admin) -> None:
    admin.ok(mode="account", op="new", user="d", password="p")
    admin.ok(mode="account", op="bind", user="d")
    assert admin.mgmt.registry.incoming_accounts == ["d"]
    admin.ok(mode="account", op="unbind", user="d")
    assert admin(mode="account", op="unbind", user="d") == (22, "can't find the account")


def test_empty_shows(admin: Admin) -> None:
    assert admin.ok(mode="target", op="show") == ""
    assert admin.ok(mode="account", op="show") == ""


class FakeConnection:
    def __init__(self) -> None:
        self.closed: list[str] = []
        self.async_events: list[tuple[int, dict[str, int]]] = []

    def send_async(self, event: int, **params: int) -> None:
        self.async_events.append((event, params))

    def close(self, reason: str = "") -> None:
        self.closed.append(reason)


class FakeSession:
    def __init__(self, target: Any, tsih: int) -> None:
        self.target, self.tsih = target, tsih
        self.connections = {0: FakeConnection(), 1: FakeConnection()}


class FakeService:
    def __init__(self) -> None:
        self.sessions = type("Table", (), {"sessions": {}})()


def _with_session(admin: Admin) -> FakeSession:
    service = FakeService()
    admin.mgmt.service = service
    session = FakeSession(admin.mgmt.registry.targets[1], 7)
    service.sessions.sessions[7] = session
    return session


def test_delete_active_target_needs_force(configured: Admin) -> None:
    session = _with_session(configured)
    assert configured(mode="target", op="delete", tid=1) == (22, "this target is still active")
    configured.ok(mode="target", op="delete", tid=1, force=True)
    assert all(c.closed for c in session.connections.values())
    assert all(c.async_events == [(3, {"p2": 2, "p3": 0})]  # AsyncEvent 3, then close
               for c in session.connections.values())
    assert 1 not in configured.mgmt.registry.targets


def test_delete_target_with_nexus_only_is_active(configured: Admin) -> None:
    _add_nexus(configured)
    assert configured(mode="target", op="delete", tid=1) == (22, "this target is still active")


def test_conn_and_session_delete(configured: Admin) -> None:
    session = _with_session(configured)
    assert configured(mode="conn", op="delete", tid=1, sid=7, cid=5) == (
        22, "can't find the connection")
    configured.ok(mode="conn", op="delete", tid=1, sid=7, cid=1)
    assert session.connections[1].closed and not session.connections[0].closed
    configured.ok(mode="session", op="delete", tid=1, sid=7)
    assert session.connections[0].closed


def test_session_show(configured: Admin) -> None:
    _add_nexus(configured)
    configured.mgmt.registry.targets[1].nexuses[1].params = {"HeaderDigest": "None"}
    assert configured.ok(mode="session", op="show", tid=1) == (
        "Session: 1\n    Initiator: iqn.2026-11.org.test:init1 alias: testalias\n"
        "    Connection: 0\n        IP Address: 127.0.0.1\n"
        "    Negotiated parameters:\n        HeaderDigest=None\n")


def test_system_show_layout(admin: Admin) -> None:
    lines = admin.ok(mode="system", op="show").splitlines()
    assert lines[:5] == ["System:", "    State: ready", "    debug: off", "LLDs:",
                         "    iscsi: ready"]
    assert "Backing stores:" in lines and "    rdwr (bsoflags sync:direct)" in lines
    assert "Device types:" in lines and "    disk" in lines
    assert lines[-5:] == ["iSNS:", "    iSNS=Off", "    iSNSServerIP=",
                          "    iSNSServerPort=3205", "    iSNSAccessControl=Off"]


def test_system_state_and_debug(admin: Admin) -> None:
    admin.ok(mode="system", op="update", name="State", value="offline")
    assert admin.mgmt.registry.state == "offline"
    admin.ok(mode="system", op="update", name="debug", value="on")
    assert "    debug: on" in admin.ok(mode="system", op="show")
    admin.ok(mode="system", op="update", name="debug", value="off")


def test_system_delete_calls_shutdown(admin: Admin) -> None:
    assert admin(mode="system", op="delete") == (22, "invalid request")
    called: list[bool] = []
    admin.mgmt.shutdown = lambda: called.append(True)
    admin.ok(mode="system", op="delete")
    assert called == [True]


def test_lld_show_and_start(configured: Admin) -> None:
    assert configured.ok(mode="lld", op="show") == (
        "LLDs:\n    iscsi: ready\n        Target 1: " + IQN + "\n")
    assert configured.ok(mode="lld", op="start", lld="iscsi") == ""


def test_unknown_mode_and_op(admin: Admin) -> None:
    assert admin(mode="bogus", op="show") == (1, "unknown mode: bogus")
    assert admin(mode="account", op="stat") == (22, "invalid request")
    assert admin() == (1, "unknown mode: None")


def test_handler_bug_is_one_line(admin: Admin, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(m: Any, req: Any) -> str:
        raise RuntimeError("boom")

    monkeypatch.setitem(HANDLERS, ("target", "show"), broken)
    assert admin(mode="target", op="show") == (22, "unknown error")


def test_failed_lu_creation_closes_store(configured: Admin, lun_file: str) -> None:
    closed: list[bool] = []

    class Store:
        size = 1 << 20

        async def close(self) -> None:
            closed.append(True)

    configured.mgmt.open_store = lambda *a, **k: Store()
    req = dict(mode="logicalunit", op="new", tid=1, lun=2, backing_store=lun_file,
               blocksize=1000)
    assert configured(**req) == (22, "invalid request")
    assert closed == [True]


def test_concurrent_requests_are_serialised(admin: Admin) -> None:
    async def run() -> list[tuple[int, str]]:
        reqs = [admin.mgmt.handle(dict(mode="target", op="new", tid=1,
                                       targetname=f"iqn.x:{i}")) for i in range(5)]
        return await asyncio.gather(*reqs)

    results = asyncio.run(run())
    assert sorted(rc for rc, _ in results) == [0, 22, 22, 22, 22]


def test_every_error_has_a_message() -> None:
    assert set(MESSAGES) == set(TgtadmError)


@pytest.mark.parametrize("text, expected", [
    ("", {}), ("a=1", {"a": "1"}), ("a=1,b=x y", {"a": "1", "b": "x y"}),
    ({"a": 1}, {"a": "1"})])
def test_parse_params(text: Any, expected: dict[str, str]) -> None:
    assert parse_params(text) == expected


@pytest.mark.parametrize("name, value, expected", [
    ("maxrecvdatasegmentlength", "65536", ("MaxRecvDataSegmentLength", "65536")),
    ("HeaderDigest", "crc32c,none", ("HeaderDigest", "CRC32C,None")),
    ("MaxBurstLength", "0x1000", ("MaxBurstLength", "4096")),
    ("taskreporting", "rfc3720", ("TaskReporting", "RFC3720")),
    ("InitialR2T", "no", ("InitialR2T", "No")),
    ("OFMarkInt", "reject", ("OFMarkInt", "Reject")),
    ("nop_interval", "5", ("nop_interval", "5"))])
def test_target_params_canonical(name: str, value: str, expected: tuple[str, str]) -> None:
    assert check_target_param(name, value) == expected


@pytest.mark.parametrize("size, mb", [(0, 0), (1 << 20, 1), (1572864, 2), (3 << 30, 3221),
                                      (1 << 40, 1099512)])
def test_size_mb_like_tgtadm(size: int, mb: int) -> None:
    assert size_mb(size) == mb
