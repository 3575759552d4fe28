"""iSNSP codec (RFC 4171 5.1, 5.5), byte by byte; messages a target sends and answers."""

from __future__ import annotations

import functools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytgt.isns import messages
from pytgt.isns.codec import (
    Attribute,
    IsnsFormatError,
    IsnsFramer,
    Message,
    decode_attributes,
    encode_message,
)
from pytgt.isns.constants import Flags, IsnsFunction, IsnsStatus, NodeType, Tag
from pytgt.isns.session import ClientConnection, EsiReceived, Response, ScnReceived

IQN = "iqn.2026-12.org.pytgt:a"


def test_string_attribute_is_nul_terminated_and_padded() -> None:
    # 5.5.1: tag, length (a multiple of 4), the UTF-8 string with its NUL
    assert Attribute.string(Tag.iSCSIName, "abc").encode() == \
        b"\0\0\0\x20\0\0\0\x04abc\0"
    assert Attribute.string(Tag.iSCSIName, "abcd").encode() == \
        b"\0\0\0\x20\0\0\0\x08abcd\0\0\0\0"


def test_ipv4_is_mapped_into_16_bytes() -> None:
    a = Attribute.ip(Tag.PortalIPAddress, "127.0.0.1")
    assert a.encode() == b"\0\0\0\x10\0\0\0\x10" + b"\0" * 10 + b"\xff\xff\x7f\0\0\x01"
    assert a.as_ip() == "127.0.0.1"
    assert Attribute.ip(Tag.PortalIPAddress, "::1").as_ip() == "::1"


def test_u32_and_delimiter() -> None:
    assert Attribute.u32(Tag.iSCSINodeType, NodeType.Target).encode() == \
        b"\0\0\0\x21\0\0\0\x04\0\0\0\x01"
    assert Attribute.nil(Tag.Delimiter).encode() == b"\0" * 8


def test_scn_reg_bytes() -> None:
    """SCNReg (5.6.5.5): header, Source, Key, Delimiter, the SCN bitmap."""
    pdus = encode_message(messages.scn_reg("iqn.x", 7))
    name = b"\0\0\0\x20\0\0\0\x08iqn.x\0\0\0"
    payload = name + name + b"\0" * 8 + b"\0\0\0\x23\0\0\0\x04\0\0\0\x9c"
    header = struct.pack(">HHHHHH", 1, 5, len(payload), 0x8000 | 0x0800 | 0x0400, 7, 0)
    assert pdus == [header + payload]


def test_dev_attr_reg_layout() -> None:
    reg = messages.EntityRegistration("host:1", (messages.Portal("127.0.0.1", 3260),),
                                (messages.Node(IQN, "disk"),), tpgt=2, esi_port=4000,
                                esi_interval=20, scn_port=4000)
    msg = messages.dev_attr_reg(reg, 1)
    assert msg.flags & Flags.REPLACE
    source, keys, operating = msg.split()
    assert source[0].as_str() == IQN
    assert [k.as_str() for k in keys] == ["host:1"]
    assert [a.tag for a in operating] == [
        Tag.EntityIdentifier, Tag.EntityProtocol, Tag.PortalIPAddress, Tag.PortalTCPUDPPort,
        Tag.ESIInterval, Tag.ESIPort, Tag.SCNPort, Tag.iSCSIName, Tag.iSCSINodeType,
        Tag.iSCSIAlias, Tag.PGiSCSIName, Tag.PGPortalIPAddr, Tag.PGPortalTCPUDPPort, Tag.PGTag]
    assert operating[-1].as_u32() == 2
    with pytest.raises(ValueError):
        messages.dev_attr_reg(messages.EntityRegistration("e", (), ()), 1)


def test_dereg_of_nodes_and_of_the_entity() -> None:
    _s, keys, op = messages.dev_dereg_nodes(IQN, [IQN, "iqn.b"], 3).split()
    assert keys == () and [a.as_str() for a in op] == [IQN, "iqn.b"]
    _s, keys, op = messages.dev_dereg_entity(IQN, "host:1", 4).split()
    assert [(a.tag, a.as_str()) for a in op] == [(Tag.EntityIdentifier, "host:1")]


@pytest.mark.parametrize("step", [1, 5, 1000])
def test_framer_whole_and_byte_at_a_time(step: int) -> None:
    msg = messages.dev_attr_qry_initiators(IQN, 9)
    wire = b"".join(encode_message(msg)) * 2
    f = IsnsFramer()
    got = []
    for i in range(0, len(wire), step):
        f.receive_data(wire[i:i + step])
        while (m := f.next_message()) is not None:
            got.append(m)
    assert got == [msg, msg]


def test_a_large_message_spans_pdus_and_is_reassembled() -> None:
    nodes = tuple(messages.Node(f"iqn.2026-12.org.pytgt:{i:05d}-" + "x" * 200)
                  for i in range(400))
    reg = messages.EntityRegistration("e", (messages.Portal("10.0.0.1", 3260),), nodes)
    msg = messages.dev_attr_reg(reg, 2)
    pdus = encode_message(msg)
    assert len(pdus) > 1
    assert [struct.unpack(">H", p[10:12])[0] for p in pdus] == list(range(len(pdus)))
    f = IsnsFramer()
    f.receive_data(b"".join(pdus))
    assert f.next_message() == msg


