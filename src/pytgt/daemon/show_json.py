"""``pytgtadm --op show --json``: every show mode as a versioned JSON document.

Each answer is one object ``{"schema": "pytgt.show/1", "mode": MODE, ...}``; docs/json.md
describes every field. Within ``pytgt.show/1`` fields may be added, never renamed,
removed or given another meaning; such a change makes ``pytgt.show/2``. CHAP secrets
are never shown.

:func:`requests_from_show` turns the ``target`` and ``account`` documents of a running
daemon (plus the secrets, which the documents leave out) into the management requests
that recreate that configuration in an empty daemon, whose documents are then the same
(sessions and reservations, which are state and not configuration, aside).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pytgt.config.plan import restore_requests
from pytgt.config.spec import ConfigSpec, LunSpec, TargetSpec
from pytgt.daemon import show
from pytgt.scsi.lu import PERIPHERAL_DEVICE_TYPE
from pytgt.scsi.pr import PrType
from pytgt.scsi.smc import MediumChanger
from pytgt.stores import available

if TYPE_CHECKING:
    from pytgt.config.model import NexusInfo, Target
    from pytgt.daemon.mgmt import Handler, Management
    from pytgt.scsi.lu import LogicalUnit

SCHEMA = "pytgt.show/1"
Doc = dict[str, Any]


def _doc(mode: str, **body: Any) -> str:
    return json.dumps({"schema": SCHEMA, "mode": mode, **body}, indent=2) + "\n"


# -- targets and LUs -------------------------------------------------------------------------
def lu_doc(lu: LogicalUnit) -> Doc:
    """One logical unit (docs/json.md, "LU object"); a changer adds its elements."""
    doc: Doc = {
        "lun": lu.lun, "type": lu.device_type, "size": lu.size, "block_size": lu.block_size,
        "scsi_id": lu.scsi_id, "scsi_sn": lu.scsi_sn, "vendor_id": lu.vendor_id,
        "product_id": lu.product_id, "product_rev": lu.product_rev,
        "online": bool(lu.online), "removable": bool(lu.removable),
        "prevent_removal": bool(lu.prevent_removal), "readonly": bool(lu.readonly),
        "swp": bool(lu.swp), "thin_provisioning": bool(lu.thin_provisioning),
        "sense_format": int(lu.sense_format), "write_cache": bool(lu.mode.DEFAULT_WCE),
        "backing_store": {"type": lu.bstype or "null",
                          "path": lu.path or None if lu.store is not None else None,
                          "flags": lu.bsoflags or "",
                          "options": str(getattr(lu, "bsopts", "") or "")},
        "reservations": _reservations(lu),
    }
    if isinstance(lu, MediumChanger):
        doc["elements"] = lu.state()
    return doc


def _reservations(lu: LogicalUnit) -> Doc | None:
    pr = lu.pr
    if not (lu.reservation or pr.type or pr.registrations):
        return None
    holder = pr.registrations.get(pr.holder or "") if pr.type else None
    return {
        "spc2_holder": lu.reservation.split(",tsih=")[0] if lu.reservation else None,
        "type": _pr_type(pr.type) if pr.type else None,
        "holder": (pr.holder or "").rpartition("|")[0] or None if holder else None,
        "key": holder.key if holder else None,
        "registrations": len(pr.registrations), "aptpl": bool(pr.aptpl),
    }


def _pr_type(value: int) -> str:
    try:
        return PrType(value).name.lower()
    except ValueError:
        return f"0x{value:x}"


def session_doc(info: NexusInfo, params: bool = False) -> Doc:
    out: Doc = {"sid": info.nexus_id, "initiator": info.initiator_name,
                "alias": info.initiator_alias or None,
                "connections": [{"cid": cid, "address": c.address}
                                for cid, c in sorted(info.connections.items())]}
    if params:
        out["params"] = dict(info.params)
    return out


def target_doc(t: Target) -> Doc:
    """One target (docs/json.md, "target object")."""
    return {
        "tid": t.tid, "name": t.name, "state": t.state, "driver": show.LLD_NAME,
        "alua": [{"group": gid, "state": word} for gid, word in t.scsi.alua.summary()],
        "params": show.target_params(t),
        "sessions": [session_doc(info) for _n, info in sorted(t.nexuses.items())],
        "luns": [lu_doc(lu) for _n, lu in sorted(t.scsi.luns.items())],
        "accounts": {"incoming": list(t.incoming_accounts), "outgoing": t.outgoing_account},
        "acl": {"initiator_addresses": list(t.initiator_addresses),
                "initiator_names": list(t.initiator_names)},
    }


async def target_show(m: Management, req: dict[str, Any]) -> str:
    if show._opt_int(req, "tid") is not None:
        return _doc("target", targets=[target_doc(m.target(req))])
    return _doc("target", targets=[target_doc(t) for _tid, t in
                                   sorted(m.registry.targets.items())])


# -- the other modes -------------------------------------------------------------------------
async def account_show(m: Management, req: dict[str, Any]) -> str:
    reg = m.registry
    return _doc("account", accounts=list(reversed(reg.accounts)),  # newest first, as tgt
                discovery={"incoming": list(reg.incoming_accounts),
                           "outgoing": reg.outgoing_account})


async def system_show(m: Management, req: dict[str, Any]) -> str:
    stores = [{"name": n, "bsoflags": ["sync", "direct"] if n == "rdwr" else []}
              for n in available()]
    portals = [{"address": h, "port": p, "tpgt": m.service.portal_group_tag
                if m.service is not None else 1} for h, p in m.portals]
    return _doc("system", state=m.registry.state, debug=bool(m.debug),
                llds=[{"name": show.LLD_NAME, "state": "ready"}], backing_stores=stores,
                device_types=list(PERIPHERAL_DEVICE_TYPE), portals=portals,
                isns={"enabled": False, "server": None, "port": 3205,
                      "access_control": False})


async def lld_show(m: Management, req: dict[str, Any]) -> str:
    targets = [{"tid": t.tid, "name": t.name} for _tid, t in sorted(m.registry.targets.items())]
    return _doc("lld", llds=[{"name": show.LLD_NAME, "state": "ready", "targets": targets}])


async def session_show(m: Management, req: dict[str, Any]) -> str:
    tid = m.target(req).tid
    return _doc("session", tid=tid, sessions=[session_doc(info, params=True)
                                              for _n, info in show.target_sessions(m, req)])


async def conn_show(m: Management, req: dict[str, Any]) -> str:
    tid = m.target(req).tid
    conns = [{"sid": n, "cid": cid, "initiator": info.initiator_name, "address": c.address}
             for n, info in show.target_sessions(m, req)
             for cid, c in sorted(info.connections.items())]
    return _doc("conn", tid=tid, connections=conns)


HANDLERS: dict[str, Handler] = {
    "target": target_show, "account": account_show, "system": system_show,
    "lld": lld_show, "session": session_show, "conn": conn_show,
}


# -- back to requests ------------------------------------------------------------------------
_FLAGS = ("online", "removable", "readonly", "swp", "thin_provisioning")
_TEXTS = ("vendor_id", "product_id", "product_rev", "scsi_id", "scsi_sn")


def _lun_spec(d: Doc) -> LunSpec:
    bs = d["backing_store"]
    params = {k: str(d[k]) for k in _TEXTS}
    params.update((k, "1" if d[k] else "0") for k in _FLAGS)
    params["sense_format"] = str(d["sense_format"])
    return LunSpec(lun=int(d["lun"]), path=bs["path"] or "", bstype=bs["type"],
                   bsopts=bs["options"], bsoflags=bs["flags"],
                   blocksize=None if d["block_size"] == 512 else int(d["block_size"]),
                   device_type=d["type"], params=params, write_cache=bool(d["write_cache"]),
                   elements=[{str(k): str(v) for k, v in e.items()}
                             for e in d.get("elements", [])])


def _secret(secrets: Mapping[str, str], user: str) -> tuple[str, str]:
    if user not in secrets:
        raise ValueError(f"no secret given for CHAP account {user}")
    return user, secrets[user]


def _target_spec(d: Doc, secrets: Mapping[str, str], defaults: dict[str, str]) -> TargetSpec:
    out = d["accounts"]["outgoing"]
    return TargetSpec(
        name=d["name"], tid=int(d["tid"]), state=d["state"],
        luns=[_lun_spec(lu) for lu in d["luns"] if lu["type"] != "controller"],
        initiator_addresses=list(d["acl"]["initiator_addresses"]),
        initiator_names=list(d["acl"]["initiator_names"]),
        incoming=[_secret(secrets, u) for u in d["accounts"]["incoming"]],
        outgoing=_secret(secrets, out) if out else None,
        iscsi_params={k: v for k, v in d["params"].items() if defaults.get(k) != v})


def _check(doc: Doc, mode: str) -> None:
    if doc.get("schema") != SCHEMA or doc.get("mode") != mode:
        raise ValueError(f"not a {SCHEMA} {mode} document")


def requests_from_show(targets: Doc, accounts: Doc,
                       secrets: Mapping[str, str]) -> list[dict[str, Any]]:
    """Management requests that give an empty daemon the configuration shown by the
    ``target`` and ``account`` documents; ``secrets`` maps each CHAP user to its secret.

    Raises ValueError for another schema or mode, or a CHAP user without a secret.
    """
    _check(targets, "target")
    _check(accounts, "account")
    disc = accounts["discovery"]
    config = ConfigSpec(
        targets=[_target_spec(t, secrets, show.param_defaults()) for t in targets["targets"]],
        accounts=dict(_secret(secrets, u) for u in reversed(accounts["accounts"])),
        discovery_incoming=[_secret(secrets, u) for u in disc["incoming"]],
        discovery_outgoing=_secret(secrets, disc["outgoing"]) if disc["outgoing"] else None)
    out = restore_requests(config)
    for t in targets["targets"]:
        out += [{"mode": "target", "op": "update", "tid": t["tid"], "name": "alua_state",
                 "value": f"{g['group']}:{g['state']}"} for g in t["alua"]
                if g["state"] != "active"]
    return out
