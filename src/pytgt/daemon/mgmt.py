"""The control plane: tgtadm's mode x op table over the configuration model.

:meth:`Management.handle` takes the request dict pytgtadm builds (keys ``mode``,
``op``, ``tid``, ``lun``, ``targetname``, ...), runs the handler of that
(mode, op) and returns ``(exit_status, text)``: the show output on success, or the
one-line error message (no program prefix) that tgtadm prints for the same mistake.
Handlers raise :class:`~pytgt.daemon.errors.MgmtError`; nothing else escapes.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from pytgt.config.model import Account, Registry, Target
from pytgt.daemon import alua_admin, live, lu_show, stats
from pytgt.daemon.config_ops import READ_ONLY_OPS, apply_mode_page, system_batch, system_dump
from pytgt.daemon.errors import EXIT_EINVAL, EXIT_USAGE, MgmtError, TgtadmError
from pytgt.daemon.security import SecurityMonitor
from pytgt.iscsi import keys
from pytgt.scsi.lu import DEVICE_TYPES as SUPPORTED_DEVICE_TYPES
from pytgt.scsi.lu import create_lu
from pytgt.scsi.target import ScsiTarget
from pytgt.stores import available, open_store
from pytgt.stores.paths import BackingPathError, resolve_backing_path

log = logging.getLogger("pytgt.daemon.mgmt")
PATH_STORES = frozenset({"rdwr"})  # bstypes whose backing store is a file or device

LLD_NAME = "iscsi"
_NEED_NAME_VALUE = "update operation requires 'name' and 'value' options"
_STATES = ("ready", "offline")

# tgtadm -Y words -> pytgt device types (create_lu decides which it supports).
DEVICE_TYPES = {"disk": "disk", "tape": "tape", "ssc": "tape", "cd": "cd",
                "changer": "changer", "pt": "pt"}
# device type -> the "Type:" word of --op show
_TYPE_SHOWN = {"disk": "disk", "controller": "controller", "cd": "cd/dvd", "tape": "tape",
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
_OTHER_PARAMS: dict[str, tuple[str, Callable[[str], str | None]]] = {
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
_PARAM_BY_LOWER = {name.lower(): name for name in (*TARGET_PARAMS, *keys.TARGET_DEFAULTS)}

Handler = Callable[["Management", dict[str, Any]], Awaitable[str]]


def _err(code: TgtadmError) -> MgmtError:
    return MgmtError(code)


def _invalid(message: str | None = None) -> MgmtError:
    return MgmtError(TgtadmError.INVALID_REQUEST, message)


def _yes(flag: Any) -> str:
    return "Yes" if flag else "No"


def parse_params(text: Any) -> dict[str, str]:
    """``k=v,k=v`` (tgtadm --params) as a dict; a dict passes through. Raises MgmtError."""
    if text is None or text == "":
        return {}
    if isinstance(text, dict):
        return {str(k): str(v) for k, v in text.items()}
    if not isinstance(text, str):
        raise _invalid()
    out: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise _invalid()
        out[key.strip()] = value.strip()
    return out


def valid_target_name(name: str) -> bool:
    """An iSCSI name tgt would accept: 1..223 bytes, no whitespace or control chars."""
    raw = name.encode("utf-8", "replace")
    return 0 < len(raw) <= 223 and all(c > 0x20 and c != 0x7F for c in raw)


def size_mb(size: int) -> int:
    """tgtadm's ``Size: N MB``: bytes / 10^6, rounded to the nearest."""
    return (int(size) + 500_000) // 1_000_000


