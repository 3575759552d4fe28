"""``--op show`` in tgtadm's layout, line for line, and tgt's target parameter table.

The golden files in ``tests/daemon/golden`` (captured from tgtd 1.0.85) hold the layout;
:mod:`pytgt.daemon.mgmt` calls these formatters and checks updates against
:data:`TARGET_PARAMS` / :data:`OTHER_PARAMS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pytgt.config.spec import TGT_MEDIUM_BSTYPE
from pytgt.daemon import alua_admin, lu_show, redirect
from pytgt.iscsi import keys
from pytgt.scsi.lu import PERIPHERAL_DEVICE_TYPE
from pytgt.stores import available

if TYPE_CHECKING:
    from pytgt.config.model import NexusInfo, Target
    from pytgt.daemon.mgmt import Management
    from pytgt.scsi.lu import LogicalUnit

LLD_NAME = "iscsi"

# device type -> the "Type:" word of --op show
TYPE_SHOWN = {"disk": "disk", "controller": "controller", "cd": "cd/dvd", "tape": "tape",
               "changer": "changer", "pt": "passthrough"}


_INT = re.compile(r"\d+")


def _int_rule(lo: int, hi: int) -> Callable[[str], str | None]:
    def check(v: str) -> str | None:
        return str(int(v)) if _INT.fullmatch(v) and lo <= int(v) <= hi else None
    return check


def _choice_rule(*words: str) -> Callable[[str], str | None]:
    lower = {w.lower(): w for w in words}

    def check(v: str) -> str | None:
        items = [lower.get(x.strip().lower()) for x in v.split(",")]
        return ",".join(i for i in items if i) if all(items) else None
    return check


def _markint(v: str) -> str | None:
    return "Reject" if v.lower() == "reject" else _int_rule(1, 65535)(v)


# tgt's target parameters in tgtadm's show order. The iSCSI keys pytgt offers
# (keys.settable) show pytgt's own values and are checked by the key table; tgt's
# other parameters keep tgt's default and a check of their own.
TARGET_PARAMS = (
    "nop_interval", "nop_count", "MaxRecvDataSegmentLength", "HeaderDigest", "DataDigest",
    "InitialR2T", "MaxOutstandingR2T", "ImmediateData", "FirstBurstLength", "MaxBurstLength",
    "DataPDUInOrder", "DataSequenceInOrder", "ErrorRecoveryLevel", "IFMarker", "OFMarker",
    "DefaultTime2Wait", "DefaultTime2Retain", "OFMarkInt", "IFMarkInt", "MaxConnections",
    "RDMAExtensions", "TargetRecvDataSegmentLength", "InitiatorRecvDataSegmentLength",
    "MaxOutstandingUnexpectedPDUs", "MaxXmitDataSegmentLength", "MaxQueueCmd",
)
OTHER_PARAMS: dict[str, tuple[str, Callable[[str], str | None]]] = {
    "nop_interval": ("0", _int_rule(0, 3600)),
    "nop_count": ("0", _int_rule(0, 65535)),
    "OFMarkInt": ("Reject", _markint),
    "IFMarkInt": ("Reject", _markint),
    "RDMAExtensions": ("Yes", _choice_rule("Yes", "No")),
    "TargetRecvDataSegmentLength": ("262144", _int_rule(512, 16777215)),
    "InitiatorRecvDataSegmentLength": ("262144", _int_rule(512, 16777215)),
    "MaxOutstandingUnexpectedPDUs": ("0", _int_rule(0, 0xFFFFFFFF)),
    "MaxQueueCmd": ("128", _int_rule(1, 2048)),
}

PARAM_BY_LOWER = {name.lower(): name for name in (*TARGET_PARAMS, *keys.TARGET_DEFAULTS)}


def _yes(flag: object) -> str:
    return "Yes" if flag else "No"


def size_mb(size: int) -> int:
    """tgtadm's ``Size: N MB``: bytes / 10^6, rounded to the nearest."""
    return (int(size) + 500_000) // 1_000_000


