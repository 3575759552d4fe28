"""Mode pages (SPC-4 7.5, SBC-3 6.4): current/changeable/default values, MODE SELECT parsing.

Changeable: WCE in the caching page; D_SENSE, SWP and the QUEUE ALGORITHM MODIFIER
(0 restricted or 1 unrestricted reordering of SIMPLE tasks, ``taskset.py``) in the
control page. QErr is 00b (a CHECK CONDITION aborts no other task) and TAS is 1
(tasks aborted by another I_T nexus end with TASK ABORTED), both fixed.
Saved values are not supported (PC=11b and SP=1 are refused by the callers).
"""

from __future__ import annotations

from pytgt.scsi.sense import Asc, CheckCondition, SenseKey, invalid_param

RW_ERROR_RECOVERY = 0x01
DISCONNECT_RECONNECT = 0x02
CACHING = 0x08
CONTROL = 0x0A
INFORMATIONAL_EXCEPTIONS = 0x1C
ALL_PAGES = 0x3F

PC_CURRENT, PC_CHANGEABLE, PC_DEFAULT, PC_SAVED = range(4)


def _page(code: int, body: bytes) -> bytes:
    return bytes((code, len(body))) + body


class ModePages:
    """The mode parameters of one LU."""

    DEFAULT_WCE = True
    DEFAULT_D_SENSE = False
    DEFAULT_QAM = 1

    def __init__(self) -> None:
        self.wce = self.DEFAULT_WCE
        self.d_sense = self.DEFAULT_D_SENSE
        self.default_swp = False  # the LU's swp parameter
        self.swp = False
        self.qam = self.DEFAULT_QAM

    def reset(self) -> None:
        """Back to the defaults (a LU reset restores saved values; we save none)."""
        self.wce = self.DEFAULT_WCE
        self.d_sense = self.DEFAULT_D_SENSE
        self.swp = self.default_swp
        self.qam = self.DEFAULT_QAM

    def pages(self, disk: bool) -> tuple[int, ...]:
        """Supported page codes, in the order MODE SENSE 3Fh returns them."""
        if disk:
            return (RW_ERROR_RECOVERY, DISCONNECT_RECONNECT, CACHING, CONTROL,
                    INFORMATIONAL_EXCEPTIONS)
        return (CONTROL, INFORMATIONAL_EXCEPTIONS)

    def page(self, code: int, pc: int) -> bytes:
        """One page as returned by MODE SENSE for page control ``pc`` (0, 1 or 2)."""
        changeable = pc == PC_CHANGEABLE
        current = pc == PC_CURRENT
        if code == RW_ERROR_RECOVERY:
            return _page(code, bytes(10) if changeable else bytes((0xC0,)) + bytes(9))
        if code == DISCONNECT_RECONNECT:
            return _page(code, bytes(14))
        if code == CACHING:
            wce = True if changeable else (self.wce if current else self.DEFAULT_WCE)
            return _page(code, bytes((0x04 if wce else 0,)) + bytes(17))
        if code == CONTROL:
            return _page(code, self._control(pc))
        if code == INFORMATIONAL_EXCEPTIONS:
            return _page(code, bytes(10) if changeable else bytes((0x08,)) + bytes(9))
        raise KeyError(code)

    def _control(self, pc: int) -> bytes:
        if pc == PC_CHANGEABLE:
            return bytes((0x04, 0xF0, 0x08)) + bytes(7)
        current = pc == PC_CURRENT
        d_sense = self.d_sense if current else self.DEFAULT_D_SENSE
        swp = self.swp if current else self.default_swp
        qam = self.qam if current else self.DEFAULT_QAM
        # byte 2: TST=000b, D_SENSE; byte 3: QUEUE ALGORITHM MODIFIER, QErr=00b;
        # byte 4: SWP; byte 5: TAS=1 (aborted tasks get TASK ABORTED); bytes 8-9 BUSY
        # TIMEOUT PERIOD.
        return bytes((0x04 if d_sense else 0, qam << 4, 0x08 if swp else 0, 0x40, 0, 0, 0xFF,
                      0xFF, 0, 0))

    def select(self, data: memoryview, disk: bool, base: int) -> bool:
        """Apply the pages of a MODE SELECT parameter list (after header and descriptors).

        ``base`` is the offset of ``data`` in the parameter list (for field pointers).
        Returns True if any value changed; raises CheckCondition for a bad list.
        """
        changes: list[tuple[str, bool | int]] = []
        pos = 0
        while pos < len(data):
            if len(data) - pos < 2:
                raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.PARAMETER_LIST_LENGTH_ERROR)
            code, spf = data[pos] & 0x3F, data[pos] & 0x40
            if spf or code not in self.pages(disk):
                raise invalid_param(base + pos, 5)
            length = data[pos + 1]
            body = bytes(data[pos + 2:pos + 2 + length])
            if len(body) != length:
                raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.PARAMETER_LIST_LENGTH_ERROR)
            changes += self._check_page(code, body, base + pos)
            pos += 2 + length
        changed = False
        for attr, value in changes:
            changed |= getattr(self, attr) != value
            setattr(self, attr, value)
        return changed

    def _check_page(self, code: int, body: bytes, where: int) -> list[tuple[str, bool | int]]:
        current = self.page(code, PC_CURRENT)[2:]
        mask = self.page(code, PC_CHANGEABLE)[2:]
        if len(body) != len(current):
            raise invalid_param(where + 1)
        for i, (got, have, may) in enumerate(zip(body, current, mask, strict=True)):
            if (got ^ have) & ~may:
                raise invalid_param(where + 2 + i)
        if code == CACHING:
            return [("wce", bool(body[0] & 0x04))]
        if code == CONTROL:
            qam = body[1] >> 4
            if qam > 1:  # 2h-Fh: reserved or vendor specific (SPC-4 7.5.8)
                raise invalid_param(where + 3, 7)
            return [("d_sense", bool(body[0] & 0x04)), ("swp", bool(body[2] & 0x08)),
                    ("qam", qam)]
        return []
