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
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pytgt.config.model import Account, Registry, Target
from pytgt.config.spec import TGT_DEVICE_TYPES, medium_bstype
from pytgt.daemon import alua_admin, redirect, show, show_json, stats
from pytgt.daemon.async_messages import end_sessions
from pytgt.daemon.batch import system_batch
from pytgt.daemon.capacity import prepare_resize
from pytgt.daemon.changer_admin import DaemonMedia
from pytgt.daemon.dump import system_dump
from pytgt.daemon.errors import EXIT_EINVAL, EXIT_USAGE, MgmtError, TgtadmError
from pytgt.daemon.isns import IsnsSettings
from pytgt.daemon.mode_page import apply_mode_page
from pytgt.daemon.persist import READ_ONLY_OPS
from pytgt.daemon.security import SecurityMonitor
from pytgt.daemon.show import (
    LLD_NAME,
    OTHER_PARAMS,
    PARAM_BY_LOWER,
)
from pytgt.iscsi import keys
from pytgt.scsi.lu import LogicalUnit, create_lu
from pytgt.scsi.mmc import CdLogicalUnit
from pytgt.scsi.smc import MediumChanger, element_params
from pytgt.scsi.target import ScsiTarget
from pytgt.stores import open_store
from pytgt.stores.base import (
    BackingStore,
    StoreDeviceError,
    StoreUnavailable,
    SupportsSharedState,
)
from pytgt.stores.paths import BackingPathError, resolve_backing_path

if TYPE_CHECKING:
    from pytgt.daemon.aptpl import AptplStore
    from pytgt.iscsi.session import Session
    from pytgt.net.portal import IscsiService

log = logging.getLogger("pytgt.daemon.mgmt")

_NEED_NAME_VALUE = "update operation requires 'name' and 'value' options"
_STATES = ("ready", "offline")

# tgtadm -Y words -> pytgt device types (create_lu decides which it supports).
Handler = Callable[["Management", dict[str, Any]], Awaitable[str]]


def _err(code: TgtadmError) -> MgmtError:
    return MgmtError(code)


def _invalid(message: str | None = None) -> MgmtError:
    return MgmtError(TgtadmError.INVALID_REQUEST, message)


def parse_params(text: object) -> dict[str, str]:
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


class Management:
    """tgtadm's management requests over one daemon's :class:`Registry`.

    ``service`` (set by the daemon) gives access to live sessions for
    ``--force`` deletes and connection removal; ``shutdown`` (optional, a callable)
    is invoked by ``--op delete --mode system``. ``open_store``, ``create_lu`` and
    ``make_target`` are the store, LU and SCSI target factories (replaceable in tests).
    """

    def __init__(self, registry: Registry, portals: list[tuple[str, int]] | None = None,
                 control_port: int = 0, *,
                 open_store: Callable[..., BackingStore] = open_store,
                 create_lu: Callable[..., LogicalUnit] = create_lu,
                 make_target: Callable[..., ScsiTarget] = ScsiTarget) -> None:
        self.registry = registry
        self.portals = portals if portals is not None else []
        self.control_port = control_port
        self.service: IscsiService | None = None
        self.shutdown: Callable[[], Awaitable[None] | None] | None = None
        self.debug = False
        self.open_store = open_store
        self.create_lu = create_lu
        self.make_target = make_target
        self._lock = asyncio.Lock()
        # awaited after every successful change, under the lock (pytgtd --persist saves);
        # a MgmtError it raises becomes the request's answer
        self.on_change: Callable[[], Awaitable[None]] | None = None
        # APTPL files of persistent reservations (pytgtd sets it)
        self.aptpl: AptplStore | None = None
        # refused logins / control requests and the CHAP back-off (the daemon shares its own)
        self.security = SecurityMonitor()
        # pytgtd --allow-backing-symlinks (pytgt.stores.paths)
        self.allow_backing_symlinks = False
        # pytgtd --iscsi isns=... (shown by --op show --mode system, tgt's iSNS section);
        # isns_admin applies tgt's --op update --mode sys --name iSNS... (ValueError: refused)
        self.isns = IsnsSettings()
        self.isns_admin: Callable[[str, str], Awaitable[None]] | None = None
        # the media changers' drive loader (scsi/smc.py MediaHandler)
        self.media = DaemonMedia(
            registry, lambda path: self.open_store("rdwr", _open_path(self, path)),
            _close_store)

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
        if op == "show" and req.get("json"):  # --json: docs/json.md
            handler = show_json.HANDLERS.get(str(mode))
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

    def sessions_of(self, target: Target) -> list[Session]:
        """The live iSCSI sessions logged in to ``target``."""
        if self.service is None:
            return []
        return [s for s in self.service.sessions.sessions.values() if s.target is target]


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