def format_target(t: Target) -> str:
    """One target as ``tgtadm --op show --mode target`` prints it."""
    lines = [f"Target {t.tid}: {t.name}", "    System information:",
             f"        Driver: {LLD_NAME}", f"        State: {t.state}"]
    nop = t.iscsi_params.get("nop_interval", "0")
    if nop != "0":
        lines += [f"        Nop interval: {nop}",
                  f"        Nop count: {t.iscsi_params.get('nop_count', '0')}"]
    lines += alua_admin.show_lines(t.scsi)  # none while every group is active/optimized
    lines.append("    I_T nexus information:")
    for nexus_id, info in sorted(t.nexuses.items()):
        lines += [f"        I_T nexus: {nexus_id}",
                  f"            Initiator: {info.initiator_name} "
                  f"alias: {info.initiator_alias or 'none'}"]
        for cid, conn in sorted(info.connections.items()):
            lines += [f"            Connection: {cid}",
                      f"                IP Address: {conn.address}"]
    lines.append("    LUN information:")
    for _lun, lu in sorted(t.scsi.luns.items()):
        lines += format_lu(lu)
    lines.append("    Account information:")
    lines += [f"        {u}" for u in t.incoming_accounts]
    if t.outgoing_account:
        lines.append(f"        {t.outgoing_account} (outgoing)")
    lines.append("    ACL information:")
    lines += [f"        {rule}" for rule in [*t.initiator_addresses, *t.initiator_names]]
    return "\n".join(lines) + "\n"


def format_lu(lu: LogicalUnit) -> list[str]:
    """The ``LUN: N`` block of one logical unit (tgt shows the block size of LUN 0 and
    of a passthrough LU, which have none of their own, as 1)."""
    dtype = lu.device_type
    return [
        f"        LUN: {lu.lun}",
        f"            Type: {TYPE_SHOWN.get(dtype, dtype)}",
        f"            SCSI ID: {lu.scsi_id}",
        f"            SCSI SN: {lu.scsi_sn}",
        f"            Size: {size_mb(lu.size)} MB, "
        f"Block size: {1 if dtype in _BLOCK_SIZE_ONE else lu.block_size}",
        f"            Online: {_yes(lu.online and (dtype != 'cd' or lu.loaded))}",  # tgt: no disc
        f"            Removable media: {_yes(lu.removable)}",
        f"            Prevent removal: {_yes(lu.prevent_removal)}",
        f"            Readonly: {_yes(lu.readonly)}",
        f"            SWP: {_yes(lu.swp)}",
        f"            Thin-provisioning: {_yes(lu.thin_provisioning)}",
        f"            Backing store type: {_bstype_shown(lu)}",
        f"            Backing store path: {lu.path or 'None'}",
        f"            Backing store flags: {lu.bsoflags or ''}",
        *lu_show.reservation_lines(lu),  # none while nobody reserved or registered
        *lu_show.qos_lines(lu),  # none while unlimited
    ]


#: Types tgtd shows with "Block size: 1" whatever their blocks are.
_BLOCK_SIZE_ONE = frozenset({"controller", "changer", "tape", "cd", "pt"})


def _bstype_shown(lu: LogicalUnit) -> str:
    """tgt names the store of a changer "smc" (its file holds nothing), of a tape "ssc"
    and of a cd "mmc" (the medium file), whatever ``-E`` said."""
    if lu.device_type in TGT_MEDIUM_BSTYPE and lu.bstype == "rdwr":
        return TGT_MEDIUM_BSTYPE[lu.device_type]
    return lu.bstype or "null"


def format_target_params(t: Target) -> str:
    """``--op show --mode target --tid N``: the target's parameters, key=value."""
    return (_format_params(t.iscsi_params) + alua_admin.show_params(t.scsi)
            + redirect.show_params(t))


def target_params(t: Target) -> dict[str, str]:
    """The target's parameters (tgt's, in show order) as a dict (``--json``)."""
    pairs = (line.partition("=") for line in _format_params(t.iscsi_params).splitlines())
    return {name: value for name, sep, value in pairs if sep}


