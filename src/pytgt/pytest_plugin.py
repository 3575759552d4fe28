"""pytgt's pytest plugin (entry point ``pytest11``): a real iSCSI target as a fixture.

``iscsi_target`` yields a running :class:`~pytgt.testing.ServedTarget` on 127.0.0.1
(an ephemeral port) with fault injection on, stopped after the test::

    def test_backup(iscsi_target):
        run_backup(iscsi_target.url)                  # iscsi://127.0.0.1:PORT/IQN/1
        iscsi_target.faults().eio(lba=100, blocks=8)  # MEDIUM ERROR from now on there
        iscsi_target.drop_connections()               # the network goes away

Parameters are :func:`pytgt.testing.serve`'s keywords (``size``, ``block_size``,
``bstype``/``backing``, ``luns``, ``chap``, ``thin``, ``faults``, ``params``), given by
the ``iscsi_target`` marker, by indirect parametrization, or both (the parameter
wins)::

    @pytest.mark.iscsi_target(size=16 << 20, luns=2, chap=("alice", "s3cret-s3cret"))
    def test_two_luns(iscsi_target): ...

    @pytest.mark.parametrize("iscsi_target", [{"block_size": 512}, {"block_size": 4096}],
                             indirect=True)
    def test_both_block_sizes(iscsi_target): ...

``iscsi_target_factory(**kw)`` starts more targets in one test (each its own daemon).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pytgt.testing import ServedTarget, serve

DEFAULTS: dict[str, Any] = {"size": 64 << 20, "faults": True}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "iscsi_target(**kw): the iscsi_target fixture's settings "
        "(size, block_size, bstype, backing, luns, chap, thin, faults, params)")


def _settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("iscsi_target")
    param = getattr(request, "param", None) or {}
    if not isinstance(param, dict):
        raise TypeError("iscsi_target parameters are dicts of pytgt.testing.serve keywords")
    return {**DEFAULTS, **(marker.kwargs if marker else {}), **param}


@pytest.fixture
def iscsi_target_factory() -> Iterator[Callable[..., ServedTarget]]:
    """Start targets with ``factory(**serve_keywords)``; all are stopped after the test."""
    with contextlib.ExitStack() as stack:
        counter = iter(range(1, 1 << 16))

        def start(**kw: Any) -> ServedTarget:
            kw.setdefault("iqn", f"iqn.2026-11.org.pytgt:test{next(counter)}")
            backing = kw.pop("backing", None)
            return stack.enter_context(serve(backing, **{**DEFAULTS, **kw}))

        yield start


@pytest.fixture
def iscsi_target(request: pytest.FixtureRequest) -> Iterator[ServedTarget]:
    """A running iSCSI target with fault injection; see the module's documentation."""
    kw = _settings(request)
    backing = kw.pop("backing", None)
    with serve(backing, **kw) as target:
        yield target
