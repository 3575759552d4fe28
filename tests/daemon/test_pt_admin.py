"""``-Y pt --bstype sg`` through Management: tgt's pairing rule, one-line refusals of a
``-b`` that is no SCSI generic device, show, persisted configuration and targets.conf
(the sg store on a fake ioctl: this host has no SCSI device)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pytgt.config.model import Registry
from pytgt.config.store import snapshot
from pytgt.config.targets_conf import parse_text, render
from pytgt.daemon.mgmt import Management
from pytgt.scsi.passthrough import PassthroughUnit
from pytgt.stores import open_store
from pytgt.stores.base import BackingStore
from pytgt.stores.sg import SgStore
from tests.daemon.conftest import IQN, Admin


def _opener(path: str, *, bsopts: str = "", bsoflags: str = "",
            size: int | None = None) -> BackingStore:
    return SgStore(path, os.open(os.devnull, os.O_RDWR), ioctl=lambda *a: 0)


def _open(bstype: str, path: str, **kw: Any) -> BackingStore:
    return _opener(path, **kw) if bstype == "sg" and path == "/dev/sg3" else \
        open_store(bstype, path, **kw)


@pytest.fixture
def pt_admin() -> Admin:
    admin = Admin(Management(Registry(), portals=[("127.0.0.1", 3260)], control_port=0,
                             open_store=_open))
    admin.ok(mode="target", op="new", tid=1, targetname=IQN)
    return admin


def _new(admin: Admin, **kw: Any) -> tuple[int, str]:
    return admin(mode="logicalunit", op="new", tid=1, lun=1, **kw)


def test_pt_and_sg_go_together(pt_admin: Admin, lun_file: str) -> None:
    assert _new(pt_admin, device_type="pt", backing_store=lun_file) == \
        (22, "device-type pt needs bstype sg or bsg")
    assert _new(pt_admin, bstype="sg", backing_store="/dev/sg3") == \
        (22, "bstype sg needs device-type pt, not disk")
    assert _new(pt_admin, bstype="bsg", backing_store="/dev/bsg/2:0:0:1") == \
        (22, "bstype bsg needs device-type pt, not disk")


def test_a_backing_store_that_is_no_sg_device_gets_one_line(pt_admin: Admin,
                                                            tmp_path: Path) -> None:
    rc, out = _new(pt_admin, device_type="pt", bstype="sg", backing_store="/dev/null")
    assert rc == 22 and out.startswith("/dev/null: not a SCSI generic device (a character "
                                       "device of major 1; bstype sg needs /dev/sgN")
    assert _new(pt_admin, device_type="pt", bstype="sg") == \
        (22, "'backing-store' option is necessary")
    rc, out = _new(pt_admin, device_type="pt", bstype="sg",
                   backing_store=str(tmp_path / "nope"))
    assert (rc, out) == (22, f"{tmp_path / 'nope'}: No such file or directory")
    assert 1 not in pt_admin.mgmt.registry.targets[1].scsi.luns
    rc, out = _new(pt_admin, device_type="pt", bstype="bsg", backing_store="/dev/null")
    assert rc == 22 and out == ("/dev/null: not a bsg device (a character device 1:3; "
                                "bstype bsg needs /dev/bsg/H:C:T:L)")


def test_a_pt_lu_is_shown_and_saved_as_tgt_has_it(pt_admin: Admin) -> None:
    pt_admin.ok(mode="logicalunit", op="new", tid=1, lun=1, device_type="pt", bstype="sg",
                backing_store="/dev/sg3")
    lu = pt_admin.mgmt.registry.targets[1].scsi.luns[1]
    assert isinstance(lu, PassthroughUnit)
    shown = pt_admin.ok(mode="target", op="show")
    block = shown[shown.index("        LUN: 1\n"):shown.index("    Account information:")]
    assert block == (
        "        LUN: 1\n"
        "            Type: passthrough\n"
        "            SCSI ID: IET     00010001\n"
        "            SCSI SN: beaf11\n"
        "            Size: 0 MB, Block size: 1\n"
        "            Online: Yes\n"
        "            Removable media: No\n"
        "            Prevent removal: No\n"
        "            Readonly: No\n"
        "            SWP: No\n"
        "            Thin-provisioning: No\n"
        "            Backing store type: sg\n"
        "            Backing store path: /dev/sg3\n"
        "            Backing store flags: \n")
    assert "    passthrough\n" in pt_admin.ok(mode="system", op="show")
    spec = snapshot(pt_admin.mgmt.registry)
    conf = render(spec)
    assert "\t<backing-store /dev/sg3>\n\t\tlun 1\n\t\tbs-type sg\n\t\tdevice-type pt\n" in conf
    again, warnings = parse_text(conf)
    assert warnings == []
    (lun,) = again.targets[0].luns
    assert (lun.path, lun.bstype, lun.device_type, lun.blocksize, lun.params) == \
        ("/dev/sg3", "sg", "pt", None, {})
    rc, out = pt_admin(mode="logicalunit", op="update", tid=1, lun=1, params="readonly=1")
    assert rc == 22
    pt_admin.ok(mode="logicalunit", op="delete", tid=1, lun=1)


def test_pytgt_admin_lets_pt_through() -> None:
    from pytgt.cli.pytgt_admin import check_supported

    config, warnings = parse_text(f"<target {IQN}>\n  <backing-store /dev/sg3>\n"
                                  "    bs-type sg\n    device-type pt\n  </backing-store>\n"
                                  "</target>\n")
    assert warnings == []
    check_supported(config)  # raises AdminError for an unsupported type or store
