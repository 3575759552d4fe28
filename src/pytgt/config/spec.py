"""A configuration as data: what targets.conf describes and what pytgtd persists.

:class:`ConfigSpec` holds targets (:class:`TargetSpec`) with their LUNs (:class:`LunSpec`),
ACLs, CHAP accounts and iSCSI parameters. The targets.conf parser
(:mod:`pytgt.config.targets_conf`) builds one from a file, :mod:`pytgt.config.store`
builds one from a running registry, and :mod:`pytgt.config.plan` turns one into the
management requests that create it. ``to_dict``/``from_dict`` are the JSON form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# LU settings (tgtadm --mode logicalunit --op update --params) and their defaults.
# scsi_id and scsi_sn default to values derived from tid and LUN (see lu_defaults).
LU_PARAM_DEFAULTS: dict[str, str] = {
    "vendor_id": "IET", "product_id": "VIRTUAL-DISK", "product_rev": "0001",
    "removable": "0", "readonly": "0", "online": "1", "sense_format": "0",
    "thin_provisioning": "auto", "swp": "0",
    "max_iops": "0", "max_bps": "0",  # QoS limits (scsi/qos.py), 0 = unlimited
}
# "auto": thin where the backing store is sparse (LogicalUnit.thin_default); tgt's is "0".
LU_PARAMS = (*LU_PARAM_DEFAULTS, "scsi_id", "scsi_sn")
BOOL_LU_PARAMS = frozenset({"removable", "readonly", "online", "thin_provisioning", "swp"})
QOS_LU_PARAMS = frozenset({"max_iops", "max_bps"})
# mode pages a changer accepts and ignores (tgt's targets.conf.vtl.* set them): "page 0",
# disconnect-reconnect, power condition, informational exceptions, and SMC-3's element
# address assignment, transport geometry and device capabilities, built from its elements
CHANGER_MODE_PAGES = frozenset({0x00, 0x02, 0x1A, 0x1C, 0x1D, 0x1E, 0x1F})

# tgt's device-type names (tgtadm -Y, targets.conf device-type) -> the type each one names;
# "ssc" is tgt's other name for tape.
TGT_DEVICE_TYPES: dict[str, str] = {
    "disk": "disk", "tape": "tape", "ssc": "tape", "cd": "cd", "changer": "changer", "pt": "pt",
}

# tgt's backing store names for its medium device types (tgtadm -E, targets.conf bs-type,
# and what tgtadm --op show prints): the medium file, which pytgt opens with rdwr.
TGT_MEDIUM_BSTYPE: dict[str, str] = {"tape": "ssc", "cd": "mmc", "changer": "smc"}


def medium_bstype(device_type: str, bstype: str) -> str:
    """``bstype`` with tgt's medium store name for ``device_type`` read as rdwr."""
    dtype = TGT_DEVICE_TYPES.get(device_type, device_type)
    return "rdwr" if TGT_MEDIUM_BSTYPE.get(dtype) == bstype else bstype


AccountSpec = tuple[str, str]  # (user, password)


# what a new LU of a removable-medium type starts with instead (scsi/ssc.py, mmc.py, smc.py)
TYPE_PARAM_DEFAULTS: dict[str, dict[str, str]] = {
    "tape": {"product_id": "VIRTUAL-TAPE", "removable": "1"},
    "cd": {"product_id": "VIRTUAL-CDROM", "removable": "1"},
    "changer": {"product_id": "VIRTUAL-CHANGER", "removable": "1"},
}


def lu_defaults(tid: int, lun: int, device_type: str = "disk") -> dict[str, str]:
    """The LU parameter values a new LU of ``tid``/``lun`` and type starts with (tgt's)."""
    return {**LU_PARAM_DEFAULTS, "scsi_id": f"IET     {tid:04x}{lun:04x}",
            "scsi_sn": f"beaf{tid}{lun}",
            **TYPE_PARAM_DEFAULTS.get(TGT_DEVICE_TYPES.get(device_type, device_type), {})}