async def _close_store(store: BackingStore | None, flush: bool = True) -> None:
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
    end_sessions(sessions, "target deleted")  # async logout event, then close
    del m.registry.targets[target.tid]
    for lu in list(target.scsi.luns.values()):
        await _close_store(lu.store)
    log.info("target %d %s deleted", target.tid, target.name)
    return ""


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
    if name.lower() in redirect.PARAMS:  # RedirectAddress/Port/Reason (redirect.py)
        checked_redirect = redirect.check(name, value)
        if checked_redirect is None:
            raise _invalid()
        return checked_redirect
    canonical = PARAM_BY_LOWER.get(name.lower())
    if canonical is None:
        raise _invalid()
    value = value.strip()
    if canonical in OTHER_PARAMS:
        checked = OTHER_PARAMS[canonical][1](value)
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
    drain: int | None = None
    updates: dict[str, str] = {}
    alua = _alua_change(target, {k: v for k, v in params.items() if k in alua_admin.PARAMS})
    for key, val in params.items():
        if key in alua_admin.PARAMS:
            continue
        if key == "state":
            if val not in _STATES:
                raise _invalid()
            state = val
        elif key == redirect.DRAIN:  # ask the sessions to log out (redirect.py)
            drain = redirect.drain_seconds(val)
            if drain is None:
                raise _invalid()
        else:
            canonical, checked = check_target_param(key, val)
            updates[canonical] = checked
    target.iscsi_params.update(updates)
    redirect.prune(target.iscsi_params)
    if state is not None:
        target.state = state
    if alua is not None:
        alua()
    if drain is not None:
        redirect.drain(m.sessions_of(target), drain)
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
    if lun in target.scsi.luns:
        raise _err(TgtadmError.LUN_EXIST)
    device_type = TGT_DEVICE_TYPES.get(_opt_str(req, "device_type") or "disk")
    if device_type is None:
        raise _invalid(f"unknown target type: {req.get('device_type')}")
    bstype = medium_bstype(device_type, _opt_str(req, "bstype") or "rdwr")  # ssc/mmc/smc
    path = _opt_str(req, "backing_store")
    bsoflags = _opt_str(req, "bsoflags")
    block_size = _opt_int(req, "blocksize") or 512
    params = parse_params(req.get("params"))
    mode_page = params.pop("mode_page", None)
    elements = element_params(params) if device_type == "changer" else {}
    empty_drive = device_type == "cd" and not path  # tgt: a CD drive with no disc in
    if lun < 0 or (not path and bstype == "rdwr" and not empty_drive):
        raise _invalid()
    if (device_type == "pt") != (bstype in ("sg", "bsg")):  # tgt: pt's only stores
        raise _invalid("device-type pt needs bstype sg or bsg" if device_type == "pt"
                       else f"bstype {bstype} needs device-type pt, not {device_type}")
    try:  # in a thread: opening may wait on a network (rbd: the Ceph monitors)
        store = None if empty_drive else await asyncio.to_thread(
            m.open_store, bstype, _open_path(m, path), bsopts=_opt_str(req, "bsopts"),
            bsoflags=bsoflags)
    except (BackingPathError, StoreUnavailable, StoreDeviceError) as exc:  # say why
        log.warning("LUN %d of target %d: %s", lun, tid, exc)
        raise _invalid(str(exc)) from None
    except Exception as exc:  # StoreError, or a plugin's own failure
        log.warning("LUN %d of target %d: %s", lun, tid, exc)
        raise _invalid() from None
    try:
        if m.registry.targets.get(tid) is not target:  # deleted while the store opened
            raise _err(TgtadmError.NO_TARGET)
        lu = m.create_lu(device_type, lun, store, tid=tid, path=path, bstype=bstype,
                            bsoflags=bsoflags, block_size=block_size, params=params or None)
        # kept for show and the saved configuration; LogicalUnit does not declare it
        lu.bsopts = _opt_str(req, "bsopts")  # type: ignore[attr-defined]
        if mode_page is not None:
            apply_mode_page(lu, mode_page)
        if isinstance(lu, MediumChanger):
            lu.handler = m.media
            if elements:
                await lu.configure(elements)
        target.scsi.add_lu(lu)
        if m.aptpl is not None:
            m.aptpl.attach(lu, target.name)  # restores APTPL state saved for this LU
        if isinstance(store, SupportsSharedState):  # reservations kept with the medium
            tpgt = m.service.portal_group_tag if m.service is not None else 1
            try:
                lu.shared = await store.share(lu, tpgt)
            except Exception as exc:
                target.scsi.remove_lu(lun)
                raise ValueError(f"shared reservation state: {exc}") from None
    except ValueError as exc:
        await _close_store(store, flush=False)
        log.warning("LUN %d of target %d: %s", lun, tid, exc)
        if lun in target.scsi.luns:
            raise _err(TgtadmError.LUN_EXIST) from None
        raise _invalid() from None
    except BaseException:
        await _close_store(store, flush=False)
        raise
    log.info("target %d: LUN %d (%s %s) created", tid, lun, bstype, path)
    return ""


