"""tgt's ``mode_page=PAGE:SUBPAGE:LEN:B0:...`` LU parameter (``--op new``/``update``).

Only the caching page (8: WCE, SBC-3 6.4.5) and the control page (0xa: D_SENSE,
SPC-4 7.5.8) can be set; the value becomes the page's current and default value.
A changer accepts and ignores the pages tgt's VTL examples set (its SMC-3 pages are
built from its elements, scsi/smc.py).
"""

from __future__ import annotations

from pytgt.config.spec import CHANGER_MODE_PAGES
from pytgt.scsi.lu import LogicalUnit


def apply_mode_page(lu: LogicalUnit, value: str) -> None:
    """tgt's ``mode_page=8:0:18:B0:...`` (caching: WCE) or ``10:0:10:B0:...`` (control:
    D_SENSE); sets the current and the default value. Raises ValueError."""
    try:
        fields = [int(x, 0) for x in value.split(":")]
    except ValueError:
        raise ValueError(f"bad mode_page {value!r}") from None
    if lu.device_type == "changer" and fields and fields[0] in CHANGER_MODE_PAGES \
            and len(fields) >= 3 and all(0 <= f <= 255 for f in fields):
        return
    if len(fields) < 4 or not all(0 <= f <= 255 for f in fields):
        raise ValueError(f"bad mode_page {value!r}")
    page, flag = fields[0], bool(fields[3] & 0x04)
    mode = lu.mode
    if page == 0x08:
        mode.wce = mode.DEFAULT_WCE = flag
    elif page == 0x0A:
        mode.d_sense = mode.DEFAULT_D_SENSE = flag
    else:
        raise ValueError(f"mode page {page:#x} cannot be set (only 8 and 0xa)")
