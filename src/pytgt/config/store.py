"""The running configuration as data, and its atomic save and load (rtslib's save_to_file).

:func:`snapshot` reads a :class:`~pytgt.config.model.Registry` into a
:class:`~pytgt.config.spec.ConfigSpec` (only values that differ from a new object's);
:func:`save` writes it as JSON so that a crash leaves either the old file or the new
one, never a mix: temp file mode 0600 in the same directory, fsync, ``os.replace``,
fsync of the directory. :func:`load` reads it back.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Any

from pytgt.config.model import Registry, Target
from pytgt.config.spec import LU_PARAMS, ConfigSpec, LunSpec, TargetSpec, lu_defaults
from pytgt.stores.base import store_identity

CONFIG_FILE = "config.json"


def _flag(value: Any) -> str:
    return "1" if value else "0"


def _thin(lu: Any) -> str:
    """``auto`` while the LU's thin provisioning is its store's default, else 0 or 1."""
    if getattr(lu, "store", True) is None:  # a drive without medium: nothing to provision
        return "auto"
    thin = bool(getattr(lu, "thin_provisioning", False))
    return "auto" if thin == bool(getattr(lu, "thin_default", False)) else _flag(thin)


def snapshot_lu(tid: int, lu: Any) -> LunSpec:
    """One logical unit's settings (parameters equal to a new LU's are left out)."""
    defaults = lu_defaults(tid, lu.lun, str(lu.device_type))
    ident = store_identity(getattr(lu, "store", None))
    if ident:  # the store names the LU (an RBD image id): left out like tgt's default
        defaults.update(scsi_id=ident, scsi_sn=ident)
    values = {
        "vendor_id": str(lu.vendor_id), "product_id": str(lu.product_id),
        "product_rev": str(lu.product_rev), "scsi_id": str(lu.scsi_id),
        "scsi_sn": str(lu.scsi_sn), "removable": _flag(lu.removable),
        "readonly": _flag(lu.readonly), "online": _flag(lu.online),
        "sense_format": str(int(getattr(lu, "sense_format", 0))),
        "thin_provisioning": _thin(lu),
        "swp": _flag(getattr(lu, "swp", False)),
        "max_iops": str(getattr(lu, "max_iops", 0)), "max_bps": str(getattr(lu, "max_bps", 0)),
    }
    mode = getattr(lu, "mode", None)
    block_size = int(getattr(lu, "block_size", 512))
    changer = getattr(lu, "device_type", "") == "changer"
    return LunSpec(
        # a changer's drive: the path it was created with, not the cartridge it holds
        lun=int(lu.lun), path=str(getattr(lu, "config_path", None) or lu.path),
        bstype=str(lu.bstype),
        bsopts=str(getattr(lu, "bsopts", "") or ""), bsoflags=str(lu.bsoflags or ""),
        blocksize=block_size if block_size != 512 else None,
        device_type=str(lu.device_type),
        params={k: values[k] for k in LU_PARAMS if values[k] != defaults[k]},
        write_cache=bool(getattr(mode, "DEFAULT_WCE", True)),
        elements=lu.state() if changer else [])  # a changer's elements (scsi/smc.py)


def snapshot_target(t: Target, registry: Registry,
                    param_defaults: dict[str, str]) -> TargetSpec:
    luns = [snapshot_lu(t.tid, lu) for _n, lu in sorted(getattr(t.scsi, "luns", {}).items())
            if getattr(lu, "device_type", "disk") != "controller"]
    accounts = registry.accounts
    incoming = [(u, accounts[u].password) for u in t.incoming_accounts if u in accounts]
    out = t.outgoing_account
    return TargetSpec(
        name=t.name, tid=t.tid, luns=luns,
        initiator_addresses=list(t.initiator_addresses),
        initiator_names=list(t.initiator_names), incoming=incoming,
        outgoing=(out, accounts[out].password) if out and out in accounts else None,
        iscsi_params={k: v for k, v in t.iscsi_params.items()
                      if param_defaults.get(k) != v},
        state=t.state)


def snapshot(registry: Registry, param_defaults: dict[str, str] | None = None) -> ConfigSpec:
    """The configuration of ``registry`` (targets by tid, every account, discovery binds)."""
    defaults = param_defaults or {}
    accounts = registry.accounts
    config = ConfigSpec(
        targets=[snapshot_target(t, registry, defaults)
                 for _tid, t in sorted(registry.targets.items())],
        accounts={u: a.password for u, a in accounts.items()},
        discovery_incoming=[(u, accounts[u].password) for u in registry.incoming_accounts
                            if u in accounts],
        state=registry.state)
    out = registry.outgoing_account
    if out and out in accounts:
        config.discovery_outgoing = (out, accounts[out].password)
    return config


def encode(config: ConfigSpec) -> bytes:
    """The saved form of ``config`` (JSON)."""
    return json.dumps(config.to_dict(), separators=(",", ":")).encode("utf-8") + b"\n"


def save(path: str, config: ConfigSpec) -> None:
    """Write ``config`` to ``path`` atomically and durably. Raises OSError."""
    write_atomic(path, encode(config))


def write_atomic(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file 0600, fsync, os.replace, fsync the dir."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load(path: str) -> ConfigSpec | None:
    """Read a saved configuration; None if there is none.

    Raises ValueError for an unreadable or malformed file, OSError for I/O errors.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(raw.decode("utf-8"))
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        return ConfigSpec.from_dict(doc)
    except (UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: malformed configuration: {exc}") from None
