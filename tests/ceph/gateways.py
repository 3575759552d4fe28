"""Two pytgtd gateways on one RBD image, for the tests: gateway A on 127.0.0.1 with
portal group tag 1, gateway B on 127.0.0.2 with tag 2, the same target IQN and LUN 1."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ceph_dev_cluster import DevCluster

from tests.helpers import RunningDaemon, start_daemon

IQN = "iqn.2026-12.org.pytgt:rbd-shared"


@dataclass
class Gateways:
    a: RunningDaemon
    b: RunningDaemon
    image: str

    @property
    def urls(self) -> tuple[str, str]:
        return self.a.url(IQN, 1), self.b.url(IQN, 1)


def start_gateway(tmp: Path, ceph: DevCluster, image: str, host: str, tpgt: int,
                  *lu_args: str, port: int = 0) -> RunningDaemon:
    """A pytgtd on ``host`` (``port``; 0: an ephemeral one) with tag ``tpgt`` exporting
    ``image`` as LUN 1 of IQN."""
    d = start_daemon(tmp, host=host, extra=("--iscsi", f"tpgt={tpgt}"), port=port)
    try:
        d.adm("--lld", "iscsi", "--op", "new", "--mode", "target", "--tid", "1", "-T", IQN)
        d.adm("--lld", "iscsi", "--op", "new", "--mode", "logicalunit", "--tid", "1",
              "--lun", "1", "-E", "rbd", "-b", image, "--bsopts", f"conf={ceph.conf}",
              *lu_args)
        d.adm("--lld", "iscsi", "--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")
    except BaseException:
        d.proc.kill()
        d.proc.wait(timeout=10)
        raise
    return d


@contextmanager
def two_gateways(tmp: Path, ceph: DevCluster, image: str,
                 *lu_args: str) -> Iterator[Gateways]:
    a = start_gateway(tmp / "a", ceph, image, "127.0.0.1", 1, *lu_args)
    try:
        b = start_gateway(tmp / "b", ceph, image, "127.0.0.2", 2, *lu_args)
    except BaseException:
        a.stop()
        raise
    gws = Gateways(a, b, image)
    try:
        yield gws
    finally:  # a test may have restarted one: stop what gws holds at the end too
        for d in {id(d): d for d in (b, a, gws.b, gws.a)}.values():
            if d.proc.poll() is None:
                d.stop()
