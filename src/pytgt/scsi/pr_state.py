"""Persistent-reservation state as data, for APTPL (SPC-4 5.9.5).

While the last REGISTER had APTPL=1, every change to a LU's registrations and
reservation is handed to the LU's :class:`~pytgt.scsi.pr.AptplSaver` before the command
completes. The SCSI layer does no file I/O: the saver is whatever the embedding program
installs (pytgtd's writes files, :mod:`pytgt.daemon.aptpl`); :func:`to_dict` and
:func:`load_into` are the state it keeps and restores.
"""

from __future__ import annotations

from typing import Any

from pytgt.scsi.pr import PersistentReservations, Registration, registration_id


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