class Management:
    """tgtadm's management requests over one daemon's :class:`Registry`.

    ``service`` (set by the daemon) gives access to live sessions for
    ``--force`` deletes and connection removal; ``shutdown`` (optional, a callable)
    is invoked by ``--op delete --mode system``. ``open_store``, ``create_lu`` and
    ``make_target`` are the store, LU and SCSI target factories (replaceable in tests).
    """

    def __init__(self, registry: Registry, portals: list[tuple[str, int]] | None = None,
                 control_port: int = 0, *, open_store: Callable[..., Any] = open_store,
                 create_lu: Callable[..., Any] = create_lu,
                 make_target: Callable[..., Any] = ScsiTarget) -> None:
        self.registry = registry
        self.portals = portals if portals is not None else []
        self.control_port = control_port
        self.service: Any = None
        self.shutdown: Callable[[], Any] | None = None
        self.debug = False
        self.open_store = open_store
        self.create_lu = create_lu
        self.make_target = make_target
        self._lock = asyncio.Lock()
        # awaited after every successful change, under the lock (pytgtd --persist saves);
        # a MgmtError it raises becomes the request's answer
        self.on_change: Callable[[], Awaitable[None]] | None = None
        # APTPL files of persistent reservations (pr_state.AptplStore; pytgtd sets it)
        self.aptpl: Any = None
        # refused logins / control requests and the CHAP back-off (the daemon shares its own)
        self.security = SecurityMonitor()
        # pytgtd --allow-backing-symlinks (pytgt.stores.paths)
        self.allow_backing_symlinks = False

    async def handle(self, request: dict[str, Any]) -> tuple[int, str]:
        """Run one request; returns ``(exit_status, text)`` and never raises."""
        try:
            async with self._lock:
                out = await self._dispatch(request)
                if self.on_change is not None and request.get("op") not in READ_ONLY_OPS:
                    await self.on_change()
        except MgmtError as exc:
            return exc.exit_status, exc.message
        except Exception:  # a bug must be one line for the admin, a traceback in the log
            log.exception("management request %r failed", request)
            return EXIT_EINVAL, "unknown error"
        return 0, out

    async def _dispatch(self, req: dict[str, Any]) -> str:
        mode, op = req.get("mode"), req.get("op")
        handler = HANDLERS.get((str(mode), str(op)))
        if handler is None:
            if mode not in MODES:
                raise MgmtError(TgtadmError.INVALID_REQUEST, f"unknown mode: {mode}", EXIT_USAGE)
            raise _invalid()
        lld = req.get("lld")
        if lld not in (None, "", LLD_NAME) and mode not in ("system",):
            raise _err(TgtadmError.NO_DRIVER)
        return await handler(self, req)

    # -- lookups -----------------------------------------------------------------
    def target(self, req: dict[str, Any]) -> Target:
        tid = _opt_int(req, "tid")
        target = self.registry.targets.get(tid) if tid is not None else None
        if target is None:
            raise _err(TgtadmError.NO_TARGET)
        return target

    def sessions_of(self, target: Target) -> list[Any]:
        """The live iSCSI sessions logged in to ``target``."""
        table = getattr(getattr(self.service, "sessions", None), "sessions", None)
        if not isinstance(table, dict):
            return []
        return [s for s in table.values() if getattr(s, "target", None) is target]



# -- request field helpers -------------------------------------------------------------
def _opt_int(req: dict[str, Any], key: str) -> int | None:
    value = req.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise _invalid()
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _invalid() from None


def _need_int(req: dict[str, Any], key: str) -> int:
    value = _opt_int(req, key)
    if value is None:
        raise _invalid(f"'{key}' option is necessary")
    return value


def _opt_str(req: dict[str, Any], key: str) -> str:
    value = req.get(key)
    return "" if value is None else str(value)


async def _close_store(store: Any, flush: bool = True) -> None:
    """Flush and close a store; failures are logged (the LU is gone either way)."""
    if store is None:
        return
    try:
        if flush:
            await store.flush()
        await store.close()
    except Exception:
        log.exception("closing a backing store")


# -- target mode ------------------------------------------------------------------------
async def target_new(m: Management, req: dict[str, Any]) -> str:
    tid = _need_int(req, "tid")
    if tid <= 0:
        raise _invalid("'tid' cannot be 0")
    name = _opt_str(req, "targetname")
    if not name:
        raise _invalid("creating new target requires a name, use --targetname")
    if tid in m.registry.targets or m.registry.by_name(name) is not None:
        raise _err(TgtadmError.TARGET_EXIST)
    if not valid_target_name(name):
        raise _invalid()
    scsi = m.make_target(name, tid=tid)
    m.registry.targets[tid] = Target(tid=tid, name=name, scsi=scsi)
    log.info("target %d %s created", tid, name)
    return ""


