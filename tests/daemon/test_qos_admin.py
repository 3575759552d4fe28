"""QoS limits through the control plane: set on --op new and live on --op update, shown,
dumped as targets.conf, restored, and planned by pytgt-admin --update as a live update."""

from __future__ import annotations

import json

import pytest

from pytgt.config.plan import Running, plan_update, restore_requests
from pytgt.config.spec import ConfigSpec
from pytgt.config.targets_conf import ConfigError, parse_text, render
from pytgt.daemon.errors import EXIT_EINVAL
from tests.daemon.conftest import IQN, Admin


def _dump(admin: Admin) -> ConfigSpec:
    return ConfigSpec.from_dict(json.loads(admin.ok(mode="system", op="dump"))["config"])


def test_limits_live_shown_and_cleared(configured: Admin) -> None:
    admin = configured
    lu = admin.mgmt.registry.targets[1].scsi.luns[1]
    assert "QoS" not in admin.ok(mode="target", op="show")  # tgt's layout while unlimited
    admin.ok(mode="logicalunit", op="update", tid=1, lun=1, params="max_iops=500,max_bps=10M")
    assert lu.qos is not None and (lu.max_iops, lu.max_bps) == (500, 10 << 20)
    shown = admin.ok(mode="target", op="show")
    assert "            QoS: max_iops=500, max_bps=10485760\n" in shown
    assert "            QoS delayed: 0 of 0 commands\n" in shown
    admin.ok(mode="logicalunit", op="update", tid=1, lun=1, params="max_bps=0")
    assert "QoS: max_iops=500, max_bps=unlimited" in admin.ok(mode="target", op="show")
    admin.ok(mode="logicalunit", op="update", tid=1, lun=1, params="max_iops=0")
    assert lu.qos is None


def test_bad_limit_is_refused(configured: Admin) -> None:
    rc, out = configured(mode="logicalunit", op="update", tid=1, lun=1, params="max_iops=-5")
    assert rc == EXIT_EINVAL and "\n" not in out.strip()
    assert configured.mgmt.registry.targets[1].scsi.luns[1].qos is None


def test_limits_on_new_lu_dumped_and_restored(admin: Admin, lun_file: str) -> None:
    admin.ok(mode="target", op="new", tid=1, targetname=IQN)
    admin.ok(mode="logicalunit", op="new", tid=1, lun=1, backing_store=lun_file,
             params="max_iops=2000,max_bps=64M")
    config = _dump(admin)
    assert config.targets[0].luns[0].params == {"max_iops": "2000", "max_bps": str(64 << 20)}
    text = render(config)
    assert "\t\tmax_iops 2000\n" in text and f"\t\tmax_bps {64 << 20}\n" in text
    parsed, _warnings = parse_text(text)
    assert parsed.targets[0].luns[0].params == config.targets[0].luns[0].params
    # what --persist restores: the same requests into a fresh daemon
    fresh = Admin(type(admin.mgmt)(type(admin.mgmt.registry)()))
    for req in restore_requests(parsed):
        fresh.ok(**req)
    lu = fresh.mgmt.registry.targets[1].scsi.luns[1]
    assert (lu.max_iops, lu.max_bps) == (2000, 64 << 20)


def test_conf_directives_and_update_plan(configured: Admin, lun_file: str) -> None:
    """A changed limit in targets.conf becomes one live logicalunit update."""
    conf = (f"<target {IQN}>\n  <backing-store {lun_file}>\n    lun 1\n    max_iops 750\n"
            f"  </backing-store>\n  initiator-address ALL\n</target>\n")
    config, _ = parse_text(conf)
    assert config.targets[0].luns[0].params == {"max_iops": "750"}
    running = Running(_dump(configured), in_use={1})
    plan = plan_update(config, running, "ALL", force=True)
    assert plan.requests() == [{"mode": "logicalunit", "op": "update", "tid": 1, "lun": 1,
                                "params": {"max_iops": "750"}}]


def test_conf_rejects_bad_limit() -> None:
    text = ("<target iqn.2026-11.org.pytgt:q>\n  backing-store /dev/null\n  max_bps fast\n"
            "</target>\n")
    with pytest.raises(ConfigError) as exc:
        parse_text(text)
    assert any("max_bps" in line for line in exc.value.errors)
