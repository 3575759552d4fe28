"""``--mode system --op dump``: the running configuration, sessions, defaults."""

from __future__ import annotations

import json

from pytgt.config.model import ConnectionInfo, NexusInfo
from tests.daemon.conftest import IQN, Admin


def test_dump_reports_config_in_use_and_defaults(configured: Admin, lun_file: str) -> None:
    configured.ok(mode="target", op="update", tid=1, name="MaxBurstLength", value="65536")
    configured.ok(mode="logicalunit", op="update", tid=1, lun=1,
                  params={"vendor_id": "VEND"})
    configured.mgmt.registry.targets[1].nexuses[1] = NexusInfo(
        1, "iqn.x:i", "", {0: ConnectionInfo(0, "127.0.0.1")})
    doc = json.loads(configured.ok(mode="system", op="dump"))
    assert doc["in_use"] == [1]
    assert doc["param_defaults"]["MaxBurstLength"] == "262144"
    (t,) = doc["config"]["targets"]
    assert t == {"name": IQN, "tid": 1, "initiator_addresses": ["ALL"],
                 "iscsi_params": {"MaxBurstLength": "65536"},
                 "luns": [{"lun": 1, "path": lun_file, "bstype": "rdwr",
                           "params": {"vendor_id": "VEND"}}]}
