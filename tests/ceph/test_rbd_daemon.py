"""pytgtd serving an RBD LU (``-E rbd -b rbd/IMG --bsopts conf=...``): libiscsi's whole
conformance suite, live resize seen by an initiator, and the one-line answer when the
Ceph bindings are missing."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ceph_dev_cluster import DevCluster

from tests.ceph.conftest import need_bindings
from tests.helpers import RunningDaemon, running_daemon, start_daemon
from tests.interop.conftest import need
from tests.interop.test_conformance_full import FULL_RUN, LU_SIZE, assert_clean, iscsi_test_cu

IQN = "iqn.2026-12.org.pytgt:rbd"


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[RunningDaemon]:
    with running_daemon(tmp_path) as d:
        yield d


def rbd_target(d: RunningDaemon, tid: int, image: str, conf: Path) -> str:
    """Target ``tid`` with the RBD image as LUN 1, open to all initiators; its URL."""
    iqn = f"{IQN}{tid}"
    d.adm("--op", "new", "--mode", "target", "--tid", str(tid), "-T", iqn)
    d.adm("--op", "new", "--mode", "logicalunit", "--tid", str(tid), "--lun", "1",
          "-E", "rbd", "-b", image, "--bsopts", f"conf={conf}")
    d.adm("--op", "bind", "--mode", "target", "--tid", str(tid), "-I", "ALL")
    return d.url(iqn, 1)


@pytest.mark.timeout(FULL_RUN + 60)
def test_rbd_lu_passes_everything(ceph: DevCluster, rbd_image: Callable[..., str],
                                  daemon: RunningDaemon) -> None:
    need_bindings()
    url = rbd_target(daemon, 1, rbd_image(f"{LU_SIZE >> 20}M"), ceph.conf)
    assert_clean(iscsi_test_cu("ALL", url))


def _capacity(url: str) -> int:
    need("iscsi-readcapacity16")
    out = subprocess.run(["iscsi-readcapacity16", url], capture_output=True, text=True,
                         timeout=60).stdout
    m = re.search(r"Total size:\s*(\d+)", out)
    assert m, out
    return int(m.group(1))


def test_rbd_resize_then_rescan(ceph: DevCluster, rbd_image: Callable[..., str],
                                daemon: RunningDaemon) -> None:
    need_bindings()
    image = rbd_image("16M")
    url = rbd_target(daemon, 2, image, ceph.conf)
    assert _capacity(url) == 16 << 20
    ceph.rbd("resize", "--size", "48M", image)
    assert _capacity(url) == 16 << 20  # exported size changes only on rescan
    daemon.adm("--op", "update", "--mode", "logicalunit", "--tid", "2", "--lun", "1",
               "--params", "rescan=1")
    assert _capacity(url) == 48 << 20
    assert "Size: 50 MB" in daemon.adm("--op", "show", "--mode", "target").stdout


def test_missing_bindings_answer_one_line(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    for name in ("rados", "rbd"):  # found before Debian's dist-packages
        (blocked / f"{name}.py").write_text("raise ImportError('blocked by the test')\n")
    monkeypatch.setenv("PYTHONPATH", str(blocked))
    d = start_daemon(tmp_path)
    try:
        d.adm("--op", "new", "--mode", "target", "--tid", "1", "-T", IQN)
        res = d.adm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1",
                    "-E", "rbd", "-b", "rbd/img", check=False)
        assert res.returncode != 0
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "python3-rbd" in lines[0] and "python3-rados" in lines[0]
        file = tmp_path / "disk.img"
        file.write_bytes(bytes(1 << 20))
        d.adm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1",
              "-b", str(file))  # nothing else breaks
    finally:
        assert d.stop() == 0
