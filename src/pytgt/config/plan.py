"""Turn configurations into management requests: create, update (a diff), delete, state.

A request is the dict pytgtadm sends (``mode``, ``op``, ``tid``, ``lun``, ...). A
:class:`Plan` is a list of :class:`Step` (comment lines as tgt-admin prints them, then
the requests) plus warnings. Planning only reads: nothing is sent from here.

:class:`Running` is what the daemon reports (``--mode system --op dump``): the running
configuration, the tids with live sessions, and the default target parameters.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pytgt.config.spec import TGT_DEVICE_TYPES, ConfigSpec, LunSpec, TargetSpec, lu_defaults

Request = dict[str, Any]
# tgt-admin's caching mode page for "write-cache off" (WCE clear), sent verbatim.
WRITE_CACHE_OFF_PAGE = "8:0:18:0x10:0:0xff:0xff:0:0:0xff:0xff:0xff:0xff:0x80:0x14:0:0:0:0:0:0"
WRITE_CACHE_ON_PAGE = "8:0:18:0x14:0:0xff:0xff:0:0:0xff:0xff:0xff:0xff:0x80:0x14:0:0:0:0:0:0"


@dataclass
class Step:
    comments: list[str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def requests(self) -> list[Request]:
        return [r for s in self.steps for r in s.requests]


@dataclass
class Running:
    """The daemon's side: its configuration, busy tids, default target parameters."""

    config: ConfigSpec = field(default_factory=ConfigSpec)
    in_use: set[int] = field(default_factory=set)
    param_defaults: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Running:
        return cls(ConfigSpec.from_dict(d["config"]), {int(t) for t in d.get("in_use", [])},
                   {str(k): str(v) for k, v in d.get("param_defaults", {}).items()})

    def by_tid(self, tid: int) -> TargetSpec | None:
        return next((t for t in self.config.targets if t.tid == tid), None)


def lu_params(tid: int, lu: LunSpec) -> dict[str, str]:
    """The LU's parameters that differ from a new LU's."""
    defaults = lu_defaults(tid, lu.lun, lu.device_type)
    return {k: v for k, v in lu.params.items() if defaults.get(k) != v}


# -- creating ------------------------------------------------------------------------------
def lun_requests(tid: int, lu: LunSpec) -> list[Request]:
    req: Request = {"mode": "logicalunit", "op": "new", "tid": tid, "lun": lu.lun,
                    "backing_store": lu.path}
    if lu.bstype != "rdwr":
        req["bstype"] = lu.bstype
    for key, value in (("bsopts", lu.bsopts), ("bsoflags", lu.bsoflags),
                       ("blocksize", lu.blocksize)):
        if value:
            req[key] = value
    if lu.device_type != "disk":
        req["device_type"] = lu.device_type
    params = lu_params(tid, lu)
    if params:
        req["params"] = params
    out = [req]
    if not lu.write_cache:
        out.append(_lu_update(tid, lu.lun, {"mode_page": WRITE_CACHE_OFF_PAGE}))
    out += [_lu_update(tid, lu.lun, dict(e)) for e in lu.elements]  # a changer's elements
    return out


def _changers_last(luns: Iterable[LunSpec]) -> list[LunSpec]:
    """LUs in creation order: a changer after the drives its elements load (scsi/smc.py)."""
    return sorted(luns, key=lambda lu: TGT_DEVICE_TYPES.get(lu.device_type) == "changer")


def _lu_update(tid: int, lun: int, params: dict[str, str]) -> Request:
    return {"mode": "logicalunit", "op": "update", "tid": tid, "lun": lun, "params": params}


def _account_requests(user: str, password: str, tid: int | None, outgoing: bool,
                      accounts: dict[str, str], warnings: list[str]) -> list[Request]:
    out: list[Request] = []
    if user not in accounts:
        out.append({"mode": "account", "op": "new", "user": user, "password": password})
        accounts[user] = password
    elif accounts[user] != password:
        warnings.append(f"account {user} already exists with another password; "
                        "the existing password is kept")
    bind: Request = {"mode": "account", "op": "bind", "user": user}
    if tid is not None:
        bind["tid"] = tid
    if outgoing:
        bind["outgoing"] = True
    out.append(bind)
    return out