async def target_delete(m: Management, req: dict[str, Any]) -> str:
    target = m.target(req)
    sessions = m.sessions_of(target)
    if (sessions or target.nexuses) and not req.get("force"):
        raise _err(TgtadmError.TARGET_ACTIVE)
    target.state = "offline"
    live.end_sessions(sessions, "target deleted")  # async logout event, then close
    del m.registry.targets[target.tid]
    for lu in list(getattr(target.scsi, "luns", {}).values()):
        await _close_store(getattr(lu, "store", None))
    log.info("target %d %s deleted", target.tid, target.name)
    return ""


async def target_show(m: Management, req: dict[str, Any]) -> str:
    if _opt_int(req, "tid") is not None:
        return format_target_params(m.target(req))
    targets = sorted(m.registry.targets.values(), key=lambda t: t.tid)
    return "".join(format_target(t) for t in targets)


def _acl_request(req: dict[str, Any], op: str) -> tuple[str, str]:
    address, name = _opt_str(req, "initiator_address"), _opt_str(req, "initiator_name")
    if not address and not name:
        raise _invalid(f"{op} operation requires initiator-address, initiator-nameor bus")
    return address, name


async def target_bind(m: Management, req: dict[str, Any]) -> str:
    address, name = _acl_request(req, "bind")
    target = m.target(req)
    if address:
        _acl_add(target.initiator_addresses, address)
    if name:
        _acl_add(target.initiator_names, name)
    return ""


async def target_unbind(m: Management, req: dict[str, Any]) -> str:
    address, name = _acl_request(req, "unbind")
    target = m.target(req)
    if address:
        _acl_remove(target.initiator_addresses, address)
    if name:
        _acl_remove(target.initiator_names, name)
    return ""


def _acl_add(rules: list[str], rule: str) -> None:
    if rule in rules:
        raise _err(TgtadmError.ACL_EXIST)
    rules.append(rule)


def _acl_remove(rules: list[str], rule: str) -> None:
    if rule not in rules:
        raise _err(TgtadmError.ACL_NOEXIST)
    rules.remove(rule)


def check_target_param(name: str, value: str) -> tuple[str, str]:
    """Validate one target parameter; returns (canonical name, canonical value)."""
    canonical = _PARAM_BY_LOWER.get(name.lower())
    if canonical is None:
        raise _invalid()
    value = value.strip()
    if canonical in _OTHER_PARAMS:
        checked = _OTHER_PARAMS[canonical][1](value)
    else:
        checked = _iscsi_value(canonical, value)
    if checked is None:
        raise _invalid()
    return canonical, checked


def _iscsi_value(name: str, value: str) -> str | None:
    """An iSCSI key's value as the key table spells it, if the login layer accepts it."""
    key = keys.KEYS.get(name, keys.KEYS["MaxRecvDataSegmentLength"])
    if key.boolean:
        value = value.capitalize()
    elif key.values:
        spelled = {v.lower(): v for v in key.values}
        value = ",".join(spelled.get(v.strip().lower(), v) for v in value.split(","))
    try:
        if key.numeric:
            value = str(keys.parse_number(value))
        keys.target_values({name: value})
    except ValueError:
        return None
    return value


async def target_update(m: Management, req: dict[str, Any]) -> str:
    name, value = req.get("name"), req.get("value")
    params = parse_params(req.get("params"))
    if not params and (name is None or value is None):
        raise _invalid(_NEED_NAME_VALUE)
    target = m.target(req)
    if name is not None and value is not None:
        params = {str(name): str(value), **params}
    state = None
    updates: dict[str, str] = {}
    alua = _alua_change(target, {k: v for k, v in params.items() if k in alua_admin.PARAMS})
    for key, val in params.items():
        if key in alua_admin.PARAMS:
            continue
        if key == "state":
            if val not in _STATES:
                raise _invalid()
            state = val
        else:
            canonical, checked = check_target_param(key, val)
            updates[canonical] = checked
    target.iscsi_params.update(updates)
    if state is not None:
        target.state = state
    if alua is not None:
        alua()
    return ""


