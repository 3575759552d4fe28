"""``--mode system --op dump``: the running configuration as JSON, for pytgt-admin.

What ``pytgt-admin --dump``/``--update`` read (see :class:`pytgt.config.plan.Running`):
the configuration, the targets with sessions, and a new target's parameters.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pytgt.config import store
from pytgt.daemon.show import param_defaults

if TYPE_CHECKING:
    from pytgt.daemon.mgmt import Management


def in_use(m: Management) -> list[int]:
    """The tids of targets with sessions (pytgt-admin leaves them alone)."""
    return sorted(t.tid for t in m.registry.targets.values()
                  if t.nexuses or m.sessions_of(t))


async def system_dump(m: Management, req: dict[str, Any]) -> str:
    defaults = param_defaults()
    config = store.snapshot(m.registry, defaults)
    return json.dumps({"config": config.to_dict(), "in_use": in_use(m),
                       "param_defaults": defaults})