def target_requests(t: TargetSpec, tid: int, accounts: dict[str, str],
                    warnings: list[str]) -> list[Request]:
    """Everything that creates target ``t`` as ``tid`` (accounts created as needed)."""
    out: list[Request] = [{"mode": "target", "op": "new", "tid": tid, "targetname": t.name}]
    if t.iscsi_params:
        out.append({"mode": "target", "op": "update", "tid": tid,
                    "params": dict(t.iscsi_params)})
    for lu in _changers_last(t.luns):
        out += lun_requests(tid, lu)
    for user, password in t.incoming:
        out += _account_requests(user, password, tid, False, accounts, warnings)
    out += [_acl("bind", tid, "initiator_address", a) for a in t.initiator_addresses]
    out += [_acl("bind", tid, "initiator_name", n) for n in t.initiator_names]
    if t.outgoing:
        out += _account_requests(*t.outgoing, tid, True, accounts, warnings)
    if t.state != "ready":
        out.append(_state(tid, t.state))
    return out


def _acl(op: str, tid: int, key: str, value: str) -> Request:
    return {"mode": "target", "op": op, "tid": tid, key: value}


def _state(tid: int, state: str) -> Request:
    return {"mode": "target", "op": "update", "tid": tid, "name": "state", "value": state}


def restore_requests(config: ConfigSpec) -> list[Request]:
    """Requests that recreate ``config`` (explicit tids) in an empty daemon."""
    warnings: list[str] = []
    accounts = dict(config.accounts)
    out: list[Request] = [{"mode": "account", "op": "new", "user": u, "password": p}
                          for u, p in config.accounts.items()]
    for t in config.targets:
        assert t.tid is not None
        out += target_requests(t, t.tid, accounts, warnings)
    out += discovery_requests(config, accounts, warnings)
    if config.state != "ready":
        out.append({"mode": "system", "op": "update", "name": "State", "value": config.state})
    return out


def discovery_requests(config: ConfigSpec, accounts: dict[str, str],
                       warnings: list[str]) -> list[Request]:
    out: list[Request] = []
    for user, password in config.discovery_incoming:
        out += _account_requests(user, password, None, False, accounts, warnings)
    if config.discovery_outgoing:
        out += _account_requests(*config.discovery_outgoing, None, True, accounts, warnings)
    return out


# -- LUN checks (tgt-admin's: a missing file, a file another target uses) --------------------
def usable_luns(t: TargetSpec, paths_in_use: dict[str, str], force: bool,
                plan: Plan) -> list[LunSpec]:
    """The LUNs of ``t`` that can be created; notes the skipped ones. Updates paths_in_use."""
    out = []
    for lu in t.luns:
        if lu.bstype == "rdwr" and not os.path.exists(lu.path):
            plan.warnings.append(f"{lu.where}: {lu.path} does not exist - please check "
                                 "the configuration file; LUN skipped")
            continue
        user = paths_in_use.get(lu.path)
        if lu.bstype == "rdwr" and user and user != t.name and not (lu.allow_in_use or force):
            plan.warnings.append(f"{lu.where}: skipping device {lu.path} - it is in use by "
                                 f"{user}; override with --force or 'allow-in-use yes'")
            continue
        out.append(lu)
    for lu in out:
        paths_in_use.setdefault(lu.path, t.name)
    return out


def _paths_in_use(running: Running) -> dict[str, str]:
    return {lu.path: t.name for t in running.config.targets for lu in t.luns
            if lu.bstype == "rdwr"}


def _with_luns(t: TargetSpec, luns: list[LunSpec]) -> TargetSpec:
    copy = TargetSpec(**{**t.__dict__})
    copy.luns = luns
    return copy


# -- tgt-admin operations ------------------------------------------------------------------
def plan_execute(config: ConfigSpec, running: Running, force: bool = False) -> Plan:
    """tgt-admin -e: add the targets that do not exist, remove running ones not in ``config``."""
    plan = Plan()
    accounts = dict(running.config.accounts)
    used = {t.tid for t in running.config.targets if t.tid is not None}
    reserved = _reserved(config, running)
    paths = _paths_in_use(running)
    for t in config.targets:
        if running.config.target(t.name) is not None:
            plan.steps.append(Step([f"# Target {t.name} already exists!"]))
            continue
        tid = _assign_tid(t, used, reserved, running, plan)
        if tid is None:
            continue
        plan.steps.append(_add_step(t, tid, paths, force, accounts, plan))
    step = Step()
    step.requests = discovery_requests(_missing_discovery(config, running), accounts,
                                       plan.warnings)
    plan.steps.append(step)
    for t in running.config.targets:
        if config.target(t.name) is None:
            plan.steps.append(_delete_step(t, running, force, plan))
    return plan


def _missing_discovery(config: ConfigSpec, running: Running) -> ConfigSpec:
    have = running.config
    out = ConfigSpec()
    out.discovery_incoming = [a for a in config.discovery_incoming
                              if a[0] not in {u for u, _p in have.discovery_incoming}]
    if config.discovery_outgoing and not have.discovery_outgoing:
        out.discovery_outgoing = config.discovery_outgoing
    return out


