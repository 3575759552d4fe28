"""tgt's ``mode_page=`` LU parameter: the caching page (WCE) and the control page
(D_SENSE), at ``--op new`` and ``--op update``."""

from __future__ import annotations

from pytgt.config import store
from pytgt.config.plan import WRITE_CACHE_OFF_PAGE, WRITE_CACHE_ON_PAGE
from tests.daemon.conftest import IQN, Admin


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
