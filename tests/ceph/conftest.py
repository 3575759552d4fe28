"""The Ceph tests' fixtures, ``ceph`` and ``rbd_image``, live in tests/ceph/cluster.py and
are registered suite-wide by tests/conftest.py (one cluster per session, shared with
tests/guest); ``need_bindings`` is re-exported here for the tests that import it."""

from __future__ import annotations

from tests.ceph.cluster import need_bindings

__all__ = ["need_bindings"]
