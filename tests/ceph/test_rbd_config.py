"""An RBD LU through the management layer: ``-E rbd -b POOL/IMAGE --bsopts conf=...``,
``--op show``, the persisted configuration and targets.conf (``bs-type rbd``) round trip,
with the LU's identity coming back from the image, not from the tid and LUN."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ceph_dev_cluster import DevCluster

from pytgt.config import store, targets_conf
from pytgt.config.model import Registry
from pytgt.config.plan import Running, plan_execute, restore_requests
from pytgt.daemon.mgmt import Management
from pytgt.daemon.show import param_defaults
from pytgt.stores.rbd import RbdStore
from tests.ceph.conftest import need_bindings
from tests.daemon.conftest import Admin

IQN = "iqn.2026-12.org.pytgt:rbd-config"


@pytest.fixture
def admins() -> Iterator[list[Admin]]:
    """Fresh in-process daemons' management; their RBD stores closed afterwards."""
    made: list[Admin] = []
    yield made
    for admin in made:
        for target in admin.mgmt.registry.targets.values():
            for lu in target.scsi.luns.values():
                if isinstance(lu.store, RbdStore):
                    asyncio.run(lu.store.close())


def _admin(admins: list[Admin]) -> Admin:
    admin = Admin(Management(Registry(), portals=[("127.0.0.1", 3260)], control_port=0))
    admins.append(admin)
    return admin


def _rbd_lu(admin: Admin, tid: int, image: str, conf: Path) -> None:
    admin.ok(mode="target", op="new", tid=tid, targetname=f"{IQN}{tid}")
    admin.ok(mode="logicalunit", op="new", tid=tid, lun=1, bstype="rbd",
             backing_store=image, bsopts=f"conf={conf}")


def test_show_persist_and_restore(ceph: DevCluster, rbd_image: Callable[..., str],
                                  admins: list[Admin], tmp_path: Path) -> None:
    need_bindings()
    image = rbd_image("16M")
    first = _admin(admins)
    _rbd_lu(first, 1, image, ceph.conf)
    lu = first.mgmt.registry.targets[1].scsi.luns[1]
    assert isinstance(lu.store, RbdStore) and lu.scsi_id == lu.store.identity()
    shown = first.ok(mode="target", op="show")
    for line in ("Backing store type: rbd", f"Backing store path: {image}",
                 f"SCSI ID: {lu.scsi_id}", f"SCSI SN: {lu.scsi_id}", "Size: 17 MB"):
        assert line in shown, shown
    config = store.snapshot(first.mgmt.registry, param_defaults())
    spec = config.targets[0].luns[0]
    assert (spec.bstype, spec.path, spec.bsopts) == ("rbd", image, f"conf={ceph.conf}")
    assert "scsi_id" not in spec.params  # the image names the LU: nothing to save
    store.save(str(tmp_path / "config.json"), config)
    loaded = store.load(str(tmp_path / "config.json"))
    assert loaded is not None
    again = _admin(admins)  # a restarted daemon, under another tid
    loaded.targets[0].tid = 5
    for req in restore_requests(loaded):
        again.ok(**req)
    restored = again.mgmt.registry.targets[5].scsi.luns[1]
    assert restored.scsi_id == lu.scsi_id and restored.scsi_sn == lu.scsi_sn
    assert restored.bstype == "rbd" and restored.size == 16 << 20


def test_targets_conf_round_trip(ceph: DevCluster, rbd_image: Callable[..., str],
                                 admins: list[Admin]) -> None:
    need_bindings()
    image = rbd_image("8M")
    source = _admin(admins)
    _rbd_lu(source, 1, image, ceph.conf)
    text = targets_conf.render(store.snapshot(source.mgmt.registry, param_defaults()))
    assert "bs-type rbd" in text and f"conf={ceph.conf}" in text
    config, errors = targets_conf.parse_text(text)
    assert errors == []
    lun = config.targets[0].luns[0]
    assert (lun.bstype, lun.path, lun.bsopts) == ("rbd", image, f"conf={ceph.conf}")
    plan = plan_execute(config, Running())  # tgt-admin -e: no file check for rbd paths
    assert plan.warnings == []
    target = _admin(admins)
    for req in plan.requests():
        target.ok(**req)
    lu = target.mgmt.registry.targets[1].scsi.luns[1]
    assert lu.bstype == "rbd" and lu.scsi_id == source.mgmt.registry.targets[1] \
        .scsi.luns[1].scsi_id


def test_bad_image_is_refused(ceph: DevCluster, admins: list[Admin]) -> None:
    need_bindings()
    admin = _admin(admins)
    admin.ok(mode="target", op="new", tid=1, targetname=IQN)
    rc, out = admin(mode="logicalunit", op="new", tid=1, lun=1, bstype="rbd",
                    backing_store="rbd/missing", bsopts=f"conf={ceph.conf}")
    assert (rc, out) == (22, "invalid request")  # tgtadm's answer; the log says why
    assert 1 not in admin.mgmt.registry.targets[1].scsi.luns