def _alua_change(target: Target, params: dict[str, str]) -> Callable[[], None] | None:
    """The checked ALUA state change of an update (alua_admin), or None."""
    if not params:
        return None
    try:
        return alua_admin.prepare(target.scsi, params)
    except ValueError as exc:
        log.warning("target %d: %s", target.tid, exc)
        raise _invalid() from None


# -- logicalunit mode ---------------------------------------------------------------------
async def lu_new(m: Management, req: dict[str, Any]) -> str:
    tid = _need_int(req, "tid")
    lun = _need_int(req, "lun")
    if tid == 0:
        raise _invalid("'tid' must not be 0")
    target = m.target(req)
    if lun in getattr(target.scsi, "luns", {}):
        raise _err(TgtadmError.LUN_EXIST)
    device_type = DEVICE_TYPES.get(_opt_str(req, "device_type") or "disk")
    if device_type is None:
        raise _invalid(f"unknown target type: {req.get('device_type')}")
    bstype = _opt_str(req, "bstype") or "rdwr"
    path = _opt_str(req, "backing_store")
    bsoflags = _opt_str(req, "bsoflags")
    block_size = _opt_int(req, "blocksize") or 512
    params = parse_params(req.get("params"))
    mode_page = params.pop("mode_page", None)
    if lun < 0 or (not path and bstype == "rdwr"):
        raise _invalid()
    try:
        store = m.open_store(bstype, _open_path(m, bstype, path),
                             bsopts=_opt_str(req, "bsopts"), bsoflags=bsoflags)
    except BackingPathError as exc:
        log.warning("LUN %d of target %d: %s", lun, tid, exc)
        raise _invalid(str(exc)) from None
    except Exception as exc:  # StoreError, or a plugin's own failure
        log.warning("LUN %d of target %d: %s", lun, tid, exc)
        raise _invalid() from None
    try:
        lu = m.create_lu(device_type, lun, store, tid=tid, path=path, bstype=bstype,
                            bsoflags=bsoflags, block_size=block_size, params=params or None)
        lu.bsopts = _opt_str(req, "bsopts")
        if mode_page is not None:
            apply_mode_page(lu, mode_page)
        target.scsi.add_lu(lu)
        if m.aptpl is not None and getattr(lu, "pr", None) is not None:
            m.aptpl.attach(lu, target.name)  # restores APTPL state saved for this LU
    except ValueError as exc:
        await _close_store(store, flush=False)
        log.warning("LUN %d of target %d: %s", lun, tid, exc)
        if lun in getattr(target.scsi, "luns", {}):
            raise _err(TgtadmError.LUN_EXIST) from None
        raise _invalid() from None
    except BaseException:
        await _close_store(store, flush=False)
        raise
    log.info("target %d: LUN %d (%s %s) created", tid, lun, bstype, path)
    return ""


def _open_path(m: Management, bstype: str, path: str) -> str:
    """The file a path-backed store opens (pytgt.stores.paths: symlinks, shared dirs);
    the LU keeps the configured path for show and the saved configuration."""
    if bstype not in PATH_STORES:
        return path
    return resolve_backing_path(path, allow_symlinks=m.allow_backing_symlinks)


def _lu(m: Management, req: dict[str, Any]) -> tuple[Target, Any]:
    _need_int(req, "tid")
    lun = _need_int(req, "lun")
    target = m.target(req)
    lu = getattr(target.scsi, "luns", {}).get(lun)
    if lu is None:
        raise _err(TgtadmError.NO_LUN)
    return target, lu


async def lu_delete(m: Management, req: dict[str, Any]) -> str:
    if _opt_int(req, "tid") not in m.registry.targets:
        _need_int(req, "tid")
        _need_int(req, "lun")
        raise _err(TgtadmError.NO_LUN)  # tgt's answer for a LUN of a missing target
    target, lu = _lu(m, req)
    if lu.lun == 0:
        raise _invalid()
    if getattr(lu, "prevent_removal", False):
        raise _err(TgtadmError.PREVENT_REMOVAL)
    target.scsi.remove_lu(lu.lun)
    await _close_store(getattr(lu, "store", None))
    log.info("target %d: LUN %d deleted", target.tid, lu.lun)
    return ""


