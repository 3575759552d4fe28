"""iSNSP PDUs and attributes (RFC 4171 5.1, 5.5): bytes in, messages out, and back.

A *message* is one request or response; it spans one or more PDUs of the same
transaction (FIRST_PDU ... LAST_PDU, Sequence ID from 0). The payload of a request is
TLV attributes (Source, Message Key, Delimiter, Operating; 5.6.1); of a response, a
4-byte IsnsStatus Code followed by attributes (5.7).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from pytgt.isns.constants import (
    HEADER_SIZE,
    ISNS_VERSION,
    MAX_PAYLOAD,
    RESPONSE_BIT,
    Flags,
    Tag,
)

_HEADER = struct.Struct(">HHHHHH")
_TL = struct.Struct(">II")
_U32 = struct.Struct(">I")
MAX_MESSAGE = 1 << 20  # a message larger than this is refused (bounded reassembly)
MAX_PARTIAL = 16  # messages being reassembled at once


class IsnsFormatError(Exception):
    """Bytes that are not iSNSP (5.1): bad version, length or attribute framing."""


@dataclass(frozen=True, slots=True)
class Attribute:
    """One TLV attribute (5.5): a tag and its value, padded to 4 bytes on the wire."""

    tag: int
    value: bytes = b""

    @classmethod
    def string(cls, tag: int, text: str) -> Attribute:
        """A NUL-terminated UTF-8 string (5.5.1), padded to a multiple of 4."""
        raw = text.encode() + b"\0"
        return cls(tag, raw + b"\0" * (-len(raw) % 4))

    @classmethod
    def u32(cls, tag: int, value: int) -> Attribute:
        return cls(tag, _U32.pack(value))

    @classmethod
    def ip(cls, tag: int, address: str) -> Attribute:
        """A 16-byte IP address; IPv4 as an IPv4-mapped IPv6 address (6.3.1)."""
        addr = ipaddress.ip_address(address)
        if isinstance(addr, ipaddress.IPv4Address):
            addr = ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + addr.packed)
        return cls(tag, addr.packed)

    @classmethod
    def nil(cls, tag: int) -> Attribute:
        """A zero-length attribute: the delimiter, or a key asking for every value."""
        return cls(tag)

    def as_str(self) -> str:
        return self.value.rstrip(b"\0").decode(errors="replace")

    def as_u32(self) -> int:
        if len(self.value) != 4:
            raise IsnsFormatError(f"attribute {self.tag}: {len(self.value)} bytes, not 4")
        return int(_U32.unpack(self.value)[0])

    def as_ip(self) -> str:
        if len(self.value) != 16:
            raise IsnsFormatError(f"attribute {self.tag}: {len(self.value)} bytes, not 16")
        addr = ipaddress.IPv6Address(self.value)
        return str(addr.ipv4_mapped or addr)

    def encode(self) -> bytes:
        pad = b"\0" * (-len(self.value) % 4)
        return _TL.pack(self.tag, len(self.value) + len(pad)) + self.value + pad


DELIMITER = Attribute.nil(Tag.Delimiter)


def encode_attributes(attrs: tuple[Attribute, ...] | list[Attribute]) -> bytes:
    return b"".join(a.encode() for a in attrs)


def decode_attributes(data: bytes | memoryview) -> tuple[Attribute, ...]:
    """TLVs until the end; raises IsnsFormatError on a length past the end or unaligned."""
    data = bytes(data)
    out: list[Attribute] = []
    pos = 0
    while pos < len(data):
        if pos + 8 > len(data):
            raise IsnsFormatError(f"truncated attribute header at {pos}")
        tag, length = _TL.unpack_from(data, pos)
        end = pos + 8 + length
        if length % 4 or end > len(data):
            raise IsnsFormatError(f"attribute {tag} at {pos}: bad length {length}")
        out.append(Attribute(tag, data[pos + 8:end]))
        pos = end
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Message:
    """A whole iSNSP message. ``status`` is set for responses only (5.7)."""

    function: int
    xid: int
    attributes: tuple[Attribute, ...] = ()
    flags: int = Flags.CLIENT
    status: int | None = None

    @property
    def is_response(self) -> bool:
        return bool(self.function & RESPONSE_BIT)

    def split(self) -> tuple[tuple[Attribute, ...], tuple[Attribute, ...], tuple[Attribute, ...]]:
        """A request's (source, message key, operating) attributes (5.6.1)."""
        attrs = self.attributes
        if not attrs:
            return (), (), ()
        rest = attrs[1:]
        for i, a in enumerate(rest):
            if a.tag == Tag.Delimiter:
                return attrs[:1], rest[:i], rest[i + 1:]
        return attrs[:1], rest, ()

    def first(self, tag: int) -> Attribute | None:
        return next((a for a in self.attributes if a.tag == tag), None)

    def payload(self) -> bytes:
        body = encode_attributes(self.attributes)
        return body if self.status is None else _U32.pack(self.status) + body


