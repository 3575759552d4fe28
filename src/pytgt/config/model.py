"""The configuration model in the admin's nouns (rtslib style): targets, LUs, ACLs, accounts.

These plain objects are shared by the daemon's control plane, the iSCSI login path
(target lookup, ACL checks, discovery) and the CLIs. They hold no sockets.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytgt.scsi.target import ScsiTarget


@dataclass
class ConnectionInfo:
    """One iSCSI connection of an I_T nexus, for ``--op show``."""

    cid: int
    address: str  # initiator IP address


@dataclass
class NexusInfo:
    """One logged-in session (I_T nexus), kept up to date by the iSCSI layer."""

    nexus_id: int  # tgt's "I_T nexus: N" (we use the TSIH)
    initiator_name: str
    initiator_alias: str = ""
    connections: dict[int, ConnectionInfo] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)  # negotiated keys


@dataclass
class Account:
    """A CHAP account (tgtadm --mode account)."""

    user: str
    password: str


@dataclass
class Target:
    """One iSCSI target (tgtadm --mode target)."""

    tid: int
    name: str
    scsi: ScsiTarget
    state: str = "ready"  # "ready" or "offline"
    alias: str = ""
    initiator_addresses: list[str] = field(default_factory=list)  # "ALL", IPs, CIDRs
    initiator_names: list[str] = field(default_factory=list)
    incoming_accounts: list[str] = field(default_factory=list)
    outgoing_account: str | None = None
    iscsi_params: dict[str, str] = field(default_factory=dict)  # --op update --params overrides
    nexuses: dict[int, NexusInfo] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def allows(self, initiator_name: str, address: str) -> bool:
        """ACL check (tgt semantics): an address rule and, if any names are bound, a name rule."""
        if self.initiator_names and initiator_name not in self.initiator_names:
            return False
        if not self.initiator_addresses:
            return bool(self.initiator_names)
        return any(_address_matches(rule, address) for rule in self.initiator_addresses)


def _address_matches(rule: str, address: str) -> bool:
    if rule.upper() == "ALL":
        return True
    try:
        addr = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        return addr in ipaddress.ip_network(rule.strip("[]"), strict=False)
    except ValueError:
        return False


@dataclass
class Registry:
    """All targets and accounts of one daemon."""

    targets: dict[int, Target] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)
    state: str = "ready"  # system state: "ready" or "offline"
    # accounts bound without --tid: used for discovery sessions (tgt's global accounts)
    incoming_accounts: list[str] = field(default_factory=list)
    outgoing_account: str | None = None

    def by_name(self, name: str) -> Target | None:
        """Find a target by IQN (case-insensitive, as iSCSI names compare)."""
        lname = name.lower()
        for t in self.targets.values():
            if t.name.lower() == lname:
                return t
        return None
