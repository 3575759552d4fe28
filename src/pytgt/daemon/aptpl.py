"""pytgtd's APTPL files: the :class:`~pytgt.scsi.pr.AptplSaver` it hands each disk LU.

While the last REGISTER had APTPL=1 (SPC-4 5.9.5), every change to a LU's registrations
and reservation is written before the command completes; the file is removed when
APTPL=0 is registered. Files live in ``$PYTGT_STATE_DIR/pr/``, one per LU, named after
the target IQN and the LUN and holding the LU's SCSI ID: state is restored only into the
LU with the same identity (:meth:`AptplStore.attach` when the daemon creates the LU).
Deleting a LU keeps its file, as power loss would: the same LU recreated gets its
reservations back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
from typing import TYPE_CHECKING, Any

from pytgt.config.store import write_atomic
from pytgt.daemon.paths import state_dir
from pytgt.scsi.pr_state import load_into, to_dict

if TYPE_CHECKING:
    from pytgt.scsi.lu import LogicalUnit
    from pytgt.scsi.pr import AptplSaver, PersistentReservations

log = logging.getLogger("pytgt.scsi.pr")

STATE_VERSION = 1


class AptplStore:
    """APTPL files of one daemon, in ``directory`` (``$PYTGT_STATE_DIR/pr``)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._lock = asyncio.Lock()

    @classmethod
    def in_state_dir(cls) -> AptplStore:
        return cls(os.path.join(state_dir(), "pr"))

    def path(self, target_name: str, lun: int) -> str:
        digest = hashlib.sha256(f"{target_name.lower()}\0{lun}".encode()).hexdigest()[:24]
        return os.path.join(self.directory, f"lu-{digest}.json")

    def attach(self, lu: LogicalUnit, target_name: str) -> bool:
        """Restore the LU's saved state (if its identity matches) and save from now on.

        Returns whether state was restored; an unreadable file is logged and kept.
        """
        path = self.path(target_name, lu.lun)
        restored = self._restore(lu, target_name, path)
        ident = {"target": target_name, "lun": lu.lun}

        async def save(pr: PersistentReservations, /) -> None:
            await self.save(path, ident, lu, pr)

        saver: AptplSaver = save
        lu.pr.saver = saver
        return restored

    def _restore(self, lu: LogicalUnit, target_name: str, path: str) -> bool:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            if data.get("version") != STATE_VERSION or data.get("scsi_id") != lu.scsi_id:
                log.warning("%s: APTPL state of another logical unit (SCSI ID %r), not "
                            "restored into %s LUN %d", path, data.get("scsi_id"),
                            target_name, lu.lun)
                return False
            load_into(lu.pr, data["state"])
        except FileNotFoundError:
            return False
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("%s: cannot restore persistent reservations: %s", path, exc)
            return False
        log.info("%s LUN %d: persistent reservations restored (%d registrations)",
                 target_name, lu.lun, len(lu.pr.registrations))
        return True

    async def save(self, path: str, ident: dict[str, Any], lu: LogicalUnit,
                   pr: PersistentReservations) -> None:
        """Write (APTPL=1) or remove (APTPL=0) the state; in order, off the event loop."""
        async with self._lock:  # the snapshot is taken under the lock: last one wins
            if pr.aptpl:
                body = {"version": STATE_VERSION, **ident, "scsi_id": lu.scsi_id,
                        "state": to_dict(pr)}
                data = json.dumps(body, sort_keys=True).encode()
                await asyncio.to_thread(write_atomic, path, data)
            else:
                await asyncio.to_thread(_remove, path)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
        fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
