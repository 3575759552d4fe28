"""The messages an iSCSI target sends to its iSNS server, and its answers to the server's.

Built on :mod:`.codec`; every function returns a :class:`~.codec.Message`. The target's
whole registration is one DevAttrReg with the REPLACE flag (5.6.5.1): the entity, its
portals (with the ESI and SCN port), every target node and the Portal Groups joining
them (6.5), so a change is the same call with the new state.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytgt.isns.codec import Attribute, Message, request
from pytgt.isns.constants import EntityProtocol, Flags, IsnsFunction, NodeType, ScnBits, Tag

# What a target asks to hear about (6.4.4): initiators (and itself) added, changed, gone.
TARGET_SCN_BITMAP = (ScnBits.InitiatorAndSelfOnly | ScnBits.ObjectAdded
                     | ScnBits.ObjectUpdated | ScnBits.ObjectRemoved)


@dataclass(frozen=True, slots=True)
class Portal:
    """One network portal: its address (a literal IP) and TCP port."""

    address: str
    port: int


@dataclass(frozen=True, slots=True)
class Node:
    """One iSCSI target node: its name and alias (6.4.1, 6.4.3)."""

    name: str
    alias: str = ""


@dataclass(frozen=True, slots=True)
class EntityRegistration:
    """What the entity registers: its identity, portals, nodes and portal group tag."""

    entity_id: str
    portals: tuple[Portal, ...]
    nodes: tuple[Node, ...]
    tpgt: int = 1
    esi_port: int | None = None
    esi_interval: int | None = None
    scn_port: int | None = None
    registration_period: int | None = None


def _portal_attrs(p: Portal, reg: EntityRegistration) -> list[Attribute]:
    attrs = [Attribute.ip(Tag.PortalIPAddress, p.address),
             Attribute.u32(Tag.PortalTCPUDPPort, p.port)]
    if reg.esi_port is not None:
        if reg.esi_interval is not None:
            attrs.append(Attribute.u32(Tag.ESIInterval, reg.esi_interval))
        attrs.append(Attribute.u32(Tag.ESIPort, reg.esi_port))
    if reg.scn_port is not None:
        attrs.append(Attribute.u32(Tag.SCNPort, reg.scn_port))
    return attrs


def _node_attrs(n: Node) -> list[Attribute]:
    attrs = [Attribute.string(Tag.iSCSIName, n.name),
             Attribute.u32(Tag.iSCSINodeType, NodeType.Target)]
    if n.alias:
        attrs.append(Attribute.string(Tag.iSCSIAlias, n.alias))
    return attrs


def _portal_group_attrs(n: Node, p: Portal, tpgt: int) -> list[Attribute]:
    """A Portal Group object (6.5): this node reachable through this portal, with a PGT."""
    return [Attribute.string(Tag.PGiSCSIName, n.name),
            Attribute.ip(Tag.PGPortalIPAddr, p.address),
            Attribute.u32(Tag.PGPortalTCPUDPPort, p.port),
            Attribute.u32(Tag.PGTag, tpgt)]


def dev_attr_reg(reg: EntityRegistration, xid: int) -> Message:
    """DevAttrReg (5.6.5.1) replacing the entity's registration with ``reg``.

    The source is the first node (registered by this very message); raises ValueError
    without nodes (an entity with no node has nothing to announce: deregister it).
    """
    if not reg.nodes:
        raise ValueError("a registration needs at least one node")
    eid = Attribute.string(Tag.EntityIdentifier, reg.entity_id)
    operating = [eid, Attribute.u32(Tag.EntityProtocol, EntityProtocol.iSCSI)]
    if reg.registration_period is not None:
        operating.append(Attribute.u32(Tag.RegistrationPeriod, reg.registration_period))
    for p in reg.portals:
        operating += _portal_attrs(p, reg)
    for n in reg.nodes:
        operating += _node_attrs(n)
    for n in reg.nodes:
        for p in reg.portals:
            operating += _portal_group_attrs(n, p, reg.tpgt)
    source = Attribute.string(Tag.iSCSIName, reg.nodes[0].name)
    return request(IsnsFunction.DevAttrReg, xid, source, [eid], operating, Flags.REPLACE)


def dev_dereg_nodes(source: str, names: list[str], xid: int) -> Message:
    """DevDereg (5.6.5.4) of these storage nodes; the entity and its portals stay."""
    return request(IsnsFunction.DevDereg, xid, Attribute.string(Tag.iSCSIName, source), [],
                   [Attribute.string(Tag.iSCSIName, n) for n in names])


def dev_dereg_entity(source: str, entity_id: str, xid: int) -> Message:
    """DevDereg (5.6.5.4) of the whole entity: its portals and nodes go with it."""
    return request(IsnsFunction.DevDereg, xid, Attribute.string(Tag.iSCSIName, source), [],
                   [Attribute.string(Tag.EntityIdentifier, entity_id)])


def scn_reg(name: str, xid: int, bitmap: int = TARGET_SCN_BITMAP) -> Message:
    """SCNReg (5.6.5.5): tell ``name`` about changes it may see, on its SCN port."""
    node = Attribute.string(Tag.iSCSIName, name)
    return request(IsnsFunction.SCNReg, xid, node, [node],
                   [Attribute.u32(Tag.iSCSISCNBitmap, bitmap)])


def dev_attr_qry_initiators(source: str, xid: int) -> Message:
    """DevAttrQry (5.6.5.2) for the initiators ``source`` may see: names and node types."""
    return request(IsnsFunction.DevAttrQry, xid, Attribute.string(Tag.iSCSIName, source),
                   [Attribute.u32(Tag.iSCSINodeType, NodeType.Initiator)],
                   [Attribute.nil(Tag.iSCSIName), Attribute.nil(Tag.iSCSINodeType)])


def response_to(msg: Message, status: int, attributes: tuple[Attribute, ...]) -> Message:
    """The response to a server's request (same transaction, function | 0x8000)."""
    return Message(msg.function | 0x8000, msg.xid, attributes,
                   Flags.CLIENT, status)


def esi_response(esi: Message) -> Message:
    """ESIRsp (5.7.5.13): success, echoing the ESI's attributes (EID, portal IP, port)."""
    return response_to(esi, 0, esi.attributes)


def scn_response(scn: Message) -> Message:
    """SCNRsp (5.7.5.8): success, with the SCN's destination attribute (its first)."""
    return response_to(scn, 0, scn.attributes[:1])


def initiator_names(rsp: Message) -> list[str]:
    """The iSCSI names of initiator nodes listed in a DevAttrQryRsp (5.7.5.2)."""
    names: list[str] = []
    name: str | None = None
    for a in rsp.attributes:
        if a.tag == Tag.iSCSIName:
            name = a.as_str()
        elif a.tag == Tag.iSCSINodeType and name is not None:
            if a.value and a.as_u32() & NodeType.Initiator:
                names.append(name)
            name = None
    return names
