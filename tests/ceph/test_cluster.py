"""The dev cluster itself: it starts, takes RBD I/O, and the bindings see it."""

from __future__ import annotations

from collections.abc import Callable

from ceph_dev_cluster import DevCluster

from tests.ceph.conftest import need_bindings


def test_cluster_serves_rbd(ceph: DevCluster, rbd_image: Callable[..., str]) -> None:
    need_bindings()
    import rados
    import rbd

    spec = rbd_image("8M")
    pool, name = spec.split("/")
    with rados.Rados(conffile=str(ceph.conf)) as cluster, cluster.open_ioctx(pool) as ioctx, \
            rbd.Image(ioctx, name) as image:
        image.write(b"pytgt" * 100, 4096)
        assert image.read(4096, 500) == b"pytgt" * 100
        assert image.size() == 8 << 20