async def lu_update(m: Management, req: dict[str, Any]) -> str:
    _target, lu = _lu(m, req)
    params = parse_params(req.get("params"))
    mode_page = params.pop("mode_page", None)
    try:
        resize = live.prepare_resize(lu, params)  # size=, rescan=1 (live.py)
    except ValueError as exc:
        log.warning("LUN %d: %s", lu.lun, exc)
        raise _invalid() from None
    if mode_page is not None:
        try:
            apply_mode_page(lu, mode_page)
        except ValueError as exc:
            log.warning("LUN %d: %s", lu.lun, exc)
            raise _invalid() from None
    if params:
        try:
            lu.update_params(params)
        except ValueError as exc:
            log.warning("LUN %d: %s", lu.lun, exc)
            raise _invalid() from None
    if resize is not None:
        try:
            resize()
        except OSError as exc:
            log.warning("LUN %d: resizing: %s", lu.lun, exc)
            raise _invalid() from None
    return ""


# -- account mode -------------------------------------------------------------------------
def _user(req: dict[str, Any]) -> str:
    user = _opt_str(req, "user")
    if not user:
        raise _invalid("'user' option is necessary")
    return user


async def account_new(m: Management, req: dict[str, Any]) -> str:
    user, password = _opt_str(req, "user"), _opt_str(req, "password")
    if not user or not password:
        raise _invalid("'user' and 'password' options are required")
    if user in m.registry.accounts:
        raise _err(TgtadmError.USER_EXIST)
    m.registry.accounts[user] = Account(user, password)
    return ""


async def account_delete(m: Management, req: dict[str, Any]) -> str:
    user = _user(req)
    if user not in m.registry.accounts:
        raise _err(TgtadmError.NO_USER)
    del m.registry.accounts[user]
    for holder in [*m.registry.targets.values(), m.registry]:
        _unbind_everywhere(holder, user)
    return ""


def _unbind_everywhere(holder: Any, user: str) -> None:
    if user in holder.incoming_accounts:
        holder.incoming_accounts.remove(user)
    if holder.outgoing_account == user:
        holder.outgoing_account = None


async def account_show(m: Management, req: dict[str, Any]) -> str:
    users = list(reversed(m.registry.accounts))  # tgt lists the newest first
    return "Account list:\n" + "".join(f"    {u}\n" for u in users) if users else ""


def _account_holder(m: Management, req: dict[str, Any]) -> Any:
    """The target named by --tid, or the registry itself (discovery accounts)."""
    return m.target(req) if _opt_int(req, "tid") is not None else m.registry


async def account_bind(m: Management, req: dict[str, Any]) -> str:
    user = _user(req)
    holder = _account_holder(m, req)
    if user not in m.registry.accounts:
        raise _err(TgtadmError.NO_USER)
    if req.get("outgoing"):
        if holder.outgoing_account is not None:
            raise _err(TgtadmError.OUTACCOUNT_EXIST)
        holder.outgoing_account = user
    else:
        if user in holder.incoming_accounts:
            raise _err(TgtadmError.USER_EXIST)
        holder.incoming_accounts.append(user)
    return ""


async def account_unbind(m: Management, req: dict[str, Any]) -> str:
    user = _user(req)
    holder = _account_holder(m, req)
    if req.get("outgoing"):
        if holder.outgoing_account != user:
            raise _err(TgtadmError.NO_USER)
        holder.outgoing_account = None
    else:
        if user not in holder.incoming_accounts:
            raise _err(TgtadmError.NO_USER)
        holder.incoming_accounts.remove(user)
    return ""


