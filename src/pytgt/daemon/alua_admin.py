"""ALUA from the control plane: ``alua_state`` of ``--mode target --op update`` and show.

Setting (implicit transitions, SPC-4 5.16.2.8)::

    pytgtadm --lld iscsi --op update --mode target --tid 1 --name alua_state --value standby
    pytgtadm --lld iscsi --op update --mode target --tid 1 --params alua_state=standby

The value is ``active`` (active/optimized), ``nonoptimized``, ``standby``,
``unavailable`` or ``offline``; it moves every target port group of the target, or
only group ``G`` when written ``G:state`` (a group is an iSCSI portal group).

Showing: tgtadm's layouts are kept byte for byte while every group is active/optimized
(the default); otherwise ``--op show --mode target`` adds ``ALUA`` lines under
"System information" (as tgt adds its "Nop interval" lines only when set) and
``--op show --mode target --tid N`` adds an ``alua_state=`` line after tgt's keys.
"""

from __future__ import annotations

from collections.abc import Callable

from pytgt.scsi.alua import STATE_SHOWN, AccessState, parse_state, state_word
from pytgt.scsi.target import ScsiTarget

PARAMS = frozenset({"alua_state"})


def prepare(scsi: ScsiTarget, params: dict[str, str]) -> Callable[[], None]:
    """Check ``alua_state`` values; returns the change to apply. Raises ValueError."""
    groups = scsi.alua
    steps: list[tuple[int | None, AccessState]] = []
    for key, value in params.items():
        if key not in PARAMS:
            raise ValueError(f"unknown ALUA parameter {key}")
        gid_text, sep, word = value.rpartition(":")
        gid = None
        if sep:
            if not gid_text.strip().isdigit() or int(gid_text) not in groups.groups:
                raise ValueError(f"no target port group {gid_text!r}")
            gid = int(gid_text)
        steps.append((gid, parse_state(word)))

    def apply() -> None:
        for gid, state in steps:
            groups.set_state(state, gid)
    return apply


def show_lines(scsi: ScsiTarget) -> list[str]:
    """Lines for "System information" (none while every group is active/optimized)."""
    groups = scsi.alua
    if groups.default:
        return []
    return [f"        ALUA target port group {gid}: {STATE_SHOWN[g.state]}"
            for gid, g in sorted(groups.groups.items())]


def show_params(scsi: ScsiTarget) -> str:
    """``alua_state=...`` for the ``--tid`` parameter list ("" while the default)."""
    groups = scsi.alua
    if groups.default:
        return ""
    items = sorted(groups.groups.items())
    if len(items) == 1:
        return f"alua_state={state_word(items[0][1].state)}\n"
    return "alua_state=" + " ".join(f"{gid}:{state_word(g.state)}" for gid, g in items) + "\n"