def request(function: int, xid: int, source: Attribute, keys: list[Attribute],
            operating: list[Attribute], flags: int = 0) -> Message:
    """A request laid out as 5.6.1 says: Source, Message Key, Delimiter, Operating."""
    return Message(function, xid, (source, *keys, DELIMITER, *operating),
                   Flags.CLIENT | flags)


def encode_message(msg: Message) -> list[bytes]:
    """The PDUs of ``msg``: one if it fits, else split at attribute boundaries (5.1.3)."""
    chunks: list[bytes] = []
    current = b"" if msg.status is None else _U32.pack(msg.status)
    for attr in msg.attributes:
        raw = attr.encode()
        if current and len(current) + len(raw) > MAX_PAYLOAD:
            chunks.append(current)
            current = b""
        current += raw
    chunks.append(current)
    flags = msg.flags & ~(Flags.FIRST_PDU | Flags.LAST_PDU)
    pdus = []
    for seq, chunk in enumerate(chunks):
        f = flags | (Flags.FIRST_PDU if seq == 0 else 0)
        f |= Flags.LAST_PDU if seq == len(chunks) - 1 else 0
        pdus.append(_HEADER.pack(ISNS_VERSION, msg.function, len(chunk), f, msg.xid, seq)
                    + chunk)
    return pdus


@dataclass(slots=True)
class _Partial:
    function: int
    flags: int
    next_seq: int
    payload: bytearray


@dataclass
class IsnsFramer:
    """Bytes in, whole messages out. Feed with :meth:`receive_data`; take with
    :meth:`next_message` (None until a message is complete). Raises IsnsFormatError."""

    _buf: bytearray = field(default_factory=bytearray)
    _partial: dict[int, _Partial] = field(default_factory=dict)
    _ready: list[Message] = field(default_factory=list)

    def receive_data(self, data: bytes) -> None:
        self._buf += data
        while len(self._buf) >= HEADER_SIZE:
            version, function, length, flags, xid, seq = _HEADER.unpack_from(self._buf)
            if version != ISNS_VERSION:
                raise IsnsFormatError(f"iSNSP version {version}")
            if len(self._buf) < HEADER_SIZE + length:
                return
            payload = bytes(self._buf[HEADER_SIZE:HEADER_SIZE + length])
            del self._buf[:HEADER_SIZE + length]
            self._pdu(function, flags, xid, seq, payload)

    def _pdu(self, function: int, flags: int, xid: int, seq: int, payload: bytes) -> None:
        part = self._partial.pop(xid, None)
        if flags & Flags.FIRST_PDU or part is None:
            part = _Partial(function, flags, 0, bytearray())
        if seq != part.next_seq or function != part.function:
            raise IsnsFormatError(f"xid {xid}: PDU {seq} out of sequence")
        part.payload += payload
        part.next_seq += 1
        if len(part.payload) > MAX_MESSAGE:
            raise IsnsFormatError(f"xid {xid}: message over {MAX_MESSAGE} bytes")
        if flags & Flags.LAST_PDU:
            pdu_flags = Flags.FIRST_PDU | Flags.LAST_PDU  # of the PDU, not the message
            self._ready.append(decode_message(function, part.flags & ~pdu_flags, xid,
                                              bytes(part.payload)))
        else:
            self._partial[xid] = part
            if len(self._partial) > MAX_PARTIAL:
                raise IsnsFormatError(f"over {MAX_PARTIAL} messages in reassembly")

    def next_message(self) -> Message | None:
        return self._ready.pop(0) if self._ready else None


def decode_message(function: int, flags: int, xid: int, payload: bytes) -> Message:
    """A message from its reassembled payload; responses start with the status (5.7)."""
    if function & RESPONSE_BIT:
        if len(payload) < 4:
            raise IsnsFormatError(f"response {function:#06x} without a status code")
        status = int(_U32.unpack_from(payload)[0])
        return Message(function, xid, decode_attributes(payload[4:]), flags, status)
    return Message(function, xid, decode_attributes(payload), flags)
