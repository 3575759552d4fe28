"""QEMU's iSCSI block driver (libiscsi inside qemu-img) against pytgtd, as KVM hosts use it."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import RunningDaemon
from tests.interop.conftest import make_target, need

IQN = "iqn.2026-11.org.pytgt:qemu"
SIZE = 64 << 20


@pytest.fixture(scope="module")
def qemu_url(daemon: RunningDaemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    need("qemu-img")
    backing = tmp_path_factory.mktemp("qemu") / "lun1.img"
    yield make_target(daemon, 2, IQN, backing, SIZE)


def qemu_img(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["qemu-img", *args], capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"qemu-img {' '.join(args)}: {res.stderr}"
    return res


def test_qemu_img_info_reports_the_lun_size(qemu_url: str) -> None:
    info = json.loads(qemu_img("info", "--output=json", qemu_url).stdout)
    assert info["virtual-size"] == SIZE


def test_qemu_img_convert_in_and_out_is_byte_identical(qemu_url: str, tmp_path: Path) -> None:
    src, back = tmp_path / "vm.raw", tmp_path / "back.raw"
    src.write_bytes(os.urandom(SIZE))
    qemu_img("convert", "-n", "-f", "raw", "-O", "raw", str(src), qemu_url)
    qemu_img("convert", "-f", "raw", "-O", "raw", qemu_url, str(back))
    assert back.read_bytes() == src.read_bytes()
    qemu_img("compare", "-f", "raw", "-F", "raw", str(src), qemu_url)
