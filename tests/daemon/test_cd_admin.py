"""``-Y cd`` through Management: creation, show, and media changes with ``path=``."""

from __future__ import annotations

from pathlib import Path

from pytgt.scsi.mmc import CdLogicalUnit
from tests.daemon.conftest import IQN, Admin
from tests.iso import iso_image


def _cd(admin: Admin, tmp_path: Path) -> CdLogicalUnit:
    iso = tmp_path / "a.iso"
    iso.write_bytes(iso_image("A", 32))
    admin.ok(mode="target", op="new", tid=1, targetname=IQN)
    admin.ok(mode="logicalunit", op="new", tid=1, lun=1, device_type="cd",
             backing_store=str(iso))
    lu = admin.mgmt.registry.targets[1].scsi.luns[1]
    assert isinstance(lu, CdLogicalUnit)
    return lu


def test_cd_created_and_shown(admin: Admin, tmp_path: Path) -> None:
    lu = _cd(admin, tmp_path)
    assert (lu.peripheral_type, lu.block_size, lu.num_blocks) == (5, 2048, 32)
    shown = admin.ok(mode="target", op="show")
    assert "            Type: cd/dvd\n" in shown
    assert "            Removable media: Yes\n" in shown


def test_media_change_and_refusals(admin: Admin, tmp_path: Path) -> None:
    lu = _cd(admin, tmp_path)
    new = tmp_path / "b.iso"
    new.write_bytes(iso_image("B", 24))
    admin.ok(mode="logicalunit", op="update", tid=1, lun=1, params=f"path={new}")
    assert lu.path == str(new) and lu.num_blocks == 24
    rc, _ = admin(mode="logicalunit", op="update", tid=1, lun=1,
                  params=f"path={tmp_path / 'missing.iso'}")
    assert rc != 0 and lu.path == str(new)  # a bad file leaves the medium in
    lu.set_prevent("n1", True)
    rc, _ = admin(mode="logicalunit", op="update", tid=1, lun=1, params="path=")
    assert rc != 0 and lu.loaded  # PREVENT MEDIUM REMOVAL holds the disc
    lu.set_prevent("n1", False)
    admin.ok(mode="logicalunit", op="update", tid=1, lun=1, params="path=")
    assert not lu.loaded and lu.store is None and lu.path == ""


def test_empty_drive_then_a_disc(admin: Admin, tmp_path: Path) -> None:
    """tgt makes a cd LU without -b: a drive with no disc, shown offline with no path."""
    admin.ok(mode="target", op="new", tid=1, targetname=IQN)
    admin.ok(mode="logicalunit", op="new", tid=1, lun=1, device_type="cd")
    lu = admin.mgmt.registry.targets[1].scsi.luns[1]
    assert isinstance(lu, CdLogicalUnit) and lu.store is None and not lu.loaded
    shown = admin.ok(mode="target", op="show")
    lun1 = shown[shown.index("LUN: 1"):]
    for line in ("Type: cd/dvd", "Size: 0 MB, Block size: 1", "Online: No",  # as tgtd
                 "Removable media: Yes", "Thin-provisioning: No", "Backing store type: mmc",
                 "Backing store path: None"):
        assert f"            {line}\n" in lun1, lun1
    iso = tmp_path / "a.iso"
    iso.write_bytes(iso_image("A", 32))
    admin.ok(mode="logicalunit", op="update", tid=1, lun=1, params=f"path={iso}")
    assert lu.loaded and lu.num_blocks == 32 and lu.bstype == "rdwr"
    shown = admin.ok(mode="target", op="show")
    assert "            Online: Yes\n" in shown[shown.index("LUN: 1"):]
    rc, _ = admin(mode="logicalunit", op="new", tid=1, lun=2)  # a disk still needs -b
    assert rc != 0


def test_a_disc_brings_an_offline_drive_online(admin: Admin, tmp_path: Path) -> None:
    """tgt's README.mmc: offline (no disc in the tray), swap, online again."""
    lu = _cd(admin, tmp_path)
    admin.ok(mode="logicalunit", op="update", tid=1, lun=1, params="online=0")
    shown = admin.ok(mode="target", op="show")
    assert "            Online: No\n" in shown[shown.index("LUN: 1"):]
    new = tmp_path / "b.iso"
    new.write_bytes(iso_image("B", 24))
    admin.ok(mode="logicalunit", op="update", tid=1, lun=1, params=f"path={new}")
    assert lu.online and lu.loaded


def test_tgt_mmc_store_name_is_accepted_and_shown(admin: Admin, tmp_path: Path) -> None:
    """tgtadm -E mmc (tgt's name for a cd's medium store) opens the ISO; show says mmc."""
    iso = tmp_path / "a.iso"
    iso.write_bytes(iso_image("A", 32))
    admin.ok(mode="target", op="new", tid=1, targetname=IQN)
    admin.ok(mode="logicalunit", op="new", tid=1, lun=1, device_type="cd", bstype="mmc",
             backing_store=str(iso))
    lu = admin.mgmt.registry.targets[1].scsi.luns[1]
    assert isinstance(lu, CdLogicalUnit) and lu.loaded and lu.bstype == "rdwr"
    shown = admin.ok(mode="target", op="show")
    assert "            Backing store type: mmc\n" in shown[shown.index("LUN: 1"):]
