"""Persistent-reservation state beyond one command: TransportIDs and APTPL.

- iSCSI TransportIDs (SPC-4 7.6.4.6) as PERSISTENT RESERVE OUT carries them with
  SPEC_I_PT and REGISTER AND MOVE, and as READ FULL STATUS reports them: format 00b
  names an initiator device (any ISID), format 01b an initiator port (name + ISID).
- APTPL (SPC-4 5.9.5, "activate persist through power loss"): while the last REGISTER
  had APTPL=1, every change to a LU's registrations and reservation is written before
  the command completes; the file is removed when APTPL=0 is registered. Files live in
  ``$PYTGT_STATE_DIR/pr/``, one per LU, named after the target IQN and the LUN and
  holding the LU's SCSI ID: state is restored only into the LU with the same identity
  (``AptplStore.attach`` when the daemon creates the LU). Deleting a LU keeps its file,
  as power loss would: the same LU recreated gets its reservations back.

The SCSI layer stays free of file I/O: ``PersistentReservations.saver`` is an optional
coroutine the daemon installs (``attach``); pr.py awaits it after every change.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import struct
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytgt.scsi.lu import LogicalUnit
    from pytgt.scsi.pr import PersistentReservations

log = logging.getLogger("pytgt.scsi.pr")

PROTOCOL_ISCSI = 0x5
FORMAT_DEVICE, FORMAT_PORT = 0b00, 0b01
_ISID_SEP = ",i,0x"
_HEAD = struct.Struct(">BxH")
STATE_VERSION = 1


class TransportIdError(ValueError):
    """A TransportID this target cannot use; ``offset`` points at the bad byte."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def parse_transport_id(data: bytes | memoryview, offset: int = 0) -> tuple[str, int]:
    """One iSCSI TransportID at ``offset``: (initiator port or device name, its length).

    Format 01b gives ``"name,i,0x<isid>"`` (ISID lower-cased, 12 hex digits); format
    00b gives the bare iSCSI name, which matches every ISID of that initiator.
    Raises TransportIdError.
    """
    if len(data) - offset < 4:
        raise TransportIdError("TransportID header truncated", offset)
    first, length = _HEAD.unpack_from(data, offset)
    if first & 0x0F != PROTOCOL_ISCSI:
        raise TransportIdError("not an iSCSI TransportID", offset)
    fmt = first >> 6
    if fmt not in (FORMAT_DEVICE, FORMAT_PORT) or first & 0x30:
        raise TransportIdError("unknown TransportID format", offset)
    total = 4 + length
    if length < 20 or length % 4 or offset + total > len(data):
        raise TransportIdError("bad TransportID length", offset + 2)
    raw = bytes(data[offset + 4: offset + total])
    end = raw.find(b"\0")
    if end <= 0:
        raise TransportIdError("iSCSI name not null-terminated", offset + 4)
    try:
        text = raw[:end].decode("utf-8")
    except UnicodeDecodeError:
        raise TransportIdError("iSCSI name not UTF-8", offset + 4) from None
    return _canonical(text, fmt, offset), total


def _canonical(text: str, fmt: int, offset: int) -> str:
    name, sep, isid = text.partition(",")
    if fmt == FORMAT_DEVICE:
        if sep or not name:
            raise TransportIdError("format 00b carries a name only", offset + 4)
        return name
    lower = text.lower()
    at = lower.find(_ISID_SEP)
    digits = lower[at + len(_ISID_SEP):] if at > 0 else ""
    if at <= 0 or not 1 <= len(digits) <= 12 or any(c not in "0123456789abcdef"
                                                     for c in digits):
        raise TransportIdError("format 01b needs name,i,0x<ISID>", offset + 4)
    return f"{text[:at]}{_ISID_SEP}{int(digits, 16):012x}"


def encode_transport_id(initiator: str) -> bytes:
    """The iSCSI TransportID of an initiator port (01b) or device (00b), padded to 4."""
    fmt = FORMAT_PORT if _ISID_SEP in initiator else FORMAT_DEVICE
    name = initiator.encode() + b"\0"
    name += b"\0" * (-len(name) % 4)
    if len(name) < 20:
        name += b"\0" * (20 - len(name))
    return _HEAD.pack(fmt << 6 | PROTOCOL_ISCSI, len(name)) + name


# -- APTPL state --------------------------------------------------------------------------
def to_dict(pr: PersistentReservations) -> dict[str, Any]:
    """The state pr.py keeps, as JSON-able data."""
    return {
        "generation": pr.generation, "type": pr.type, "holder": pr.holder,
        "aptpl": pr.aptpl,
        "registrations": [{"id": rid, "key": r.key, "initiator_port": r.initiator_port,
                           "relative_port": r.relative_port}
                          for rid, r in pr.registrations.items()],
    }


def load_into(pr: PersistentReservations, data: dict[str, Any]) -> None:
    """Restore ``to_dict`` output into ``pr``. Raises ValueError/KeyError/TypeError."""
    from pytgt.scsi.pr import Registration, registration_id

    regs = {}
    for item in data["registrations"]:
        reg = Registration(int(item["key"]), str(item["initiator_port"]),
                           int(item["relative_port"]))
        regs[registration_id(reg.initiator_port, reg.relative_port)] = reg
    holder = data.get("holder")
    if holder is not None and holder not in regs:
        raise ValueError("reservation holder is not registered")
    pr.registrations = regs
    pr.generation = int(data["generation"]) & 0xFFFFFFFF
    pr.type = int(data["type"])
    pr.holder = holder
    pr.aptpl = bool(data.get("aptpl", True))


class AptplStore:
    """APTPL files of one daemon, in ``directory`` (``$PYTGT_STATE_DIR/pr``)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._lock = asyncio.Lock()

    @classmethod
    def in_state_dir(cls) -> AptplStore:
        from pytgt.daemon.paths import state_dir

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

        async def save(pr: PersistentReservations) -> None:
            await self.save(path, ident, lu, pr)
        lu.pr.saver = save
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
        from pytgt.config.store import write_atomic

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
