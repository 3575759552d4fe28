"""The daemon's part of a media changer (scsi/smc.py): cartridge files in and out of drives.

:class:`DaemonMedia` is the changer's :class:`~pytgt.scsi.smc.MediaHandler`: it finds a
drive LU of any target, opens ``media_home/BARCODE`` (in a thread, as for a new LU),
checks a tape's format before the drive takes it, swaps it into the drive
(``change_medium``) and closes what came out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from pytgt.config.model import Registry
from pytgt.scsi.lu import LogicalUnit
from pytgt.scsi.mmc import CdLogicalUnit
from pytgt.scsi.smc import MediumLoadError
from pytgt.scsi.ssc import TapeUnit
from pytgt.scsi.tape_media import MediumFormatError, TapeMedium
from pytgt.stores.base import BackingStore

log = logging.getLogger("pytgt.daemon.changer")


class DaemonMedia:
    """Loads and unloads the drives of one daemon's changers."""

    def __init__(self, registry: Registry, open_medium: Callable[[str], BackingStore],
                 close: Callable[[BackingStore | None], Awaitable[None]]) -> None:
        self.registry = registry
        self.open_medium = open_medium  # path -> an rdwr store (blocking: run in a thread)
        self.close = close

    def drive(self, tid: int, lun: int) -> LogicalUnit | None:
        target = self.registry.targets.get(tid)
        return target.scsi.luns.get(lun) if target is not None else None

    async def load(self, drive: LogicalUnit, path: str) -> None:
        if not isinstance(drive, TapeUnit | CdLogicalUnit):
            raise MediumLoadError(f"LUN {drive.lun} is a {drive.device_type}, not a drive")
        try:
            store = await asyncio.to_thread(self.open_medium, path)
        except Exception as exc:
            log.warning("LUN %d of target %d: cartridge %s: %s", drive.lun, drive.tid, path, exc)
            raise MediumLoadError(str(exc)) from None
        if isinstance(drive, TapeUnit):
            try:
                await TapeMedium(store).records()
            except (MediumFormatError, OSError) as exc:
                await self.close(store)
                log.warning("LUN %d of target %d: cartridge %s: %s", drive.lun, drive.tid,
                            path, exc)
                raise MediumLoadError(str(exc)) from None
        if getattr(drive, "config_path", None) is None:  # saved configurations name it
            drive.config_path = drive.path  # type: ignore[union-attr]
        await self.close(drive.change_medium(store, path))
        log.info("LUN %d of target %d: cartridge %s loaded", drive.lun, drive.tid, path)

    async def unload(self, drive: LogicalUnit) -> None:
        if isinstance(drive, TapeUnit | CdLogicalUnit):
            await self.close(drive.change_medium(None, ""))
            log.info("LUN %d of target %d: cartridge unloaded", drive.lun, drive.tid)
