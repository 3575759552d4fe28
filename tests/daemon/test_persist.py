"""``pytgtd --persist``: on_change after changes only, the Persister saving after each
change and restoring with every failure reported."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pytgt.config import store
from pytgt.config.model import Registry
from pytgt.daemon.mgmt import Management
from pytgt.daemon.persist import Persister
from pytgt.daemon.show import param_defaults
from tests.daemon.conftest import IQN, Admin


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
