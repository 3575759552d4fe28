"""The configuration pytgtd starts with: ``--persist``'s restore, then ``--config FILE``.

A targets.conf given with ``--config`` only adds the targets that are not running
(tgt-admin -e without removals); with ``--persist`` the saved configuration is restored
first and the result saved once before the portals open.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pytgt.config import store
from pytgt.config.plan import Running, plan_execute
from pytgt.config.targets_conf import parse_file
from pytgt.daemon.persist import Persister, describe_request, log_errors
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