@dataclass
class LunSpec:
    """One logical unit: creation settings, then parameters (only non-default ones)."""

    lun: int
    path: str
    bstype: str = "rdwr"
    bsopts: str = ""
    bsoflags: str = ""
    blocksize: int | None = None
    device_type: str = "disk"
    params: dict[str, str] = field(default_factory=dict)
    write_cache: bool = True
    direct: bool = False  # declared with direct-store
    allow_in_use: bool = False
    where: str = ""  # "file:line" of its declaration, for messages
    # a changer's element settings, one ``--params`` set each, in order (scsi/smc.py)
    elements: list[dict[str, str]] = field(default_factory=list)

    def creation_key(self) -> tuple[Any, ...]:
        """What can only be set when the LU is created."""
        return (self.path, self.bstype, self.bsopts, self.bsoflags,
                self.blocksize or 512, self.device_type,
                tuple(tuple(sorted(e.items())) for e in self.elements  # a changer's layout;
                      if "barcode" not in e and "clear_slot" not in e))  # cartridges: state

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"lun": self.lun, "path": self.path, "bstype": self.bstype}
        if self.bsopts:
            out["bsopts"] = self.bsopts
        if self.bsoflags:
            out["bsoflags"] = self.bsoflags
        if self.blocksize:
            out["blocksize"] = self.blocksize
        if self.device_type != "disk":
            out["device_type"] = self.device_type
        if self.params:
            out["params"] = dict(self.params)
        if not self.write_cache:
            out["write_cache"] = False
        if self.elements:
            out["elements"] = [dict(e) for e in self.elements]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LunSpec:
        return cls(lun=int(d["lun"]), path=str(d["path"]), bstype=str(d.get("bstype", "rdwr")),
                   bsopts=str(d.get("bsopts", "")), bsoflags=str(d.get("bsoflags", "")),
                   blocksize=int(d["blocksize"]) if d.get("blocksize") else None,
                   device_type=str(d.get("device_type", "disk")),
                   params={str(k): str(v) for k, v in d.get("params", {}).items()},
                   write_cache=bool(d.get("write_cache", True)),
                   elements=[{str(k): str(v) for k, v in e.items()}
                             for e in d.get("elements", [])])


@dataclass
class TargetSpec:
    """One target. ``tid`` None means "assign one" (tgt-admin's next free tid)."""

    name: str
    tid: int | None = None
    luns: list[LunSpec] = field(default_factory=list)
    initiator_addresses: list[str] = field(default_factory=list)
    initiator_names: list[str] = field(default_factory=list)
    incoming: list[AccountSpec] = field(default_factory=list)
    outgoing: AccountSpec | None = None
    iscsi_params: dict[str, str] = field(default_factory=dict)
    state: str = "ready"
    where: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "tid": self.tid,
                               "luns": [lu.to_dict() for lu in self.luns]}
        for key in ("initiator_addresses", "initiator_names"):
            if getattr(self, key):
                out[key] = list(getattr(self, key))
        if self.incoming:
            out["incoming"] = [list(a) for a in self.incoming]
        if self.outgoing:
            out["outgoing"] = list(self.outgoing)
        if self.iscsi_params:
            out["iscsi_params"] = dict(self.iscsi_params)
        if self.state != "ready":
            out["state"] = self.state
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TargetSpec:
        out = d.get("outgoing")
        return cls(name=str(d["name"]), tid=int(d["tid"]) if d.get("tid") else None,
                   luns=[LunSpec.from_dict(x) for x in d.get("luns", [])],
                   initiator_addresses=[str(x) for x in d.get("initiator_addresses", [])],
                   initiator_names=[str(x) for x in d.get("initiator_names", [])],
                   incoming=[_account(a) for a in d.get("incoming", [])],
                   outgoing=_account(out) if out else None,
                   iscsi_params={str(k): str(v) for k, v in d.get("iscsi_params", {}).items()},
                   state=str(d.get("state", "ready")))


def _account(value: Any) -> AccountSpec:
    user, password = value
    return str(user), str(password)


@dataclass
class ConfigSpec:
    """A whole configuration: targets in order, discovery accounts, every CHAP account."""

    targets: list[TargetSpec] = field(default_factory=list)
    discovery_incoming: list[AccountSpec] = field(default_factory=list)
    discovery_outgoing: AccountSpec | None = None
    accounts: dict[str, str] = field(default_factory=dict)  # user -> password
    state: str = "ready"
    ignore_errors: bool = False
    control_port: int | None = None

    def target(self, name: str) -> TargetSpec | None:
        lname = name.lower()
        return next((t for t in self.targets if t.name.lower() == lname), None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": 1, "targets": [t.to_dict() for t in self.targets]}
        if self.accounts:
            out["accounts"] = [[u, p] for u, p in self.accounts.items()]
        if self.discovery_incoming:
            out["discovery_incoming"] = [list(a) for a in self.discovery_incoming]
        if self.discovery_outgoing:
            out["discovery_outgoing"] = list(self.discovery_outgoing)
        if self.state != "ready":
            out["state"] = self.state
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ConfigSpec:
        """Raises ValueError (or KeyError/TypeError) for a malformed document."""
        if d.get("version") != 1:
            raise ValueError(f"unsupported configuration version: {d.get('version')!r}")
        out = d.get("discovery_outgoing")
        return cls(targets=[TargetSpec.from_dict(t) for t in d.get("targets", [])],
                   discovery_incoming=[_account(a) for a in d.get("discovery_incoming", [])],
                   discovery_outgoing=_account(out) if out else None,
                   accounts=dict(_account(a) for a in d.get("accounts", [])),
                   state=str(d.get("state", "ready")))
