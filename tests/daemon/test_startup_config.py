"""``pytgtd --config FILE`` at start: a targets.conf's targets are added, running ones kept."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pytgt.config.model import Registry
from pytgt.daemon.mgmt import Management
from pytgt.daemon.startup_config import apply_conf_file
from tests.daemon.conftest import IQN, Admin


def test_conf_file_adds_targets_and_never_removes_running_ones(tmp_path: Path,
                                                               lun_file: str) -> None:
    mgmt = Management(Registry())
    Admin(mgmt).ok(mode="target", op="new", tid=1, targetname=IQN + "-running")
    conf = tmp_path / "targets.conf"
    conf.write_text(f"<target {IQN}>\n    backing-store {lun_file}\n"
                    f"    initiator-address ALL\n</target>\n")
    assert asyncio.run(apply_conf_file(mgmt, str(conf))) == []
    targets = {t.name: t for t in mgmt.registry.targets.values()}
    assert sorted(targets) == [IQN, IQN + "-running"]
    assert sorted(targets[IQN].scsi.luns) == [0, 1]
    assert targets[IQN].initiator_addresses == ["ALL"]


def test_conf_file_reports_each_failed_request(tmp_path: Path) -> None:
    mgmt = Management(Registry())
    conf = tmp_path / "targets.conf"
    conf.write_text(f"<target {IQN}>\n    backing-store {tmp_path}\n</target>\n")  # a directory
    errors = asyncio.run(apply_conf_file(mgmt, str(conf)))
    assert len(errors) == 1 and errors[0].startswith(f"{conf}: logicalunit new tid=1")
    assert [t.name for t in mgmt.registry.targets.values()] == [IQN]
