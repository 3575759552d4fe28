"""A real single-node Ceph (contrib/ceph_dev_cluster.py), started once per test session
for the tests that ask for it, and RBD images on it.

The fixtures are registered by tests/conftest.py, so that tests/ceph and tests/guest (a
kernel initiator in front of RBD gateways) share one cluster per session."""

from __future__ import annotations

import importlib.util
import itertools
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "contrib"))
from ceph_dev_cluster import DevCluster  # noqa: E402

_names = itertools.count(1)


def need_bindings() -> None:
    """The python3-rados/python3-rbd bindings: Debian's, seen through a venv made with
    --system-site-packages on /usr/bin/python3 (.ci/run does this)."""
    if importlib.util.find_spec("rbd") is None or importlib.util.find_spec("rados") is None:
        pytest.fail("python3-rbd / python3-rados are not importable: install them and run "
                    "the tests in a venv made with /usr/bin/python3 -m venv "
                    "--system-site-packages (see README)")


@pytest.fixture(scope="session")
def ceph() -> Iterator[DevCluster]:
    """The running cluster (pool ``rbd``); ``ceph.conf`` is its configuration file."""
    for tool in ("ceph-mon", "ceph-osd", "ceph-mgr", "rbd"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (apt-get install ceph-mon ceph-osd "
                        "ceph-mgr ceph-common)")
    cluster = DevCluster(tempfile.mkdtemp(prefix="pytgt-ceph-"))
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def rbd_image(ceph: DevCluster) -> Callable[..., str]:
    """Factory: ``rbd_image(size="64M", features=None)`` creates a fresh image in pool
    ``rbd`` and returns ``"rbd/NAME"`` (tgt's ``-b`` spelling)."""

    def make(size: str = "64M", features: str | None = None) -> str:
        name = f"img{next(_names)}"
        args = ["create", "--size", size, f"rbd/{name}"]
        if features is not None:
            args[1:1] = ["--image-feature", features] if features else []
        ceph.rbd(*args)
        return f"rbd/{name}"

    return make