# -- system, lld, conn, session ------------------------------------------------------------
async def system_show(m: Management, req: dict[str, Any]) -> str:
    lines = ["System:", f"    State: {m.registry.state}",
             f"    debug: {'on' if m.debug else 'off'}", "LLDs:", f"    {LLD_NAME}: ready",
             "Backing stores:"]
    for name in available():
        lines.append(f"    {name} (bsoflags sync:direct)" if name == "rdwr" else f"    {name}")
    lines.append("Device types:")
    lines += [f"    {_TYPE_SHOWN.get(t, t)}" for t in SUPPORTED_DEVICE_TYPES]
    lines += ["iSNS:", "    iSNS=Off", "    iSNSServerIP=", "    iSNSServerPort=3205",
              "    iSNSAccessControl=Off"]
    return "\n".join(lines) + "\n"


async def system_update(m: Management, req: dict[str, Any]) -> str:
    name, value = req.get("name"), req.get("value")
    if name is None or value is None:
        raise _invalid(_NEED_NAME_VALUE)
    if name == "State" and value in _STATES:
        m.registry.state = str(value)
    elif name == "debug" and value in ("on", "off"):
        m.debug = value == "on"
        logging.getLogger("pytgt").setLevel(logging.DEBUG if m.debug else logging.INFO)
    else:
        raise _invalid()
    return ""


async def system_delete(m: Management, req: dict[str, Any]) -> str:
    if m.registry.targets or m.shutdown is None:
        raise _invalid()
    result = m.shutdown()
    if asyncio.iscoroutine(result):
        await result
    return ""


async def lld_show(m: Management, req: dict[str, Any]) -> str:
    lines = ["LLDs:", f"    {LLD_NAME}: ready"]
    for t in sorted(m.registry.targets.values(), key=lambda t: t.tid):
        lines.append(f"        Target {t.tid}: {t.name}")
    return "\n".join(lines) + "\n"


async def lld_start(m: Management, req: dict[str, Any]) -> str:
    return ""


async def lld_stop(m: Management, req: dict[str, Any]) -> str:
    if m.registry.targets:
        raise _err(TgtadmError.DRIVER_ACTIVE)
    return ""


async def conn_show(m: Management, req: dict[str, Any]) -> str:
    target = m.target(req)
    sid = _opt_int(req, "sid")
    out = []
    for nexus_id, info in sorted(target.nexuses.items()):
        if sid is not None and sid != nexus_id:
            continue
        out.append(f"Session: {nexus_id}\n")
        for cid, conn in sorted(info.connections.items()):
            out.append(f"    Connection: {cid}\n        Initiator: {info.initiator_name}\n"
                       f"        IP Address: {conn.address}\n")
    return "".join(out)


def _session(m: Management, req: dict[str, Any]) -> tuple[Target, Any]:
    target = m.target(req)
    sid = _opt_int(req, "sid")
    for session in m.sessions_of(target):
        if getattr(session, "tsih", None) == sid:
            return target, session
    raise _err(TgtadmError.NO_SESSION)


async def conn_delete(m: Management, req: dict[str, Any]) -> str:
    _target, session = _session(m, req)
    conn = getattr(session, "connections", {}).get(_opt_int(req, "cid"))
    if conn is None:
        raise _err(TgtadmError.NO_CONNECTION)
    conn.close("connection removed by the administrator")
    return ""


async def session_show(m: Management, req: dict[str, Any]) -> str:
    target = m.target(req)
    sid = _opt_int(req, "sid")
    out = []
    for nexus_id, info in sorted(target.nexuses.items()):
        if sid is not None and sid != nexus_id:
            continue
        alias = info.initiator_alias or "none"
        out.append(f"Session: {nexus_id}\n"
                   f"    Initiator: {info.initiator_name} alias: {alias}\n")
        for cid, conn in sorted(info.connections.items()):
            out.append(f"    Connection: {cid}\n        IP Address: {conn.address}\n")
        if info.params:
            out.append("    Negotiated parameters:\n")
            out += [f"        {k}={v}\n" for k, v in info.params.items()]
    return "".join(out)


async def session_delete(m: Management, req: dict[str, Any]) -> str:
    _target, session = _session(m, req)
    for conn in list(getattr(session, "connections", {}).values()):
        conn.close("session removed by the administrator")
    return ""


