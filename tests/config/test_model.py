"""The configuration model: ACL semantics (tgt's), name lookup, discovery accounts."""

from __future__ import annotations

import pytest

from pytgt.config.model import Registry, Target


def _target(**kw: object) -> Target:
    return Target(tid=1, name="iqn.2026-11.org.example:t", scsi=None, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("addresses, names, initiator, address, allowed", [
    ([], [], "iqn.a", "10.0.0.1", False),
    (["ALL"], [], "iqn.a", "10.0.0.1", True),
    (["all"], [], "iqn.a", "::1", True),
    (["10.0.0.0/8"], [], "iqn.a", "10.1.2.3", True),
    (["10.0.0.0/8"], [], "iqn.a", "192.168.0.1", False),
    (["10.0.0.0/8"], [], "iqn.a", "::ffff:10.1.2.3", True),
    (["192.168.1.1"], [], "iqn.a", "192.168.1.1", True),
    (["[fe80::1]"], [], "iqn.a", "fe80::1%eth0", True),
    (["notanaddress"], [], "iqn.a", "10.0.0.1", False),
    ([], ["iqn.a"], "iqn.a", "10.0.0.1", True),
    ([], ["iqn.a"], "iqn.b", "10.0.0.1", False),
    (["ALL"], ["iqn.a"], "iqn.b", "10.0.0.1", False),
    (["10.0.0.0/8"], ["iqn.a"], "iqn.a", "192.168.0.1", False),
])
def test_acl(addresses: list[str], names: list[str], initiator: str, address: str,
             allowed: bool) -> None:
    t = _target(initiator_addresses=addresses, initiator_names=names)
    assert t.allows(initiator, address) is allowed


def test_by_name_is_case_insensitive() -> None:
    reg = Registry()
    t = _target()
    reg.targets[1] = t
    assert reg.by_name("IQN.2026-11.ORG.EXAMPLE:T") is t
    assert reg.by_name("iqn.other:x") is None


def test_defaults() -> None:
    reg = Registry()
    assert (reg.state, reg.incoming_accounts, reg.outgoing_account) == ("ready", [], None)
    t = _target()
    assert (t.state, t.iscsi_params, t.nexuses, t.outgoing_account) == ("ready", {}, {}, None)