def test_response_carries_status_first() -> None:
    rsp = Message(IsnsFunction.DevAttrRegRsp, 5, (Attribute.u32(Tag.RegistrationPeriod, 900),),
                  Flags.SERVER, IsnsStatus.Successful)
    wire = b"".join(encode_message(rsp))
    assert wire[12:16] == b"\0\0\0\0"
    f = IsnsFramer()
    f.receive_data(wire)
    assert f.next_message() == rsp


@pytest.mark.parametrize("wire, error", [
    (b"\0\x02" + b"\0" * 10, "version 2"),
    (struct.pack(">HHHHHH", 1, 0x8001, 0, 0x4C00, 1, 0), "without a status"),
    (struct.pack(">HHHHHH", 1, 2, 8, 0x8C00, 1, 0) + b"\0\0\0\x20\0\0\0\x10",
     "bad length"),
    (struct.pack(">HHHHHH", 1, 2, 4, 0x8C00, 1, 0) + b"\0\0\0\x20", "truncated"),
    (struct.pack(">HHHHHH", 1, 2, 0, 0x8000, 1, 3), "out of sequence"),
])
def test_bad_bytes_raise_the_exact_error(wire: bytes, error: str) -> None:
    with pytest.raises(IsnsFormatError, match=error):
        IsnsFramer().receive_data(wire)


def test_decode_rejects_unaligned_lengths() -> None:
    with pytest.raises(IsnsFormatError):
        decode_attributes(b"\0\0\0\x20\0\0\0\x03abc\0")


def _server(function: int, xid: int, attrs: tuple[Attribute, ...]) -> bytes:
    return b"".join(encode_message(Message(function, xid, attrs, Flags.SERVER)))


def test_client_connection_matches_responses_and_answers_esi_and_scn() -> None:
    conn = ClientConnection()
    xid = conn.send(functools.partial(messages.scn_reg, IQN))
    sent = b"".join(conn.data_to_send())
    assert struct.unpack(">H", sent[8:10])[0] == xid and conn.pending == 1
    conn.receive_data(b"".join(encode_message(
        Message(IsnsFunction.SCNRegRsp, xid, (), Flags.SERVER, 0))))
    ev = conn.next_event()
    assert isinstance(ev, Response) and ev.request == IsnsFunction.SCNReg and ev.status == 0
    esi = (Attribute.string(Tag.EntityIdentifier, "e"),
           Attribute.ip(Tag.PortalIPAddress, "127.0.0.1"),
           Attribute.u32(Tag.PortalTCPUDPPort, 3260))
    conn.receive_data(_server(IsnsFunction.ESI, 40, esi))
    assert isinstance(conn.next_event(), EsiReceived)
    f = IsnsFramer()
    f.receive_data(b"".join(conn.data_to_send()))
    assert f.next_message() == Message(IsnsFunction.ESIRsp, 40, esi, Flags.CLIENT, 0)
    scn = (Attribute.string(Tag.iSCSIName, IQN), Attribute.nil(Tag.Timestamp),
           Attribute.string(Tag.iSCSIName, "iqn.initiator"),
           Attribute.u32(Tag.iSCSISCNBitmap, 0x08))
    conn.receive_data(_server(IsnsFunction.SCN, 41, scn))
    ev = conn.next_event()
    assert isinstance(ev, ScnReceived) and ev.destination == IQN
    assert ev.names == ("iqn.initiator",)
    f.receive_data(b"".join(conn.data_to_send()))
    assert f.next_message() == Message(IsnsFunction.SCNRsp, 41, scn[:1], Flags.CLIENT, 0)


def test_client_connection_refuses_requests_it_does_not_serve() -> None:
    conn = ClientConnection()
    conn.receive_data(_server(IsnsFunction.DevAttrQry, 3, ()))
    assert conn.next_event() is None
    f = IsnsFramer()
    f.receive_data(b"".join(conn.data_to_send()))
    rsp = f.next_message()
    assert rsp is not None and rsp.status == IsnsStatus.MessageNotSupported


def test_initiator_names_from_a_query_response() -> None:
    rsp = Message(IsnsFunction.DevAttrQryRsp, 1, (
        Attribute.string(Tag.iSCSIName, "iqn.i1"), Attribute.u32(Tag.iSCSINodeType, 2),
        Attribute.string(Tag.iSCSIName, "iqn.t1"), Attribute.u32(Tag.iSCSINodeType, 1),
    ), Flags.SERVER, 0)
    assert messages.initiator_names(rsp) == ["iqn.i1"]


_attrs = st.lists(st.builds(Attribute, st.integers(0, 2**32 - 1),
                            st.binary(max_size=64).map(lambda b: b + bytes(-len(b) % 4))),
                  max_size=20)


@given(function=st.sampled_from(list(IsnsFunction)), xid=st.integers(0, 0xFFFF),
       attrs=_attrs, status=st.integers(0, 2**32 - 1))
def test_every_message_round_trips(function: IsnsFunction, xid: int,
                                   attrs: list[Attribute], status: int) -> None:
    msg = Message(function, xid, tuple(attrs), Flags.CLIENT,
                  status if function & 0x8000 else None)
    f = IsnsFramer()
    f.receive_data(b"".join(encode_message(msg)))
    assert f.next_message() == msg


@given(st.binary(max_size=300))
def test_any_bytes_give_messages_or_the_format_error(data: bytes) -> None:
    f = IsnsFramer()
    try:
        f.receive_data(struct.pack(">H", 1) + data)
    except IsnsFormatError:
        return
    while f.next_message() is not None:
        pass
