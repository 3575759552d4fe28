"""One iSNSP connection of a client, sans-I/O (bytes in, events out, bytes to send).

The same class serves the connection the target opens to its server (its requests and
the responses) and those the server opens to the ESI/SCN port (the server's ESI and SCN
requests, answered here at once: 5.6.5.13, 5.6.5.8). Feed :meth:`receive_data`, drain
:meth:`next_event`, send :meth:`data_to_send`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pytgt.isns import messages
from pytgt.isns.codec import IsnsFramer, Message, encode_message
from pytgt.isns.constants import IsnsFunction, IsnsStatus, Tag


@dataclass(frozen=True, slots=True)
class Response:
    """The server answered our request ``request`` (its Function ID) with ``message``."""

    request: int
    message: Message

    @property
    def status(self) -> int:
        return self.message.status or 0


@dataclass(frozen=True, slots=True)
class EsiReceived:
    """The server asked whether we are alive (5.6.5.13); already answered."""

    message: Message


@dataclass(frozen=True, slots=True)
class ScnReceived:
    """A State Change Notification (5.6.5.8) for ``destination``; already answered."""

    message: Message
    destination: str
    names: tuple[str, ...]


Event = Response | EsiReceived | ScnReceived


class ClientConnection:
    """Transaction IDs, the requests awaiting an answer, the answers to the server."""

    def __init__(self, first_xid: int = 1) -> None:
        self._framer = IsnsFramer()
        self._xid = first_xid - 1
        self._pending: dict[int, int] = {}
        self._out: list[bytes] = []
        self._events: list[Event] = []

    def send(self, build: Callable[[int], Message]) -> int:
        """Queue the request ``build(xid)`` (e.g. ``partial(messages.scn_reg, name)``);
        returns its transaction ID, which its :class:`Response` carries."""
        self._xid = self._xid % 0xFFFF + 1  # 16-bit, never 0
        msg = build(self._xid)
        self._pending[msg.xid] = msg.function
        self._out += encode_message(msg)
        return msg.xid

    @property
    def pending(self) -> int:
        return len(self._pending)

    def receive_data(self, data: bytes) -> None:
        """Raises :class:`~pytgt.isns.codec.IsnsFormatError` on bytes that are not iSNSP."""
        self._framer.receive_data(data)
        while (msg := self._framer.next_message()) is not None:
            self._handle(msg)

    def _handle(self, msg: Message) -> None:
        if msg.is_response:
            request = self._pending.pop(msg.xid, None)
            if request is not None:
                self._events.append(Response(request, msg))
        elif msg.function == IsnsFunction.ESI:
            self._out += encode_message(messages.esi_response(msg))
            self._events.append(EsiReceived(msg))
        elif msg.function == IsnsFunction.SCN:
            self._out += encode_message(messages.scn_response(msg))
            dest = msg.attributes[0].as_str() if msg.attributes else ""
            names = tuple(a.as_str() for a in msg.attributes[1:] if a.tag == Tag.iSCSIName)
            self._events.append(ScnReceived(msg, dest, names))
        else:  # 5.7: a request we do not serve
            self._out += encode_message(
                messages.response_to(msg, IsnsStatus.MessageNotSupported, ()))

    def next_event(self) -> Event | None:
        return self._events.pop(0) if self._events else None

    def data_to_send(self) -> list[bytes]:
        out, self._out = self._out, []
        return out
