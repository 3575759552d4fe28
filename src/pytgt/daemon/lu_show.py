"""Reservation and QoS state under a LU in ``--op show --mode target`` (issues 4, 13).

tgtadm's layout is kept line for line for a LU nobody reserved or registered with;
otherwise the LU block ends with extra lines, as tgt adds "Nop interval" lines only
when set::

            Reservation: WRITE EXCLUSIVE by iqn.1994-05.com.redhat:h1,i,0x23d000000001
            Reservation key: 0x1111
            Registrations: 2

``Reservation: SPC-2 RESERVE by ...`` for a RESERVE(6/10) holder; an all-registrants
reservation has no single holder (``Reservation: WRITE EXCLUSIVE, ALL REGISTRANTS``).
"""

from __future__ import annotations

from pytgt.scsi.lu import LogicalUnit
from pytgt.scsi.pr import PrType

_TYPE_SHOWN: dict[int, str] = {
    PrType.WRITE_EXCLUSIVE: "WRITE EXCLUSIVE",
    PrType.EXCLUSIVE_ACCESS: "EXCLUSIVE ACCESS",
    PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY: "WRITE EXCLUSIVE, REGISTRANTS ONLY",
    PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY: "EXCLUSIVE ACCESS, REGISTRANTS ONLY",
    PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS: "WRITE EXCLUSIVE, ALL REGISTRANTS",
    PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS: "EXCLUSIVE ACCESS, ALL REGISTRANTS",
}
_INDENT = " " * 12


def _port_of(registration_id: str) -> str:
    port, _, rel = registration_id.rpartition("|")
    return port if rel in ("1", "") else f"{port} (target port {rel})"


def reservation_lines(lu: LogicalUnit) -> list[str]:
    """Extra lines for one LU's block (none without reservations or registrations)."""
    lines: list[str] = []
    spc2 = lu.reservation
    if spc2:
        lines.append(f"{_INDENT}Reservation: SPC-2 RESERVE by {spc2.split(',tsih=')[0]}")
    pr = lu.pr
    if pr.type:
        shown = _TYPE_SHOWN.get(pr.type, f"type {pr.type:#x}")
        holder_id = pr.holder or ""
        holder = pr.registrations.get(holder_id)
        if holder is None:
            lines.append(f"{_INDENT}Reservation: {shown}")
        else:
            lines += [f"{_INDENT}Reservation: {shown} by {_port_of(holder_id)}",
                      f"{_INDENT}Reservation key: {holder.key:#x}"]
    if pr.registrations:
        lines.append(f"{_INDENT}Registrations: {len(pr.registrations)}")
        if pr.aptpl:
            lines.append(f"{_INDENT}Persist through power loss: Yes")
    return lines


def qos_lines(lu: LogicalUnit) -> list[str]:
    """``QoS:`` under a LU with a limit (scsi/qos.py); none for an unlimited LU."""
    qos = lu.qos
    if qos is None:
        return []
    limits = ", ".join(f"{name}={value or 'unlimited'}" for name, value in
                       (("max_iops", qos.max_iops), ("max_bps", qos.max_bps)))
    return [f"{_INDENT}QoS: {limits}",
            f"{_INDENT}QoS delayed: {qos.delayed} of {qos.admitted} commands"]
