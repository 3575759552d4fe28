"""``--mode system --op batch``: in order, one lock, stops at the first failure."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.daemon.conftest import IQN, Admin


def test_batch_runs_in_order_and_stops_at_the_first_failure(admin: Admin) -> None:
    reqs: list[dict[str, Any]] = [
        {"mode": "target", "op": "new", "tid": 1, "targetname": IQN},
        {"mode": "target", "op": "new", "tid": 1, "targetname": IQN},
        {"mode": "target", "op": "new", "tid": 2, "targetname": IQN + "2"},
    ]
    out = json.loads(admin.ok(mode="system", op="batch", requests=reqs))
    assert out == [[0, ""], [22, "this target already exists"]]
    assert sorted(admin.mgmt.registry.targets) == [1]
    out = json.loads(admin.ok(mode="system", op="batch", requests=reqs, ignore_errors=True))
    assert [rc for rc, _ in out] == [22, 22, 0]
    assert sorted(admin.mgmt.registry.targets) == [1, 2]


@pytest.mark.parametrize("requests", [None, "x", [1], [{"mode": "system", "op": "batch"}]])
def test_batch_refuses_malformed_and_nested(admin: Admin, requests: Any) -> None:
    rc, out = admin(mode="system", op="batch", requests=requests)
    if rc == 0:
        assert json.loads(out) == [[22, "invalid request"]]
    else:
        assert (rc, out) == (22, "invalid request")
