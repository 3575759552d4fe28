"""The mode pages of the tape LU (SSC-3 8.3), on top of SPC-4's control and
informational exceptions pages (modepages.py).

Pages, in MODE SENSE 3Fh order: read-write error recovery (01h), disconnect-reconnect
(02h), control (0Ah), data compression (0Fh), device configuration (10h), informational
exceptions control (1Ch), medium configuration (1Dh) — tgt's set for its tape LU.
Changeable: DCE (0Fh) and its mirror SELECT DATA COMPRESSION ALGORITHM (10h byte 14),
SWP in the device configuration page (the same SWP as the control page's), and what
the control page allows. Data is stored uncompressed whatever DCE says (the host sees
no difference).
"""

from __future__ import annotations

from collections.abc import Callable

from pytgt.scsi import modepages as mp
from pytgt.scsi.sense import invalid_param

DATA_COMPRESSION = 0x0F
DEVICE_CONFIGURATION = 0x10
MEDIUM_CONFIGURATION = 0x1D

TAPE_PAGES = (mp.RW_ERROR_RECOVERY, mp.DISCONNECT_RECONNECT, mp.CONTROL, DATA_COMPRESSION,
              DEVICE_CONFIGURATION, mp.INFORMATIONAL_EXCEPTIONS, MEDIUM_CONFIGURATION)

# data compression page (SSC-3 8.3.2), byte 2 and 3
DCE, DCC, DDE = 0x80, 0x40, 0x80
DEFAULT_ALGORITHM = 0x01  # COMPRESSION ALGORITHM: the device's default
# device configuration page (SSC-3 8.3.3), byte 8: LOIS, RSMK; byte 10: EOD DEFINED 001b
# (format-defined: the medium's END OF DATA record), EEG, SEW, SWP
LOIS, RSMK = 0x40, 0x20
EOD_FORMAT_DEFINED, EEG, SEW, SWP = 0x20, 0x10, 0x08, 0x04
# medium configuration page (SSC-3 8.3.7): WORMM; filemark restrictions 03h: any
# filemarks just before EOD may be overwritten (logical blocks never)
WORMM = 0x01
WORM_FILEMARKS_BEFORE_EOD = 0x03


class TapeModePages(mp.ModePages):
    """The tape LU's mode parameters; ``worm`` tells whether the medium is WORM."""

    DEFAULT_DCE = False

    def __init__(self, worm: Callable[[], bool]) -> None:
        super().__init__()
        self.worm = worm
        self.dce = self.DEFAULT_DCE

    def reset(self) -> None:
        super().reset()
        self.dce = self.DEFAULT_DCE

    def pages(self, disk: bool) -> tuple[int, ...]:
        return TAPE_PAGES

    def page(self, code: int, pc: int) -> bytes:
        changeable = pc == mp.PC_CHANGEABLE
        current = pc == mp.PC_CURRENT
        dce = self.dce if current else self.DEFAULT_DCE
        swp = self.swp if current else self.default_swp
        if code == mp.RW_ERROR_RECOVERY:  # SSC-3 8.3.5: no retries, no flags
            return mp._page(code, bytes(10))
        if code == DATA_COMPRESSION:  # SSC-3 8.3.2
            if changeable:
                return mp._page(code, bytes((DCE,)) + bytes(13))
            return mp._page(code, bytes((DCC | (DCE if dce else 0), DDE))
                            + DEFAULT_ALGORITHM.to_bytes(4, "big") + bytes(8))
        if code == DEVICE_CONFIGURATION:  # SSC-3 8.3.3
            body = bytearray(14)
            if changeable:
                body[8], body[12] = SWP, 0x01
            else:
                body[6] = LOIS | RSMK
                body[8] = EOD_FORMAT_DEFINED | EEG | SEW | (SWP if swp else 0)
                body[12] = int(dce)  # SELECT DATA COMPRESSION ALGORITHM
            return mp._page(code, bytes(body))
        if code == MEDIUM_CONFIGURATION:  # SSC-3 8.3.7
            body = bytearray(30)
            if not changeable and self.worm():
                body[0], body[3] = WORMM, WORM_FILEMARKS_BEFORE_EOD
            return mp._page(code, bytes(body))
        return super().page(code, pc)

    def _check_page(self, code: int, body: bytes, where: int) -> list[tuple[str, bool | int]]:
        if code == DEVICE_CONFIGURATION and len(body) == 14 and body[12] > 1:
            raise invalid_param(where + 14)  # 00h: none, 01h: the default algorithm
        changes = super()._check_page(code, body, where)
        if code == DATA_COMPRESSION:
            return [("dce", bool(body[0] & DCE))]
        if code == DEVICE_CONFIGURATION:
            return [("swp", bool(body[8] & SWP)), ("dce", bool(body[12]))]
        return changes