def _reserved(config: ConfigSpec, running: Running) -> set[int]:
    """The controller_tids of the file's targets that are not running yet."""
    return {t.tid for t in config.targets
            if t.tid is not None and running.config.target(t.name) is None}


def _assign_tid(t: TargetSpec, used: set[int], reserved: set[int], running: Running,
                plan: Plan) -> int | None:
    """controller_tid if given, else one more than the largest tid in use (tgt-admin),
    skipping the controller_tids other targets of the file ask for."""
    if t.tid is not None:
        if t.tid in used:
            other = running.by_tid(t.tid)
            plan.warnings.append(f"{t.where}: controller_tid {t.tid} is used by "
                                 f"{other.name if other else 'another target'}; "
                                 f"{t.name} not added")
            return None
        tid = t.tid
    else:
        tid = max(used, default=0) + 1
        while tid in reserved:
            tid += 1
    used.add(tid)
    return tid


def _add_step(t: TargetSpec, tid: int, paths: dict[str, str], force: bool,
              accounts: dict[str, str], plan: Plan) -> Step:
    luns = usable_luns(t, paths, force, plan)
    return Step([f"# Adding target: {t.name}"],
                target_requests(_with_luns(t, luns), tid, accounts, plan.warnings))


def _delete_step(t: TargetSpec, running: Running, force: bool, plan: Plan) -> Step:
    assert t.tid is not None
    if t.tid in running.in_use and not force:
        plan.warnings.append(f"target {t.name} (tid {t.tid}) is in use; not removed "
                             "(use --force)")
        return Step([f"# Target {t.name} is in use, skipping"])
    req: Request = {"mode": "target", "op": "delete", "tid": t.tid}
    if force:
        req["force"] = True
    return Step([f"# Removing target: {t.name}"], [req])


def select(running: Running, config: ConfigSpec | None, value: str,
           plan: Plan) -> list[str] | None:
    """Target names chosen by ``ALL``, ``tid=N`` or an IQN; None (and a warning) if none."""
    if value.upper() == "ALL":
        names = [t.name for t in running.config.targets]
        if config is not None:
            names += [t.name for t in config.targets if running.config.target(t.name) is None]
        return names
    if value.startswith("tid="):
        try:
            t = running.by_tid(int(value[4:]))
        except ValueError:
            t = None
        if t is None:
            plan.steps.append(Step([f"# Target with tid {value[4:]} does not exist!"]))
            return None
        return [t.name]
    if running.config.target(value) is None and (config is None or
                                                 config.target(value) is None):
        plan.steps.append(Step([f"# Target with name {value} does not exist!"]))
        return None
    return [value]


def plan_delete(running: Running, value: str, force: bool = False) -> Plan:
    plan = Plan()
    for name in select(running, None, value, plan) or []:
        t = running.config.target(name)
        if t is None:
            plan.steps.append(Step([f"# Target with name {name} does not exist!"]))
        else:
            plan.steps.append(_delete_step(t, running, force, plan))
    return plan


def plan_state(running: Running, value: str, state: str) -> Plan:
    plan = Plan()
    for name in select(running, None, value, plan) or []:
        t = running.config.target(name)
        if t is None:
            plan.steps.append(Step([f"# Target with name {name} does not exist!"]))
        elif t.tid is not None:
            plan.steps.append(Step([], [_state(t.tid, state)]))
    return plan


def plan_update(config: ConfigSpec, running: Running, value: str, force: bool = False) -> Plan:
    """tgt-admin --update: bring the chosen targets to ``config``, changing only what differs."""
    plan = Plan()
    accounts = dict(running.config.accounts)
    used = {t.tid for t in running.config.targets if t.tid is not None}
    paths = _paths_in_use(running)
    for name in select(running, config, value, plan) or []:
        want, have = config.target(name), running.config.target(name)
        if want is None:
            plan.steps.append(Step([f"# Target {name} is not in the configuration file, "
                                    "skipping"]))
        elif have is None:
            plan.steps.append(Step([f"# Target with name {name} does not exist!"]))
            tid = _assign_tid(want, used, _reserved(config, running), running, plan)
            if tid is not None:
                plan.steps.append(_add_step(want, tid, paths, force, accounts, plan))
        else:
            plan.steps.append(_update_step(want, have, running, paths, force, accounts, plan))
    return plan