def _format_params(overrides: dict[str, str]) -> str:
    """tgt's target parameters, key=value, with the admin's ``overrides``."""
    values = {name: default for name, (default, _rule) in OTHER_PARAMS.items()}
    iscsi = {k: v for k, v in overrides.items() if keys.settable(k)}
    try:
        values.update(keys.target_values(iscsi))
    except ValueError:  # set behind our back; show what is stored
        values.update(keys.target_values({}), **iscsi)
    values.update((k, v) for k, v in overrides.items() if k in OTHER_PARAMS)
    return "".join(f"{k}={values.get(k, '')}\n" for k in TARGET_PARAMS)


def param_defaults() -> dict[str, str]:
    """Target parameters as a new target has them (what --op show --tid N prints)."""
    pairs = (line.partition("=") for line in _format_params({}).splitlines())
    # no redirection: pytgt-admin --update clears one the file no longer has
    return {**{name: value for name, sep, value in pairs if sep},
            **{name: "" for name in redirect.PARAMS.values()}}


# -- show handlers (mgmt.HANDLERS) ---------------------------------------------------------
def _opt_int(req: dict[str, Any], key: str) -> int | None:
    from pytgt.daemon.mgmt import _opt_int as opt_int

    return opt_int(req, key)


async def target_show(m: Management, req: dict[str, Any]) -> str:
    if _opt_int(req, "tid") is not None:
        return format_target_params(m.target(req))
    targets = sorted(m.registry.targets.values(), key=lambda t: t.tid)
    return "".join(format_target(t) for t in targets)


async def account_show(m: Management, req: dict[str, Any]) -> str:
    users = list(reversed(m.registry.accounts))  # tgt lists the newest first
    return "Account list:\n" + "".join(f"    {u}\n" for u in users) if users else ""


async def system_show(m: Management, req: dict[str, Any]) -> str:
    lines = ["System:", f"    State: {m.registry.state}",
             f"    debug: {'on' if m.debug else 'off'}", "LLDs:", f"    {LLD_NAME}: ready",
             "Backing stores:"]
    for name in available():
        lines.append(f"    {name} (bsoflags sync:direct)" if name == "rdwr" else f"    {name}")
    lines.append("Device types:")
    lines += [f"    {TYPE_SHOWN.get(t, t)}" for t in PERIPHERAL_DEVICE_TYPE]
    isns = m.isns
    lines += ["iSNS:", f"    iSNS={'On' if isns.enabled else 'Off'}",
              f"    iSNSServerIP={isns.address}", f"    iSNSServerPort={isns.port}",
              f"    iSNSAccessControl={'On' if isns.access_control else 'Off'}"]
    return "\n".join(lines) + "\n"


async def lld_show(m: Management, req: dict[str, Any]) -> str:
    lines = ["LLDs:", f"    {LLD_NAME}: ready"]
    for t in sorted(m.registry.targets.values(), key=lambda t: t.tid):
        lines.append(f"        Target {t.tid}: {t.name}")
    return "\n".join(lines) + "\n"


def target_sessions(m: Management, req: dict[str, Any]) -> list[tuple[int, NexusInfo]]:
    """The target's sessions (``--sid`` picks one), in order: (session id, nexus info)."""
    target = m.target(req)
    sid = _opt_int(req, "sid")
    return [(n, info) for n, info in sorted(target.nexuses.items()) if sid in (None, n)]


async def conn_show(m: Management, req: dict[str, Any]) -> str:
    out = []
    for nexus_id, info in target_sessions(m, req):
        out.append(f"Session: {nexus_id}\n")
        for cid, conn in sorted(info.connections.items()):
            out.append(f"    Connection: {cid}\n        Initiator: {info.initiator_name}\n"
                       f"        IP Address: {conn.address}\n")
    return "".join(out)


async def session_show(m: Management, req: dict[str, Any]) -> str:
    out = []
    for nexus_id, info in target_sessions(m, req):
        alias = info.initiator_alias or "none"
        out.append(f"Session: {nexus_id}\n"
                   f"    Initiator: {info.initiator_name} alias: {alias}\n")
        for cid, conn in sorted(info.connections.items()):
            out.append(f"    Connection: {cid}\n        IP Address: {conn.address}\n")
        if info.params:
            out.append("    Negotiated parameters:\n")
            out += [f"        {k}={v}\n" for k, v in info.params.items()]
    return "".join(out)
