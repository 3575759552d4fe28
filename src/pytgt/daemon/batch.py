"""``--mode system --op batch``: a list of requests under one lock, ``[[rc, out], ...]``.

pytgt-admin applies a large targets.conf in a few round trips, and a persistent daemon
saves once per batch (``Management.on_change`` runs after the batch, not each request).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from pytgt.daemon.errors import MgmtError, TgtadmError

if TYPE_CHECKING:
    from pytgt.daemon.mgmt import Management

log = logging.getLogger("pytgt.daemon.config")


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