def _open_path(m: Management, path: str) -> str:
    """The path a store opens (pytgt.stores.paths: symlinks, shared dirs), for every store
    type: any of them may open a file (faulty wraps rdwr; plugins), and a path naming
    nothing (a memory store's size, null's "None") comes back unchanged. The LU keeps the
    configured path for show and the saved configuration."""
    return resolve_backing_path(path, allow_symlinks=m.allow_backing_symlinks)


def _lu(m: Management, req: dict[str, Any]) -> tuple[Target, LogicalUnit]:
    _need_int(req, "tid")
    lun = _need_int(req, "lun")
    target = m.target(req)
    lu = target.scsi.luns.get(lun)
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
    if lu.prevent_removal:
        raise _err(TgtadmError.PREVENT_REMOVAL)
    target.scsi.remove_lu(lu.lun)
    await _close_store(lu.store)
    log.info("target %d: LUN %d deleted", target.tid, lu.lun)
    return ""


async def lu_update(m: Management, req: dict[str, Any]) -> str:
    _target, lu = _lu(m, req)
    params = parse_params(req.get("params"))
    mode_page = params.pop("mode_page", None)
    medium = params.pop("path", None) if isinstance(lu, CdLogicalUnit) else None
    elements = element_params(params) if isinstance(lu, MediumChanger) else {}
    try:
        # size=, rescan=1 (capacity.py); in a thread: reading the size may block (fstat,
        # librbd's image.size())
        resize = await asyncio.to_thread(prepare_resize, lu, params)
    except ValueError as exc:
        raise _invalid(str(exc)) from None
    if mode_page is not None:  # tgt's bare "invalid request"; the reason is logged
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
        except (OSError, MemoryError) as exc:
            raise _invalid(f"resizing: {exc or 'out of memory'}") from None
    if medium is not None and isinstance(lu, CdLogicalUnit):
        await _change_medium(m, lu, medium)
    if elements and isinstance(lu, MediumChanger):  # tgt's bare "invalid request" too
        try:
            await lu.configure(elements)
        except ValueError as exc:
            log.warning("LUN %d: %s", lu.lun, exc)
            raise _invalid() from None
    return ""


