"""Backing-store path policy (pytgt.stores.paths) and its use when LUs are created;
files pytgt creates are never world-writable, whatever the umask."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pytgt.stores import paths
from pytgt.stores.paths import BackingPathError, resolve_backing_path
from tests.daemon.conftest import IQN, Admin

ROOT = Path(__file__).resolve().parents[2]
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs chown")


def image(directory: Path, name: str = "lun.img") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(bytes(4096))
    return path


def test_a_plain_file_in_a_private_directory_is_opened_as_named(tmp_path: Path) -> None:
    path = image(tmp_path / "images")
    assert resolve_backing_path(str(path)) == str(path)
    assert resolve_backing_path(str(tmp_path / "missing.img")) == str(tmp_path / "missing.img")


def test_a_symlink_is_refused_unless_allowed(tmp_path: Path) -> None:
    real = image(tmp_path / "images")
    link = tmp_path / "link.img"
    link.symlink_to(real)
    with pytest.raises(BackingPathError, match="symbolic link"):
        resolve_backing_path(str(link))
    assert resolve_backing_path(str(link), allow_symlinks=True) == str(real)


def test_a_dev_link_to_a_block_device_is_resolved(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    dev = tmp_path / "dev"
    disk = image(dev, "sdz")  # stands for a block device
    by_id = dev / "disk" / "by-id"
    by_id.mkdir(parents=True)
    (by_id / "wwn-0x5000").symlink_to(disk)
    (by_id / "not-a-disk").symlink_to(image(tmp_path / "elsewhere"))
    monkeypatch.setattr(paths, "DEV", f"{dev}/")
    monkeypatch.setattr(paths, "_is_block", lambda p: p == str(disk))
    assert resolve_backing_path(str(by_id / "wwn-0x5000")) == str(disk)
    with pytest.raises(BackingPathError):
        resolve_backing_path(str(by_id / "not-a-disk"))


@pytest.mark.skipif(not os.path.exists("/dev/loop0"), reason="no /dev/loop0")
def test_a_real_block_device_is_opened_as_named() -> None:
    assert resolve_backing_path("/dev/loop0") == "/dev/loop0"


def test_a_world_writable_directory_without_sticky_bit_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    path = image(shared)
    shared.chmod(0o777)
    with pytest.raises(BackingPathError, match="world-writable"):
        resolve_backing_path(str(path))
    shared.chmod(0o1777)  # like /tmp: our own file is safe from others
    assert resolve_backing_path(str(path)) == str(path)


@as_root
def test_someone_elses_file_or_link_in_a_shared_directory_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    path = image(shared)
    shared.chmod(0o1777)
    os.chown(path, 4242, 4242)
    with pytest.raises(BackingPathError, match="uid 4242"):
        resolve_backing_path(str(path))
    os.chown(path, 0, 0)
    image(tmp_path / "private")
    planted = shared / "images"
    planted.symlink_to(tmp_path / "private")
    os.lchown(planted, 4242, 4242)
    with pytest.raises(BackingPathError, match="symbolic link of uid 4242"):
        resolve_backing_path(str(planted / "lun.img"))


def test_lu_new_refuses_a_symlink_and_keeps_the_configured_path(
        admin: Admin, tmp_path: Path) -> None:
    real = image(tmp_path / "images")
    link = tmp_path / "link.img"
    link.symlink_to(real)
    admin.ok(mode="target", op="new", tid=1, targetname=IQN)
    rc, out = admin(mode="logicalunit", op="new", tid=1, lun=1, backing_store=str(link))
    assert rc == 22 and "symbolic link" in out and "\n" not in out.strip()
    admin.mgmt.allow_backing_symlinks = True
    admin.ok(mode="logicalunit", op="new", tid=1, lun=1, backing_store=str(link))
    show = admin.ok(mode="target", op="show")
    assert f"Backing store path: {link}\n" in show  # what the admin configured


def test_lu_new_applies_the_policy_to_every_store_type(admin: Admin, tmp_path: Path) -> None:
    """The faulty store wraps rdwr: the same symlink is refused through it."""
    real = image(tmp_path / "images")
    link = tmp_path / "link.img"
    link.symlink_to(real)
    admin.ok(mode="target", op="new", tid=1, targetname=IQN)
    rc, out = admin(mode="logicalunit", op="new", tid=1, lun=1, backing_store=str(link),
                    bstype="faulty")
    assert rc == 22 and "symbolic link" in out
    admin.ok(mode="logicalunit", op="new", tid=1, lun=2, backing_store="16M", bstype="memory")


def test_files_pytgtd_creates_are_never_world_writable(tmp_path: Path) -> None:
    """pytgtd --quickstart --persist under umask 000: state dir, sparse file, config."""
    env = dict(os.environ, PYTGT_STATE_DIR=str(tmp_path / "state"),
               PYTGT_RUN_DIR=str(tmp_path / "run"),
               PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = ("import os, signal, sys; os.umask(0); from pytgt.daemon import main; "
            "signal.alarm(60); sys.exit(main.main(sys.argv[1:]))")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "-f", "-C", "1", "--iscsi", "portal=127.0.0.1:0",
         "--quickstart", "4M", "--persist"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # bounded by the child's alarm
            if "connect with" in line:
                break
        subprocess.run([sys.executable, "-m", "pytgt.cli.pytgtadm", "-C", "1", "--op",
                        "update", "--mode", "target", "--tid", "1", "--name",
                        "MaxOutstandingR2T", "--value", "2"],
                       env=env, check=True, capture_output=True, timeout=30)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    created = [p for p in [tmp_path / "state", tmp_path / "run",
                           *(tmp_path / "state").rglob("*"), *(tmp_path / "run").rglob("*")]
               if p.exists()]
    names = {p.name for p in created}
    assert {"quickstart-lun1.img", "config.json"} <= names, names
    for p in created:
        mode = stat.S_IMODE(os.lstat(p).st_mode)
        assert not mode & (stat.S_IWOTH | stat.S_IWGRP), f"{p}: {mode:o}"
        if p.is_file():
            assert not mode & stat.S_IROTH, f"{p}: {mode:o}"
