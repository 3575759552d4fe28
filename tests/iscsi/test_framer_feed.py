"""Framer.receive_data takes any amount of bytes at once (sans-I/O callers)."""

from __future__ import annotations

from pytgt.iscsi.framer import Framer
from pytgt.iscsi.pdu import DataIn


def test_one_big_feed_of_many_frames() -> None:
    payload = bytes(range(256)) * 256  # 64 KiB per PDU
    tx = Framer()
    wire = b"".join(b"".join(bytes(b) for b in tx.frame(
        DataIn(7, sn, sn * len(payload), payload).encode(), payload)) for sn in range(6))
    rx = Framer(max_data_segment_length=len(payload))
    rx.receive_data(wire)  # ~384 KiB, more than the initial receive buffer
    frames = []
    while (f := rx.next_frame()) is not None:
        frames.append(f)
    assert [bytes(f.data) for f in frames] == [payload] * 6