async def _change_medium(m: Management, lu: CdLogicalUnit, path: str) -> None:
    """tgt's ``--params path=FILE`` on a CD LU: swap the medium (empty: eject it)."""
    if lu.prevent_removal:
        raise _err(TgtadmError.PREVENT_REMOVAL)
    store: BackingStore | None = None
    if path:
        try:  # in a thread, as for a new LU: opening may block
            store = await asyncio.to_thread(m.open_store, lu.bstype, _open_path(m, path),
                                            bsoflags=lu.bsoflags)
        except Exception as exc:
            log.warning("LUN %d: new medium %s: %s", lu.lun, path, exc)
            raise _invalid(str(exc)) from None
    await _close_store(lu.change_medium(store, path), flush=False)
    log.info("LUN %d: medium %s", lu.lun, path or "ejected")


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
    holders: list[Target | Registry] = [*m.registry.targets.values(), m.registry]
    for holder in holders:
        _unbind_everywhere(holder, user)
    return ""


def _unbind_everywhere(holder: Target | Registry, user: str) -> None:
    if user in holder.incoming_accounts:
        holder.incoming_accounts.remove(user)
    if holder.outgoing_account == user:
        holder.outgoing_account = None


def _account_holder(m: Management, req: dict[str, Any]) -> Target | Registry:
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


async def system_update(m: Management, req: dict[str, Any]) -> str:
    name, value = req.get("name"), req.get("value")
    if name is None or value is None:
        raise _invalid(_NEED_NAME_VALUE)
    if name == "State" and value in _STATES:
        m.registry.state = str(value)
    elif name == "debug" and value in ("on", "off"):
        m.debug = value == "on"
        logging.getLogger("pytgt").setLevel(logging.DEBUG if m.debug else logging.INFO)
    elif str(name).startswith("iSNS") and m.isns_admin is not None:
        try:
            await m.isns_admin(str(name), str(value))
        except ValueError:
            raise _invalid() from None
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


async def lld_start(m: Management, req: dict[str, Any]) -> str:
    return ""


async def lld_stop(m: Management, req: dict[str, Any]) -> str:
    if m.registry.targets:
        raise _err(TgtadmError.DRIVER_ACTIVE)
    return ""


def _session(m: Management, req: dict[str, Any]) -> tuple[Target, Session]:
    target = m.target(req)
    sid = _opt_int(req, "sid")
    for session in m.sessions_of(target):
        if session.tsih == sid:
            return target, session
    raise _err(TgtadmError.NO_SESSION)


async def conn_delete(m: Management, req: dict[str, Any]) -> str:
    _target, session = _session(m, req)
    cid = _opt_int(req, "cid")
    conn = session.connections.get(cid) if cid is not None else None
    if conn is None:
        raise _err(TgtadmError.NO_CONNECTION)
    conn.close("connection removed by the administrator")
    return ""


async def session_delete(m: Management, req: dict[str, Any]) -> str:
    _target, session = _session(m, req)
    for conn in list(session.connections.values()):
        conn.close("session removed by the administrator")
    return ""


HANDLERS: dict[tuple[str, str], Handler] = {
    ("target", "new"): target_new,
    ("target", "delete"): target_delete,
    ("target", "show"): show.target_show,
    ("target", "bind"): target_bind,
    ("target", "unbind"): target_unbind,
    ("target", "update"): target_update,
    ("logicalunit", "new"): lu_new,
    ("logicalunit", "delete"): lu_delete,
    ("logicalunit", "update"): lu_update,
    ("account", "new"): account_new,
    ("account", "delete"): account_delete,
    ("account", "show"): show.account_show,
    ("account", "bind"): account_bind,
    ("account", "unbind"): account_unbind,
    ("system", "show"): show.system_show,
    ("system", "update"): system_update,
    ("system", "delete"): system_delete,
    ("lld", "show"): show.lld_show,
    ("lld", "start"): lld_start,
    ("lld", "stop"): lld_stop,
    ("conn", "show"): show.conn_show,
    ("conn", "delete"): conn_delete,
    ("session", "show"): show.session_show,
    ("session", "delete"): session_delete,
    ("system", "dump"): system_dump,
    ("system", "batch"): system_batch,
    ("system", "stat"): stats.system_stat,
    ("target", "stat"): stats.target_stat,
    ("logicalunit", "stat"): stats.lu_stat,
}
MODES = frozenset(mode for mode, _op in HANDLERS)
