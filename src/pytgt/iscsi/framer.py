"""Byte stream <-> PDU frames (RFC 7143 11.2): AHS, header/data digests, padding.

Receiving follows asyncio's buffered-protocol shape without importing asyncio:
``get_buffer()`` hands out a writable view, ``buffer_updated(n)`` commits it, and
``next_frame()`` returns complete frames. A data segment that has not fully arrived
is read straight into its own buffer (a Data-Out's: into its task's buffer, see
``data_out_sink``), so large payloads are never copied twice. The receive buffer is
small while the connection is idle and grows while receives keep filling it.
Every claimed length is bounded before any byte of it is read.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from crc32c import crc32c

from pytgt.iscsi.constants import BHS_LENGTH, RejectReason
from pytgt.iscsi.errors import ConnectionDropped, ProtocolError

Data = bytes | bytearray | memoryview

_BUFSIZE = 256 * 1024  # the most the receive buffer grows to
_IDLE_BUFSIZE = 4096  # what an idle connection holds (bench/footprint.py: idle sessions)
_OWN_BUFFER_AT = 8 * 1024  # partial data segments at least this big get their own buffer
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")
_OP_DATA_OUT = 0x05
_WORD = struct.Struct(">I")  # TotalAHSLength << 24 | DataSegmentLength (11.2.1)
Parts = tuple[bytes, bytes, Data]  # BHS, AHS, data segment


def digest(*parts: Data) -> bytes:
    """CRC32C over ``parts`` as sent on the wire (little-endian, RFC 7143 13.1, RFC 3720 B.4)."""
    crc = 0
    for part in parts:
        crc = crc32c(part, crc)
    return crc.to_bytes(4, "little")


@dataclass(slots=True)
class Frame:
    """One received PDU: 48-byte BHS, AHS bytes and the data segment without padding."""

    bhs: bytes
    ahs: bytes
    data: Data


class DataDigestError(ProtocolError):
    """A data segment failed its CRC32C; the PDU is discarded (RFC 7143 7.8)."""

    def __init__(self, bhs: bytes) -> None:
        super().__init__(RejectReason.DATA_DIGEST_ERROR, "data digest error")
        self.bhs = bhs


class Framer:
    """Cuts the received byte stream into :class:`Frame` objects.

    ``max_data_segment_length`` is our declared MaxRecvDataSegmentLength (any larger
    claim is a protocol error); digests apply once set after login.
    """

    def __init__(self, max_data_segment_length: int = 8192) -> None:
        self.max_data_segment_length = max_data_segment_length
        self.header_digest = False
        self.data_digest = False
        # Grows x4 whenever a receive fills it (more is waiting in the socket), up to
        # _BUFSIZE; :meth:`trim` gives it back once the connection goes idle.
        self._buf = bytearray(_IDLE_BUFSIZE)
        self._view = memoryview(self._buf)
        self._min_free = _IDLE_BUFSIZE // 4
        self._filled = False  # the last receive filled the buffer: grow at the next one
        self.received = False  # bytes arrived since the last trim() (the idle sweep's test)
        self._start = 0
        self._end = 0
        self._pending: tuple[bytes, bytes, int] | None = None  # header, ahs, data length
        self._seg: bytearray | memoryview | None = None
        self._seg_pos = 0
        # Set by the connection: (BHS, data length) -> where a Data-Out's data segment that
        # has not arrived yet may be received directly (its task's buffer), or None.
        self.data_out_sink: Callable[[bytes, int], memoryview | None] | None = None

    # -- receiving -------------------------------------------------------------
    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """A writable view to receive into (asyncio BufferedProtocol.get_buffer)."""
        if self._seg is not None:
            return memoryview(self._seg)[self._seg_pos :]
        if self._filled:
            self._filled = False
            if len(self._buf) < _BUFSIZE:
                self._resize(min(len(self._buf) * 4, _BUFSIZE))
        if len(self._buf) - self._end < self._min_free:
            live = self._end - self._start
            self._view[:live] = self._view[self._start : self._end]
            self._start, self._end = 0, live
        return self._view[self._end :]

    def buffer_updated(self, nbytes: int) -> None:
        """Commit ``nbytes`` written into the last :meth:`get_buffer` view."""
        self.received = True
        if self._seg is not None:
            self._seg_pos += nbytes
        else:
            self._end += nbytes
            self._filled = self._end == len(self._buf)

    def trim(self) -> None:
        """Call every few seconds: gives back a grown receive buffer that holds no bytes
        and received none since the previous call (an idle connection)."""
        if self.received:
            self.received = False
            return
        if self._start == self._end and len(self._buf) > _IDLE_BUFSIZE:
            self._start = self._end = 0
            self._resize(_IDLE_BUFSIZE)

    def _resize(self, size: int) -> None:
        live = self._end - self._start
        buf = bytearray(size)
        buf[:live] = self._view[self._start : self._end]
        self._buf, self._view = buf, memoryview(buf)
        self._start, self._end = 0, live
        self._min_free = size // 4

    def receive_data(self, data: Data) -> None:
        """Feed bytes (the sans-I/O entry point; copies into the receive buffer)."""
        view = memoryview(data)
        while view:
            buf = self.get_buffer()
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            self.buffer_updated(n)
            view = view[n:]
            if n == 0:
                self._grow(len(view))
                if self._seg is not None:  # own segment full, frame not taken yet: the
                    self._view[self._end : self._end + len(view)] = view  # rest waits behind
                    self._end += len(view)
                    return

    def _grow(self, more: int) -> None:
        """Make room for ``more`` bytes (only a sans-I/O caller feeding big chunks gets here;
        the buffered-protocol path never writes past :meth:`get_buffer`)."""
        live = self._end - self._start
        self._resize(max(len(self._buf), live + more + self._min_free))

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None when more bytes are needed.

        Raises ConnectionDropped (header digest, oversized segment) or
        DataDigestError (the PDU is dropped; the caller rejects it).
        """
        parts = self.next_parts()
        return None if parts is None else Frame(*parts)

    def next_parts(self) -> Parts | None:
        """:meth:`next_frame` as a ``(bhs, ahs, data)`` tuple (no object per PDU)."""
        if self._seg is not None:
            return self._finish_own_segment()
        if self._pending is None:
            # The common case first: no digests, no AHS, the whole PDU in the buffer.
            start = self._start
            have = self._end - start
            if have < BHS_LENGTH:
                return None
            dlen = _WORD.unpack_from(self._buf, start + 4)[0]
            if dlen <= self.max_data_segment_length and not (
                    self.header_digest or self.data_digest):  # top byte (AHS) is 0 here
                end = start + BHS_LENGTH + dlen
                if have >= BHS_LENGTH + dlen + (-dlen % 4):
                    view = self._view
                    self._start = end + (-dlen % 4)
                    bhs = bytes(view[start : start + BHS_LENGTH])
                    if dlen >= _OWN_BUFFER_AT:  # a Data-Out's goes to its task right away
                        seg = self._sink(bhs, view[start + BHS_LENGTH : end])
                        if seg is not None:
                            return bhs, b"", seg
                    return bhs, b"", bytes(view[start + BHS_LENGTH : end]) if dlen else b""
            if not self._read_header():
                return None
        assert self._pending is not None
        bhs, ahs, dlen = self._pending
        total = dlen + (-dlen % 4) + (4 if self.data_digest and dlen else 0)
        have = self._end - self._start
        if have < total:
            if total - have >= _OWN_BUFFER_AT or total > len(self._buf) - self._min_free:
                seg = None
                if (total == dlen and bhs[0] & 0x3F == _OP_DATA_OUT
                        and self.data_out_sink is not None):
                    seg = self.data_out_sink(bhs, dlen)
                self._seg = bytearray(total) if seg is None else seg
                self._seg[:have] = self._view[self._start : self._end]
                self._seg_pos = have
                self._start = self._end = 0
                return self._finish_own_segment()
            return None
        if total == dlen and not ahs and dlen >= _OWN_BUFFER_AT:
            seg = self._sink(bhs, self._view[self._start : self._start + dlen])
            if seg is not None:
                self._start += total
                self._pending = None
                return bhs, ahs, seg
        raw = bytes(self._view[self._start : self._start + total])
        self._start += total
        self._pending = None
        return self._complete(bhs, ahs, memoryview(raw), dlen)

    def _sink(self, bhs: bytes, data: memoryview) -> memoryview | None:
        """A Data-Out's data segment (no data digest) copied from the receive buffer
        straight to where ``data_out_sink`` says (its task's buffer), or None."""
        if bhs[0] & 0x3F != _OP_DATA_OUT or self.data_out_sink is None:
            return None
        seg = self.data_out_sink(bhs, len(data))
        if seg is not None:
            seg[:] = data
        return seg

    def _read_header(self) -> bool:
        have = self._end - self._start
        if have < BHS_LENGTH:
            return False
        v = self._view[self._start : self._end]
        ahs_len = v[4] * 4
        hlen = BHS_LENGTH + ahs_len + (4 if self.header_digest else 0)
        if have < hlen:
            return False
        header = bytes(v[: BHS_LENGTH + ahs_len])
        if self.header_digest and digest(header) != v[hlen - 4 : hlen]:
            raise ConnectionDropped("header digest error")  # 7.8: the header can't be trusted
        dlen = int.from_bytes(header[5:8], "big")
        if dlen > self.max_data_segment_length:
            raise ProtocolError(
                RejectReason.PROTOCOL_ERROR,
                f"DataSegmentLength {dlen} > MaxRecvDataSegmentLength "
                f"{self.max_data_segment_length}",
                fatal=True,
            )
        self._start += hlen
        self._pending = (header[:BHS_LENGTH], header[BHS_LENGTH:], dlen)
        return True

    def _finish_own_segment(self) -> Parts | None:
        assert self._seg is not None and self._pending is not None
        if self._seg_pos < len(self._seg):
            return None
        bhs, ahs, dlen = self._pending
        seg = self._seg
        self._seg, self._pending = None, None
        return self._complete(bhs, ahs, memoryview(seg), dlen)

    def _complete(self, bhs: bytes, ahs: bytes, raw: memoryview, dlen: int) -> Parts:
        data = raw[:dlen]
        if self.data_digest and dlen:
            end = dlen + (-dlen % 4)
            if digest(raw[:end]) != raw[end : end + 4]:
                raise DataDigestError(bhs)
        return bhs, ahs, data

    # -- sending ---------------------------------------------------------------
    def frame(self, header: bytes, data: Data = b"") -> list[Data]:
        """Buffers for one PDU: header (+digest), data untouched, padding (+digest)."""
        out: list[Data] = [header + digest(header) if self.header_digest else header]
        n = len(data)
        if n:
            out.append(data)
            tail = _PAD[n % 4]
            if self.data_digest:
                tail += digest(data, tail)
            if tail:
                out.append(tail)
        return out
