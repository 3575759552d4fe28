"""``pytgtadm --op show --json``: every show mode answers a ``pytgt.show/1`` document, and
the documents of a running daemon, turned into requests and applied to an empty daemon,
give the same documents."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytgt.config.plan import WRITE_CACHE_OFF_PAGE
from pytgt.daemon.control import request_sync
from pytgt.daemon.show_json import SCHEMA, requests_from_show
from pytgt.initiator import Initiator
from tests.helpers import RunningDaemon, start_daemon

T1, T2 = "iqn.2026-11.org.pytgt:json1", "iqn.2026-11.org.pytgt:json2"
SECRETS = {"in1": "in1-secret-123", "out1": "out1-secret-12", "disc": "disc-secret-12",
           "spare": "spare-secret-1"}


def adm(d: RunningDaemon, *args: str) -> str:
    return d.adm("--lld", "iscsi", *args).stdout


def show(d: RunningDaemon, mode: str, *more: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(adm(d, "--op", "show", "--mode", mode, "--json", *more))
    assert doc["schema"] == SCHEMA and doc["mode"] == mode
    return doc


def request(d: RunningDaemon, req: dict[str, Any]) -> None:
    rc, out = request_sync(f"{d.env['PYTGT_RUN_DIR']}/socket.{d.control_port}", req)
    assert rc == 0, (req, out)


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[tuple[RunningDaemon, RunningDaemon]]:
    a = start_daemon(tmp_path / "a")
    try:
        b = start_daemon(tmp_path / "b")
        try:
            yield a, b
        finally:
            assert b.stop() == 0
    finally:
        assert a.stop() == 0


def configure(d: RunningDaemon, tmp: Path) -> None:
    """A configuration that touches every field of the target and account documents."""
    img = tmp / "disk1.img"
    with open(img, "wb") as f:
        f.truncate(8 << 20)
    adm(d, "--op", "new", "--mode", "target", "--tid", "1", "-T", T1)
    adm(d, "--op", "new", "--mode", "target", "--tid", "3", "-T", T2)
    adm(d, "--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1", "-b", str(img),
        "--bsoflags", "sync")
    adm(d, "--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "2", "-b", "x",
        "-E", "null", "--bsopts", "size=64M", "--blocksize", "4096")
    adm(d, "--op", "new", "--mode", "logicalunit", "--tid", "3", "--lun", "7", "-b", "m",
        "-E", "memory", "--bsopts", "size=4M")
    adm(d, "--op", "update", "--mode", "logicalunit", "--tid", "1", "--lun", "1", "--params",
        "vendor_id=ACME,product_id=Box,scsi_sn=SN42,readonly=1,removable=1,sense_format=1,"
        "thin_provisioning=0,swp=1")
    adm(d, "--op", "update", "--mode", "logicalunit", "--tid", "3", "--lun", "7", "--params",
        f"mode_page={WRITE_CACHE_OFF_PAGE},online=0")
    adm(d, "--op", "update", "--mode", "target", "--tid", "1", "--params",
        "MaxRecvDataSegmentLength=65536,nop_interval=5,nop_count=3")
    adm(d, "--op", "update", "--mode", "target", "--tid", "3", "--name", "state",
        "--value", "offline")
    adm(d, "--op", "update", "--mode", "target", "--tid", "3", "--name", "alua_state",
        "--value", "standby")
    adm(d, "--op", "bind", "--mode", "target", "--tid", "1", "-I", "127.0.0.1")
    adm(d, "--op", "bind", "--mode", "target", "--tid", "1", "-I", "10.0.0.0/8")
    adm(d, "--op", "bind", "--mode", "target", "--tid", "3", "-Q", "iqn.2024-01.test:h")
    for user, secret in SECRETS.items():
        adm(d, "--op", "new", "--mode", "account", "--user", user, "--password", secret)
    adm(d, "--op", "bind", "--mode", "account", "--tid", "1", "--user", "in1")
    adm(d, "--op", "bind", "--mode", "account", "--tid", "1", "--user", "out1", "--outgoing")
    adm(d, "--op", "bind", "--mode", "account", "--user", "disc")


def test_json_of_a_daemon_applied_to_an_empty_one_gives_the_same_json(
        daemons: tuple[RunningDaemon, RunningDaemon], tmp_path: Path) -> None:
    a, b = daemons
    configure(a, tmp_path)
    targets, accounts = show(a, "target"), show(a, "account")
    for req in requests_from_show(targets, accounts, SECRETS):
        request(b, req)
    assert show(b, "target") == targets
    assert show(b, "account") == accounts
    assert show(b, "lld") == show(a, "lld")
    assert show(b, "target", "--tid", "3") == show(a, "target", "--tid", "3")

    t1, t3 = targets["targets"]
    assert (t1["tid"], t1["name"], t3["state"]) == (1, T1, "offline")
    assert t1["params"]["MaxRecvDataSegmentLength"] == "65536"
    assert t1["params"]["nop_interval"] == "5"
    assert t3["alua"] == [{"group": 1, "state": "standby"}]
    assert t1["acl"] == {"initiator_addresses": ["127.0.0.1", "10.0.0.0/8"],
                         "initiator_names": []}
    assert t1["accounts"] == {"incoming": ["in1"], "outgoing": "out1"}
    lun0, lun1, lun2 = t1["luns"]
    assert lun0["type"] == "controller" and lun0["backing_store"]["path"] is None
    assert (lun1["vendor_id"], lun1["scsi_sn"], lun1["readonly"], lun1["swp"]) == \
        ("ACME", "SN42", True, True)
    assert lun1["backing_store"] == {"type": "rdwr", "path": str(tmp_path / "disk1.img"),
                                     "flags": "sync", "options": ""}
    assert (lun1["size"], lun1["thin_provisioning"], lun1["sense_format"]) == (8 << 20, False, 1)
    assert (lun2["block_size"], lun2["size"]) == (4096, 64 << 20)
    assert t3["luns"][1]["write_cache"] is False and t3["luns"][1]["online"] is False
    assert accounts["discovery"] == {"incoming": ["disc"], "outgoing": None}
    assert sorted(accounts["accounts"]) == sorted(SECRETS)
    assert "secret" not in json.dumps([targets, accounts])  # never a CHAP secret


def test_session_conn_and_system_documents(daemons: tuple[RunningDaemon, RunningDaemon],
                                           tmp_path: Path) -> None:
    d, _ = daemons
    adm(d, "--op", "new", "--mode", "target", "--tid", "1", "-T", T1)
    adm(d, "--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")

    async def logged_in() -> tuple[dict[str, Any], ...]:
        async with Initiator.login(d.host, d.port, target=T1, initiator_name="iqn.x:h1"):
            return (await asyncio.to_thread(show, d, "session", "--tid", "1"),
                    await asyncio.to_thread(show, d, "conn", "--tid", "1"),
                    await asyncio.to_thread(show, d, "target"))
    sessions, conns, targets = asyncio.run(logged_in())
    (s,) = sessions["sessions"]
    assert sessions["tid"] == 1 and s["initiator"] == "iqn.x:h1" and s["alias"] is None
    assert s["connections"] == [{"cid": 0, "address": "127.0.0.1"}]
    assert s["params"]["HeaderDigest"] == "None"
    assert conns["connections"] == [{"sid": s["sid"], "cid": 0, "initiator": "iqn.x:h1",
                                     "address": "127.0.0.1"}]
    assert targets["targets"][0]["sessions"] == [{k: v for k, v in s.items() if k != "params"}]
    system = show(d, "system")
    assert system["state"] == "ready" and system["llds"] == [{"name": "iscsi", "state": "ready"}]
    assert {"name": "rdwr", "bsoflags": ["sync", "direct"]} in system["backing_stores"]
    assert system["portals"] == [{"address": "127.0.0.1", "port": d.port, "tpgt": 1}]
    assert show(d, "session", "--tid", "1")["sessions"] == []  # logged out


def test_json_only_with_show(daemons: tuple[RunningDaemon, RunningDaemon]) -> None:
    d, _ = daemons
    res = d.adm("--lld", "iscsi", "--op", "new", "--mode", "target", "--tid", "1", "-T", T1,
                "--json", check=False)
    assert res.returncode == 22
    assert res.stderr == "pytgtadm: --json applies to --op show only\n"
    res = d.adm("--lld", "iscsi", "--op", "show", "--mode", "target", "--tid", "9", "--json",
                check=False)
    assert res.returncode != 0 and res.stderr.count("\n") == 1  # tgtadm's error, one line


def test_requests_from_show_refuses_other_documents() -> None:
    accounts = {"schema": SCHEMA, "mode": "account", "accounts": ["u"],
                "discovery": {"incoming": [], "outgoing": None}}
    with pytest.raises(ValueError, match="not a pytgt.show/1 target document"):
        requests_from_show({"schema": "pytgt.show/2", "mode": "target"}, accounts, {})
    with pytest.raises(ValueError, match="no secret given for CHAP account u"):
        requests_from_show({"schema": SCHEMA, "mode": "target", "targets": []}, accounts, {})