# -- show formatting (tgtadm's layout, line for line) ------------------------------------
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
    for _lun, lu in sorted(getattr(t.scsi, "luns", {}).items()):
        lines += format_lu(lu)
    lines.append("    Account information:")
    lines += [f"        {u}" for u in t.incoming_accounts]
    if t.outgoing_account:
        lines.append(f"        {t.outgoing_account} (outgoing)")
    lines.append("    ACL information:")
    lines += [f"        {rule}" for rule in [*t.initiator_addresses, *t.initiator_names]]
    return "\n".join(lines) + "\n"


def format_lu(lu: Any) -> list[str]:
    """The ``LUN: N`` block of one logical unit (tgt shows LUN 0's block size as 1)."""
    dtype = str(getattr(lu, "device_type", "disk"))
    return [
        f"        LUN: {lu.lun}",
        f"            Type: {_TYPE_SHOWN.get(dtype, dtype)}",
        f"            SCSI ID: {getattr(lu, 'scsi_id', '')}",
        f"            SCSI SN: {getattr(lu, 'scsi_sn', '')}",
        f"            Size: {size_mb(getattr(lu, 'size', 0) or 0)} MB, "
        f"Block size: {1 if dtype == 'controller' else getattr(lu, 'block_size', 512)}",
        f"            Online: {_yes(getattr(lu, 'online', True))}",
        f"            Removable media: {_yes(getattr(lu, 'removable', False))}",
        f"            Prevent removal: {_yes(getattr(lu, 'prevent_removal', False))}",
        f"            Readonly: {_yes(getattr(lu, 'readonly', False))}",
        f"            SWP: {_yes(getattr(lu, 'swp', False))}",
        f"            Thin-provisioning: {_yes(getattr(lu, 'thin_provisioning', False))}",
        f"            Backing store type: {getattr(lu, 'bstype', '') or 'null'}",
        f"            Backing store path: {getattr(lu, 'path', '') or 'None'}",
        f"            Backing store flags: {getattr(lu, 'bsoflags', '') or ''}",
        *lu_show.reservation_lines(lu),  # none while nobody reserved or registered
    ]


def format_target_params(t: Target) -> str:
    """``--op show --mode target --tid N``: the target's parameters, key=value."""
    values = {name: default for name, (default, _rule) in _OTHER_PARAMS.items()}
    iscsi = {k: v for k, v in t.iscsi_params.items() if keys.settable(k)}
    try:
        values.update(keys.target_values(iscsi))
    except ValueError:  # set behind our back; show what is stored
        values.update(keys.target_values({}), **iscsi)
    values.update((k, v) for k, v in t.iscsi_params.items() if k in _OTHER_PARAMS)
    return ("".join(f"{k}={values.get(k, '')}\n" for k in TARGET_PARAMS)
            + alua_admin.show_params(t.scsi))


HANDLERS: dict[tuple[str, str], Handler] = {
    ("target", "new"): target_new,
    ("target", "delete"): target_delete,
    ("target", "show"): target_show,
    ("target", "bind"): target_bind,
    ("target", "unbind"): target_unbind,
    ("target", "update"): target_update,
    ("logicalunit", "new"): lu_new,
    ("logicalunit", "delete"): lu_delete,
    ("logicalunit", "update"): lu_update,
    ("account", "new"): account_new,
    ("account", "delete"): account_delete,
    ("account", "show"): account_show,
    ("account", "bind"): account_bind,
    ("account", "unbind"): account_unbind,
    ("system", "show"): system_show,
    ("system", "update"): system_update,
    ("system", "delete"): system_delete,
    ("lld", "show"): lld_show,
    ("lld", "start"): lld_start,
    ("lld", "stop"): lld_stop,
    ("conn", "show"): conn_show,
    ("conn", "delete"): conn_delete,
    ("session", "show"): session_show,
    ("session", "delete"): session_delete,
    ("system", "dump"): system_dump,
    ("system", "batch"): system_batch,
    ("system", "stat"): stats.system_stat,
    ("target", "stat"): stats.target_stat,
    ("logicalunit", "stat"): stats.lu_stat,
}
MODES = frozenset(mode for mode, _op in HANDLERS)
