"""The configuration pytgtd starts with: ``--persist``'s restore, then ``--config FILE``.

A targets.conf given with ``--config`` only adds the targets that are not running
(tgt-admin -e without removals); with ``--persist`` the saved configuration is restored
first and the result saved once before the portals open.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from pytgt.config import store
from pytgt.config.plan import Running, plan_execute, plan_update
from pytgt.config.targets_conf import ConfigError, parse_file
from pytgt.daemon.persist import Persister, describe_request, log_errors
from pytgt.daemon.sd_notify import notify
from pytgt.daemon.show import param_defaults

if TYPE_CHECKING:
    from pytgt.daemon.mgmt import Management

log = logging.getLogger("pytgt.daemon.config")


async def apply_conf_file(management: Management, path: str) -> list[str]:
    """``pytgtd --config FILE``: add the targets of a targets.conf that are not running
    (tgt-admin -e without removals). Raises ConfigError/OSError before changing anything;
    returns one message per request that failed."""
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
            errors.append(f"{path}: {describe_request(req)}: {out}")
    return log_errors(errors)


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


async def reload_conf_file(management: Management, path: str) -> list[str]:
    """SIGHUP with ``--config FILE``: apply the file's changes as ``pytgt-admin --update
    ALL --force`` does (only changed targets get requests; targets not in the file stay),
    between systemd's ``RELOADING=1`` and ``READY=1``. A file that cannot be read or has
    errors changes nothing and is logged; returns one message per failed request."""
    notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}",
           f"STATUS=reloading {path}")
    errors: list[str] = []
    try:
        try:
            config, warnings = parse_file(path)
        except (ConfigError, OSError) as exc:
            errors = [f"{path}: not reloaded: {getattr(exc, 'strerror', None) or exc}"]
            return log_errors(errors)
        for line in warnings:
            log.warning("%s", line)
        running = Running(store.snapshot(management.registry, param_defaults()),
                          param_defaults=param_defaults())
        plan = plan_update(config, running, "ALL", force=True)
        for line in plan.warnings:
            log.warning("%s", line)
        for req in plan.requests():
            rc, out = await management.handle(req)
            if rc:
                errors.append(f"{path}: {describe_request(req)}: {out}")
        log.info("%s reloaded: %d request(s), %d failed", path, len(plan.requests()),
                 len(errors))
        return log_errors(errors)
    finally:
        notify("READY=1", "STATUS=serving")
