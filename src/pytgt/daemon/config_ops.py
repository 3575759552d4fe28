"""Configuration operations of the control plane: dump, batch, mode pages, persistence.

- ``--mode system --op dump`` answers the running configuration as JSON (see
  :class:`pytgt.config.plan.Running`): what ``pytgt-admin --dump``/``--update`` read.
- ``--mode system --op batch`` runs a list of requests under one lock and answers
  ``[[rc, out], ...]``: pytgt-admin applies a large targets.conf in a few round trips,
  and a persistent daemon saves once per batch.
- ``mode_page=PAGE:SUBPAGE:LEN:B0:...`` (tgt's LU parameter) for the caching page (WCE)
  and the control page (D_SENSE).
- :class:`Persister`: with ``pytgtd --persist``, every successful change is saved
  atomically to ``$PYTGT_STATE_DIR/config.json`` before it is acknowledged, and the file
  is replayed at start (every failure reported, the rest restored).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from typing import TYPE_CHECKING, Any, cast

from pytgt.config import store
from pytgt.config.plan import restore_requests
from pytgt.daemon.errors import MgmtError, TgtadmError

if TYPE_CHECKING:
    from pytgt.daemon.mgmt import Management

log = logging.getLogger("pytgt.daemon.config")

# Operations that change nothing (no save after them).
READ_ONLY_OPS = frozenset({"show", "stat", "dump"})


def param_defaults() -> dict[str, str]:
    """Target parameters as a new target has them (what --op show --tid N prints)."""
    from pytgt.config.model import Target
    from pytgt.daemon.show import format_target_params

    text = format_target_params(Target(tid=0, name="", scsi=cast(Any, None)))
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def in_use(m: Management) -> list[int]:
    return sorted(t.tid for t in m.registry.targets.values()
                  if t.nexuses or m.sessions_of(t))


async def system_dump(m: Management, req: dict[str, Any]) -> str:
    defaults = param_defaults()
    config = store.snapshot(m.registry, defaults)
    return json.dumps({"config": config.to_dict(), "in_use": in_use(m),
                       "param_defaults": defaults})


async def system_batch(m: Management, req: dict[str, Any]) -> str:
    """Run ``req["requests"]`` in order; stop at the first failure unless ``ignore_errors``."""
    requests = req.get("requests")
    if not isinstance(requests, list) or not all(isinstance(r, dict) for r in requests):
        raise MgmtError(TgtadmError.INVALID_REQUEST)
    results: list[tuple[int, str]] = []
    for sub in requests:
        if sub.get("op") == "batch":
            results.append((22, "invalid request"))
        else:
            results.append(await _run_one(m, sub))
        if results[-1][0] and not req.get("ignore_errors"):
            break
    return json.dumps(results)


async def _run_one(m: Management, sub: dict[str, Any]) -> tuple[int, str]:
    try:
        return 0, await m._dispatch(sub)
    except MgmtError as exc:
        return exc.exit_status, exc.message
    except Exception:
        log.exception("management request %r failed", sub)
        return 22, "unknown error"


# -- mode pages ----------------------------------------------------------------------------
def apply_mode_page(lu: Any, value: str) -> None:
    """tgt's ``mode_page=8:0:18:B0:...`` (caching: WCE) or ``10:0:10:B0:...`` (control:
    D_SENSE); sets the current and the default value. Raises ValueError."""
    try:
        fields = [int(x, 0) for x in value.split(":")]
    except ValueError:
        raise ValueError(f"bad mode_page {value!r}") from None
    if len(fields) < 4 or not all(0 <= f <= 255 for f in fields):
        raise ValueError(f"bad mode_page {value!r}")
    page, flag = fields[0], bool(fields[3] & 0x04)
    mode = lu.mode
    if page == 0x08:
        mode.wce = mode.DEFAULT_WCE = flag
    elif page == 0x0A:
        mode.d_sense = mode.DEFAULT_D_SENSE = flag
    else:
        raise ValueError(f"mode page {page:#x} cannot be set (only 8 and 0xa)")


# -- persistence ---------------------------------------------------------------------------
class Persister:
    """Saves the registry after every change (``Management.on_change``); restores at start."""

    def __init__(self, management: Management, path: str) -> None:
        self.management = management
        self.path = path
        self._defaults: dict[str, str] | None = None

    @classmethod
    def in_state_dir(cls, management: Management) -> Persister:
        from pytgt.daemon.paths import state_dir

        return cls(management, os.path.join(state_dir(), store.CONFIG_FILE))

    def _encode(self) -> bytes:
        if self._defaults is None:
            self._defaults = param_defaults()
        return store.encode(store.snapshot(self.management.registry, self._defaults))

    def save_now(self) -> None:
        """Write the running configuration. Raises OSError."""
        store.write_atomic(self.path, self._encode())

    async def __call__(self) -> None:
        """Snapshot on the loop (consistent), write and fsync in a thread; the caller
        holds the management lock, so saves never overtake each other."""
        try:
            await asyncio.to_thread(store.write_atomic, self.path, self._encode())
        except OSError as exc:
            log.error("saving the configuration to %s failed: %s", self.path, exc)
            raise MgmtError(TgtadmError.UNKNOWN_ERR,
                            f"the change is applied but was not saved: {exc.strerror or exc}"
                            ) from None

    async def restore(self) -> list[str]:
        """Replay the saved configuration; returns one message per failure (also logged).

        When something fails, the file is first copied to ``config.json.bak`` so the next
        save (which writes only what is running) does not lose it.
        """
        try:
            config = store.load(self.path)
        except (OSError, ValueError) as exc:
            self._keep_copy()
            return self._report([f"cannot read {self.path}: {exc}"])
        if config is None:
            return []
        errors = []
        on_change, self.management.on_change = self.management.on_change, None
        try:
            for req in restore_requests(config):
                rc, out = await self.management.handle(req)
                if rc:
                    errors.append(f"restoring {_describe(req)}: {out}")
        finally:
            self.management.on_change = on_change
        if errors:
            self._keep_copy()
        return self._report(errors)

    def _keep_copy(self) -> None:
        try:
            shutil.copy2(self.path, self.path + ".bak")
        except OSError as exc:
            log.error("cannot copy %s: %s", self.path, exc)

    @staticmethod
    def _report(errors: list[str]) -> list[str]:
        for line in errors:
            log.error("%s", line)
        return errors


def _describe(req: dict[str, Any]) -> str:
    """A request in a few words, without passwords."""
    parts = [f"{req.get('mode')} {req.get('op')}"]
    for key in ("tid", "targetname", "lun", "backing_store", "user",
                "initiator_address", "initiator_name"):
        if req.get(key) not in (None, ""):
            parts.append(f"{key}={req[key]}")
    return " ".join(parts)


async def apply_conf_file(management: Management, path: str) -> list[str]:
    """``pytgtd --config FILE``: add the targets of a targets.conf that are not running
    (tgt-admin -e without removals). Raises ConfigError/OSError before changing anything;
    returns one message per request that failed."""
    from pytgt.config.plan import Running, plan_execute
    from pytgt.config.targets_conf import parse_file

    config, warnings = parse_file(path)
    for line in warnings:
        log.warning("%s", line)
    running = Running(store.snapshot(management.registry, param_defaults()))
    plan = plan_execute(config, running)
    for line in plan.warnings:
        log.warning("%s", line)
    errors = []
    for req in plan.requests():
        if req.get("op") == "delete" and req.get("mode") == "target":
            continue  # never remove a restored target at start
        rc, out = await management.handle(req)
        if rc:
            errors.append(f"{path}: {_describe(req)}: {out}")
    return Persister._report(errors)


async def configure_at_start(management: Management, persist: bool, conf: str | None) -> None:
    """pytgtd's ``--persist`` (restore, then save after every change) and ``--config FILE``.

    Raises ConfigError or OSError when ``conf`` cannot be read or has errors.
    """
    persister = Persister.in_state_dir(management) if persist else None
    if persister is not None:
        errors = await persister.restore()
        log.info("configuration restored from %s (%d errors)", persister.path, len(errors))
    if conf:
        await apply_conf_file(management, conf)
        if persister is not None:
            persister.save_now()
    management.on_change = persister