def _update_step(want: TargetSpec, have: TargetSpec, running: Running, paths: dict[str, str],
                 force: bool, accounts: dict[str, str], plan: Plan) -> Step:
    assert have.tid is not None
    tid = have.tid
    if want.tid is not None and want.tid != tid:
        plan.warnings.append(f"{want.where}: controller_tid {want.tid} differs from the "
                             f"running tid {tid}; --update keeps tid {tid}")
    own = {p: n for p, n in paths.items() if n != have.name}
    want = _with_luns(want, usable_luns(want, own, force, plan))
    requests = diff_target(have, want, tid, running.param_defaults, accounts, plan.warnings)
    if not requests:
        return Step([f"# Target {want.name} is up to date"])
    if tid in running.in_use and not force:
        plan.warnings.append(f"target {want.name} (tid {tid}) is in use; not updated "
                             "(use --force)")
        return Step([f"# Target {want.name} is in use, skipping"])
    return Step([f"# Updating target: {want.name}"], requests)


def diff_target(have: TargetSpec, want: TargetSpec, tid: int, param_defaults: dict[str, str],
                accounts: dict[str, str], warnings: list[str]) -> list[Request]:
    """Requests that turn running target ``have`` into ``want`` without recreating it."""
    out: list[Request] = []
    params = {k: v for k, v in want.iscsi_params.items() if have.iscsi_params.get(k) != v}
    params.update({k: param_defaults[k] for k in have.iscsi_params
                   if k not in want.iscsi_params and k in param_defaults})
    if params:
        out.append({"mode": "target", "op": "update", "tid": tid, "params": params})
    out += _diff_luns(have, want, tid)
    out += _diff_list("initiator_address", have.initiator_addresses,
                      want.initiator_addresses, tid)
    out += _diff_list("initiator_name", have.initiator_names, want.initiator_names, tid)
    out += _diff_accounts(have, want, tid, accounts, warnings)
    if have.state != want.state:
        out.append(_state(tid, want.state))
    return out


def _diff_luns(have: TargetSpec, want: TargetSpec, tid: int) -> list[Request]:
    out: list[Request] = []
    old = {lu.lun: lu for lu in have.luns}
    new = {lu.lun: lu for lu in want.luns}
    for lun, lu in old.items():
        if lun not in new or new[lun].creation_key() != lu.creation_key():
            out.append({"mode": "logicalunit", "op": "delete", "tid": tid, "lun": lun})
    for lu in _changers_last(new.values()):
        lun, before = lu.lun, old.get(lu.lun)
        if before is None or before.creation_key() != lu.creation_key():
            out += lun_requests(tid, lu)
            continue
        out += _diff_lu_params(tid, before, lu)
    return out


def _diff_lu_params(tid: int, before: LunSpec, after: LunSpec) -> list[Request]:
    out: list[Request] = []
    defaults = lu_defaults(tid, after.lun, after.device_type)
    old, new = lu_params(tid, before), lu_params(tid, after)
    changed = {k: v for k, v in new.items() if old.get(k) != v}
    changed.update({k: defaults[k] for k in old if k not in new})
    if changed:
        out.append(_lu_update(tid, after.lun, changed))
    if before.write_cache != after.write_cache:
        page = WRITE_CACHE_ON_PAGE if after.write_cache else WRITE_CACHE_OFF_PAGE
        out.append(_lu_update(tid, after.lun, {"mode_page": page}))
    return out


def _diff_list(key: str, old: list[str], new: list[str], tid: int) -> list[Request]:
    out = [_acl("unbind", tid, key, v) for v in old if v not in new]
    return out + [_acl("bind", tid, key, v) for v in new if v not in old]


def _diff_accounts(have: TargetSpec, want: TargetSpec, tid: int, accounts: dict[str, str],
                   warnings: list[str]) -> list[Request]:
    out: list[Request] = []
    old_users = [u for u, _p in have.incoming]
    new_users = [u for u, _p in want.incoming]
    out += [{"mode": "account", "op": "unbind", "tid": tid, "user": u}
            for u in old_users if u not in new_users]
    for user, password in want.incoming:
        if user not in old_users:
            out += _account_requests(user, password, tid, False, accounts, warnings)
        elif accounts.get(user) != password:
            warnings.append(f"account {user} already exists with another password; "
                            "the existing password is kept")
    old_out = have.outgoing[0] if have.outgoing else None
    new_out = want.outgoing[0] if want.outgoing else None
    if old_out != new_out:
        if old_out:
            out.append({"mode": "account", "op": "unbind", "tid": tid, "user": old_out,
                        "outgoing": True})
        if want.outgoing:
            out += _account_requests(*want.outgoing, tid, True, accounts, warnings)
    return out
