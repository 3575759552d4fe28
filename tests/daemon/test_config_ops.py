"""The configuration operations of the control plane: dump, batch, mode_page, on_change,
and the Persister (save after each change, restore reporting every failure)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from pytgt.config import store
from pytgt.config.model import ConnectionInfo, NexusInfo, Registry
from pytgt.config.plan import WRITE_CACHE_OFF_PAGE, WRITE_CACHE_ON_PAGE
from pytgt.daemon.config_ops import Persister, param_defaults
from pytgt.daemon.mgmt import Management
from tests.daemon.conftest import IQN, Admin


def test_dump_reports_config_in_use_and_defaults(configured: Admin, lun_file: str) -> None:
    configured.ok(mode="target", op="update", tid=1, name="MaxBurstLength", value="65536")
    configured.ok(mode="logicalunit", op="update", tid=1, lun=1,
                  params={"vendor_id": "VEND"})
    configured.mgmt.registry.targets[1].nexuses[1] = NexusInfo(
        1, "iqn.x:i", "", {0: ConnectionInfo(0, "127.0.0.1")})
    doc = json.loads(configured.ok(mode="system", op="dump"))
    assert doc["in_use"] == [1]
    assert doc["param_defaults"]["MaxBurstLength"] == "262144"
    (t,) = doc["config"]["targets"]
    assert t == {"name": IQN, "tid": 1, "initiator_addresses": ["ALL"],
                 "iscsi_params": {"MaxBurstLength": "65536"},
                 "luns": [{"lun": 1, "path": lun_file, "bstype": "rdwr",
                           "params": {"vendor_id": "VEND"}}]}


def test_batch_runs_in_order_and_stops_at_the_first_failure(admin: Admin) -> None:
    reqs: list[dict[str, Any]] = [
        {"mode": "target", "op": "new", "tid": 1, "targetname": IQN},
        {"mode": "target", "op": "new", "tid": 1, "targetname": IQN},
        {"mode": "target", "op": "new", "tid": 2, "targetname": IQN + "2"},
    ]
    out = json.loads(admin.ok(mode="system", op="batch", requests=reqs))
    assert out == [[0, ""], [22, "this target already exists"]]
    assert sorted(admin.mgmt.registry.targets) == [1]
    out = json.loads(admin.ok(mode="system", op="batch", requests=reqs, ignore_errors=True))
    assert [rc for rc, _ in out] == [22, 22, 0]
    assert sorted(admin.mgmt.registry.targets) == [1, 2]


@pytest.mark.parametrize("requests", [None, "x", [1], [{"mode": "system", "op": "batch"}]])
def test_batch_refuses_malformed_and_nested(admin: Admin, requests: Any) -> None:
    rc, out = admin(mode="system", op="batch", requests=requests)
    if rc == 0:
        assert json.loads(out) == [[22, "invalid request"]]
    else:
        assert (rc, out) == (22, "invalid request")


def test_mode_page_sets_write_cache_and_d_sense_defaults(configured: Admin) -> None:
    lu = configured.mgmt.registry.targets[1].scsi.luns[1]
    configured.ok(mode="logicalunit", op="update", tid=1, lun=1,
                  params={"mode_page": WRITE_CACHE_OFF_PAGE})
    assert not lu.mode.wce
    lu.mode.reset()  # a LU reset keeps the configured default
    assert not lu.mode.wce
    configured.ok(mode="logicalunit", op="update", tid=1, lun=1,
                  params={"mode_page": WRITE_CACHE_ON_PAGE})
    assert lu.mode.wce
    configured.ok(mode="logicalunit", op="update", tid=1, lun=1,
                  params="mode_page=0x0a:0:10:0x04:0:0:0:0:0:0:0:0:0")
    assert lu.sense_format == 1
    for bad in ("0x1c:0:10:0", "8:x", "8:0"):
        assert configured(mode="logicalunit", op="update", tid=1, lun=1,
                          params={"mode_page": bad}) == (22, "invalid request")


def test_new_lu_with_mode_page_and_bsopts(admin: Admin) -> None:
    admin.ok(mode="target", op="new", tid=1, targetname=IQN)
    admin.ok(mode="logicalunit", op="new", tid=1, lun=1, backing_store="x", bstype="null",
             bsopts="size=1G", params={"mode_page": WRITE_CACHE_OFF_PAGE})
    lu = admin.mgmt.registry.targets[1].scsi.luns[1]
    assert lu.bsopts == "size=1G" and not lu.mode.wce
    spec = store.snapshot_lu(1, lu)
    assert (spec.bstype, spec.bsopts, spec.write_cache) == ("null", "size=1G", False)


def test_on_change_runs_after_changes_only(admin: Admin) -> None:
    calls: list[int] = []

    async def on_change() -> None:
        calls.append(1)

    admin.mgmt.on_change = on_change
    admin.ok(mode="target", op="new", tid=1, targetname=IQN)
    admin.ok(mode="target", op="show")
    admin.ok(mode="system", op="dump")
    admin(mode="target", op="new", tid=1, targetname=IQN)  # fails: no save
    admin.ok(mode="system", op="batch", requests=[
        {"mode": "target", "op": "new", "tid": 2, "targetname": IQN + "2"},
        {"mode": "target", "op": "new", "tid": 3, "targetname": IQN + "3"}])
    assert calls == [1, 1]  # once per successful change, once per batch


def test_persister_saves_and_a_failed_save_is_reported(tmp_path: Path) -> None:
    mgmt = Management(Registry())
    persister = Persister(mgmt, str(tmp_path / "state" / "config.json"))
    mgmt.on_change = persister
    admin = Admin(mgmt)
    admin.ok(mode="target", op="new", tid=1, targetname=IQN)
    loaded = store.load(persister.path)
    assert loaded is not None and [t.name for t in loaded.targets] == [IQN]
    persister.path = str(tmp_path / "missing-dir-is-a-file" / "x" / "config.json")
    (tmp_path / "missing-dir-is-a-file").write_text("")
    rc, out = admin(mode="target", op="new", tid=2, targetname=IQN + "2")
    assert rc == 22 and out.startswith("the change is applied but was not saved")


def test_restore_reports_every_failure_and_restores_the_rest(tmp_path: Path,
                                                             lun_file: str) -> None:
    path = tmp_path / "config.json"
    source = Admin(Management(Registry()))
    source.ok(mode="target", op="new", tid=1, targetname=IQN)
    source.ok(mode="logicalunit", op="new", tid=1, lun=1, backing_store=lun_file)
    source.ok(mode="target", op="new", tid=2, targetname=IQN + "2")
    source.ok(mode="account", op="new", user="u", password="p")
    source.ok(mode="account", op="bind", user="u")  # discovery
    config = store.snapshot(source.mgmt.registry, param_defaults())
    config.targets[0].luns.append(store.snapshot_lu(1, source.mgmt.registry.targets[1]
                                                    .scsi.luns[1]))
    config.targets[0].luns[-1].lun = 2
    config.targets[0].luns[-1].path = lun_file + ".gone"
    store.save(str(path), config)
    mgmt = Management(Registry())
    persister = Persister(mgmt, str(path))
    errors = asyncio.run(persister.restore())
    assert errors == ["restoring logicalunit new tid=1 lun=2 "
                      f"backing_store={lun_file}.gone: invalid request"]
    assert sorted(mgmt.registry.targets) == [1, 2]
    assert mgmt.registry.incoming_accounts == ["u"]
    assert (tmp_path / "config.json.bak").exists()


def test_restore_of_a_malformed_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{")
    errors = asyncio.run(Persister(Management(Registry()), str(path)).restore())
    assert len(errors) == 1 and "malformed configuration" in errors[0]
