"""``pytgtd --persist``: the running configuration saved after every change, replayed at start.

Every successful change is saved atomically to ``$PYTGT_STATE_DIR/config.json``
(:func:`pytgt.config.store.write_atomic`) before it is acknowledged; at start the file
is replayed as management requests, every failure reported and the rest restored.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from typing import TYPE_CHECKING, Any

from pytgt.config import store
from pytgt.config.plan import restore_requests
from pytgt.daemon.errors import MgmtError, TgtadmError
from pytgt.daemon.show import param_defaults

if TYPE_CHECKING:
    from pytgt.daemon.mgmt import Management

log = logging.getLogger("pytgt.daemon.config")

# Operations that change nothing (no save after them).
READ_ONLY_OPS = frozenset({"show", "stat", "dump"})


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
            return log_errors([f"cannot read {self.path}: {exc}"])
        if config is None:
            return []
        errors = []
        on_change, self.management.on_change = self.management.on_change, None
        try:
            for req in restore_requests(config):
                rc, out = await self.management.handle(req)
                if rc:
                    errors.append(f"restoring {describe_request(req)}: {out}")
        finally:
            self.management.on_change = on_change
        if errors:
            self._keep_copy()
        return log_errors(errors)

    def _keep_copy(self) -> None:
        try:
            shutil.copy2(self.path, self.path + ".bak")
        except OSError as exc:
            log.error("cannot copy %s: %s", self.path, exc)


def log_errors(errors: list[str]) -> list[str]:
    """Log each message of a replay as an error; returns them."""
    for line in errors:
        log.error("%s", line)
    return errors


def describe_request(req: dict[str, Any]) -> str:
    """A request in a few words, without passwords."""
    parts = [f"{req.get('mode')} {req.get('op')}"]
    for key in ("tid", "targetname", "lun", "backing_store", "user",
                "initiator_address", "initiator_name"):
        if req.get(key) not in (None, ""):
            parts.append(f"{key}={req[key]}")
    return " ".join(parts)
