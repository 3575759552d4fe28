"""A hand-driven target peer for unit tests of the initiator core (no network)."""

from __future__ import annotations

from typing import Any

from pytgt.initiator.core import InitiatorConnection
from pytgt.initiator.events import Event, LoginComplete
from pytgt.initiator.options import InitiatorOptions
from pytgt.iscsi.framer import Framer
from pytgt.iscsi.pdu import LoginResponse, decode_pdu
from pytgt.iscsi.text import decode_text, encode_text

IQN = "iqn.2026-11.org.pytgt:unit"


class Peer:
    """Plays the target: decodes what the initiator sent, feeds it hand-built PDUs."""

    def __init__(self, conn: InitiatorConnection) -> None:
        self.conn = conn
        self.rx = Framer(1 << 24)
        self.tx = Framer(1 << 24)

    def digests(self, header: bool, data: bool) -> None:
        self.rx.header_digest = self.tx.header_digest = header
        self.rx.data_digest = self.tx.data_digest = data

    def sent(self) -> list[Any]:
        """Every PDU the initiator produced since the last call, decoded."""
        raw = b"".join(bytes(b) for b in self.conn.data_to_send())
        self.rx.receive_data(raw)
        out = []
        while (fr := self.rx.next_frame()) is not None:
            out.append(decode_pdu(fr.bhs, bytes(fr.data), fr.ahs))
        return out

    def wire(self, pdu: Any) -> bytes:
        return b"".join(bytes(b) for b in self.tx.frame(pdu.encode(), pdu.data))

    def feed(self, *pdus: Any, byte_at_a_time: bool = False) -> list[Event]:
        """Deliver PDUs to the initiator; return the events they caused."""
        raw = b"".join(self.wire(p) for p in pdus)
        events: list[Event] = []
        chunks = [raw[i : i + 1] for i in range(len(raw))] if byte_at_a_time else [raw]
        for chunk in chunks:
            self.conn.receive_data(chunk)
            while (ev := self.conn.next_event()) is not None:
                events.append(ev)
        return events


def text(pdu: Any) -> dict[str, str]:
    return dict(decode_text(pdu.data))


def login_rsp(req: Any, pairs: list[tuple[str, str]], *, transit: bool = True, nsg: int = 1,
              stat_sn: int = 0, tsih: int = 0, exp_cmd_sn: int | None = None,
              max_cmd_sn: int | None = None, status: int = 0) -> LoginResponse:
    exp = req.cmd_sn if exp_cmd_sn is None else exp_cmd_sn
    mx = exp + 31 if max_cmd_sn is None else max_cmd_sn
    return LoginResponse(req.itt, req.isid, tsih, stat_sn, exp, mx, status >> 8, status & 0xFF,
                         transit, False, req.csg, nsg if transit else 0, 0, 0,
                         encode_text(pairs))


def logged_in(target_keys: dict[str, str] | None = None, *, window: int = 32,
              **options: Any) -> tuple[InitiatorConnection, Peer]:
    """An initiator core in full feature phase; ``target_keys`` are the target's answers."""
    options.setdefault("target_name", IQN)
    conn = InitiatorConnection(InitiatorOptions(**options))
    peer = Peer(conn)
    conn.start_login()
    (req,) = peer.sent()
    assert peer.feed(login_rsp(req, [("AuthMethod", "None")])) == []
    (req,) = peer.sent()
    answers = {k: v for k, v in text(req).items() if k != "MaxRecvDataSegmentLength"}
    answers["MaxRecvDataSegmentLength"] = "8192"
    answers.update(target_keys or {})
    events = peer.feed(login_rsp(req, list(answers.items()), nsg=3, stat_sn=1, tsih=7,
                                 max_cmd_sn=req.cmd_sn + window - 1))
    assert [type(e) for e in events] == [LoginComplete], events
    peer.digests(conn.negotiated.header_digest, conn.negotiated.data_digest)
    return conn, peer
