"""Framer.receive_data takes any amount of bytes at once (sans-I/O callers)."""

from __future__ import annotations

from pytgt.iscsi.framer import Framer
from pytgt.iscsi.pdu import DataIn, DataOut


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


def _recv(rx: Framer, wire: bytes) -> bytes:
    """One buffered-protocol receive: as much of ``wire`` as the offered view takes."""
    buf = rx.get_buffer()
    n = min(len(buf), len(wire))
    buf[:n] = wire[:n]
    rx.buffer_updated(n)
    return wire[n:]


def test_receive_buffer_grows_when_filled_and_is_trimmed_when_idle() -> None:
    payload = bytes(range(256)) * 4  # 1 KiB PDUs, never their own buffer
    tx = Framer()
    wire = b"".join(b"".join(bytes(b) for b in tx.frame(
        DataIn(7, sn, 0, payload).encode(), payload)) for sn in range(400))
    rx = Framer()
    idle = len(rx.get_buffer())
    frames = []
    while wire:
        wire = _recv(rx, wire)
        while (f := rx.next_frame()) is not None:
            frames.append(bytes(f.data))
    assert frames == [payload] * 400
    assert len(rx.get_buffer()) > idle  # grew while receives kept filling it
    rx.trim()  # bytes arrived since the last sweep: kept
    assert len(rx.get_buffer()) > idle
    rx.trim()
    assert len(rx.get_buffer()) == idle


def test_trim_keeps_a_partial_frame() -> None:
    payload = b"x" * 1000
    tx = Framer()
    wire = b"".join(bytes(b) for b in tx.frame(DataIn(7, 0, 0, payload).encode(), payload))
    rx = Framer()
    rx.receive_data(wire[:30])
    rx.trim()
    rx.trim()
    rx.receive_data(wire[30:])
    f = rx.next_frame()
    assert f is not None and bytes(f.data) == payload


def test_whole_data_out_goes_straight_to_its_sink() -> None:
    """A Data-Out already complete in the receive buffer is copied once, to the sink;
    other PDUs (and Data-Outs the sink declines) get their own bytes."""
    payload = bytes(range(256)) * 64  # 16 KiB
    tx = Framer()
    wire = b"".join(b"".join(bytes(b) for b in tx.frame(pdu.encode(), pdu.data)) for pdu in (
        DataOut(5, 9, 0, 0, payload), DataOut(6, 9, 0, 0, payload),
        DataIn(7, 0, 0, payload)))
    target = bytearray(len(payload))
    asked = []

    def sink(bhs: bytes, length: int) -> memoryview | None:
        asked.append((int.from_bytes(bhs[16:20], "big"), length))
        return memoryview(target) if len(asked) == 1 else None

    rx = Framer(max_data_segment_length=len(payload))
    rx.data_out_sink = sink
    rx.receive_data(wire)
    first, second, third = rx.next_frame(), rx.next_frame(), rx.next_frame()
    assert first is not None and second is not None and third is not None
    assert asked == [(5, len(payload)), (6, len(payload))]
    assert bytes(target) == payload and first.data.obj is target  # type: ignore[union-attr]
    assert bytes(second.data) == payload and bytes(third.data) == payload
