"""Session state shared by the connections of one session (RFC 7143 4.2, 5, 6.3.6).

Holds the CmdSN window with in-order delivery across connections, the session
identity (initiator name, ISID, TSIH) and the table used for session
reinstatement and for adding connections. Pure: no sockets, no clocks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytgt.iscsi.serial import sn_add, sn_in_window, sn_lt

DEFAULT_CMD_WINDOW = 128


@dataclass(eq=False)
class Session:
    """One iSCSI session (an I_T nexus for Normal sessions)."""

    tsih: int
    isid: int
    initiator_name: str
    session_type: str  # "Normal" or "Discovery"
    target_name: str = ""
    target: Any = None  # the policy's target object (config model) for Normal sessions
    params: Any = None  # login.SessionParams
    initiator_alias: str = ""
    exp_cmd_sn: int = 0
    window: int = DEFAULT_CMD_WINDOW
    connections: dict[int, Any] = field(default_factory=dict)  # cid -> TargetConnection
    nexus: Any = None  # scsi.task.ItNexus
    held: dict[int, Callable[[], None]] = field(default_factory=dict)  # CmdSN -> delivery

    @property
    def max_cmd_sn(self) -> int:
        """ExpCmdSN + window - 1 (4.2.2.1); shrinks while commands wait out of order."""
        return (self.exp_cmd_sn + self.window - 1 - len(self.held)) & 0xFFFFFFFF

    def order(self, cmd_sn: int, deliver: Callable[[], None]) -> bool:
        """Deliver a non-immediate command in CmdSN order (4.2.2.1).

        ``deliver`` runs now if ``cmd_sn`` is ExpCmdSN (then any held successors run),
        later if it is inside the window, never if outside (silently ignored; returns
        False).
        """
        if cmd_sn == self.exp_cmd_sn:
            self.exp_cmd_sn = sn_add(self.exp_cmd_sn, 1)
            deliver()
            while (nxt := self.held.pop(self.exp_cmd_sn, None)) is not None:
                self.exp_cmd_sn = sn_add(self.exp_cmd_sn, 1)
                nxt()
            return True
        if sn_lt(self.exp_cmd_sn, cmd_sn) and sn_in_window(cmd_sn, self.exp_cmd_sn,
                                                           self.max_cmd_sn):
            if cmd_sn in self.held:
                return False
            self.held[cmd_sn] = deliver
            return True
        return False

    def in_order(self) -> bool:
        """No command is held for a CmdSN gap: ExpCmdSN can be delivered at once."""
        return not self.held

    def forget_held(self) -> None:
        """Drop commands waiting for a CmdSN gap (connection loss at ERL 0)."""
        self.held.clear()


class SessionTable:
    """All sessions of a portal group (the target's TSIH space)."""

    def __init__(self) -> None:
        self.sessions: dict[int, Session] = {}
        self._next_tsih = 1

    def allocate_tsih(self) -> int:
        """A fresh non-zero TSIH (11.12.7)."""
        while True:
            tsih = self._next_tsih
            self._next_tsih = self._next_tsih % 0xFFFF + 1
            if tsih not in self.sessions:
                return tsih

    def find(self, initiator_name: str, isid: int, target_name: str) -> Session | None:
        """The session with this initiator port and target (for reinstatement, 6.3.5)."""
        iname, tname = initiator_name.lower(), target_name.lower()
        for s in self.sessions.values():
            if (s.isid == isid and s.initiator_name.lower() == iname
                    and s.target_name.lower() == tname):
                return s
        return None

    def add(self, session: Session) -> None:
        self.sessions[session.tsih] = session

    def remove(self, session: Session) -> None:
        if self.sessions.get(session.tsih) is session:
            del self.sessions[session.tsih]
