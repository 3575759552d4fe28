"""iSNSP numbers, named as RFC 4171 names them."""

from __future__ import annotations

from enum import IntEnum, IntFlag

ISNS_VERSION = 0x0001  # 5.1.1
ISNS_PORT = 3205  # 5.1 (IANA)
HEADER_SIZE = 12  # 5.1: version, function, length, flags, transaction, sequence
MAX_PAYLOAD = 0xFFFC  # the 16-bit PDU Length, a multiple of 4 (5.1.3)


class IsnsFunction(IntEnum):
    """iSNSP Function ID (6.1); a response is the request's ID with bit 0x8000 set."""

    DevAttrReg = 0x0001
    DevAttrQry = 0x0002
    DevGetNext = 0x0003
    DevDereg = 0x0004
    SCNReg = 0x0005
    SCNDereg = 0x0006
    SCNEvent = 0x0007
    SCN = 0x0008
    DDReg = 0x0009
    DDDereg = 0x000A
    DDSReg = 0x000B
    DDSDereg = 0x000C
    ESI = 0x000D
    Heartbeat = 0x000E
    DevAttrRegRsp = 0x8001
    DevAttrQryRsp = 0x8002
    DevGetNextRsp = 0x8003
    DevDeregRsp = 0x8004
    SCNRegRsp = 0x8005
    SCNDeregRsp = 0x8006
    SCNEventRsp = 0x8007
    SCNRsp = 0x8008
    DDRegRsp = 0x8009
    DDDeregRsp = 0x800A
    DDSRegRsp = 0x800B
    DDSDeregRsp = 0x800C
    ESIRsp = 0x800D


RESPONSE_BIT = 0x8000


class Flags(IntFlag):
    """iSNSP Flags (5.1.4), bit 16 being the most significant of the 16."""

    CLIENT = 0x8000
    SERVER = 0x4000
    AUTH = 0x2000
    REPLACE = 0x1000
    LAST_PDU = 0x0800
    FIRST_PDU = 0x0400


class IsnsStatus(IntEnum):
    """iSNS Response Status Codes (5.4), the first word of every response."""

    Successful = 0
    UnknownError = 1
    MessageFormatError = 2
    InvalidRegistration = 3
    InvalidQuery = 5
    SourceUnknown = 6
    SourceAbsent = 7
    SourceUnauthorized = 8
    NoSuchEntry = 9
    VersionNotSupported = 10
    InternalError = 11
    Busy = 12
    OptionNotUnderstood = 13
    InvalidUpdate = 14
    MessageNotSupported = 15
    SCNEventRejected = 16
    SCNRegistrationRejected = 17
    AttributeNotImplemented = 18
    ESINotAvailable = 21
    InvalidDeregistration = 22
    RegistrationFeatureNotSupported = 23


class Tag(IntEnum):
    """iSNS attribute tags (6.1, the table of 6.3-6.9) used by an iSCSI target."""

    Delimiter = 0
    EntityIdentifier = 1
    EntityProtocol = 2
    ManagementIPAddress = 3
    Timestamp = 4
    ProtocolVersionRange = 5
    RegistrationPeriod = 6
    EntityIndex = 7
    PortalIPAddress = 16
    PortalTCPUDPPort = 17
    PortalSymbolicName = 18
    ESIInterval = 19
    ESIPort = 20
    PortalIndex = 22
    SCNPort = 23
    iSCSIName = 32
    iSCSINodeType = 33
    iSCSIAlias = 34
    iSCSISCNBitmap = 35
    iSCSINodeIndex = 36
    PGiSCSIName = 48
    PGPortalIPAddr = 49
    PGPortalTCPUDPPort = 50
    PGTag = 51
    PGIndex = 52


class EntityProtocol(IntEnum):
    """Entity Protocol values (6.2.2)."""

    NoProtocol = 1
    iSCSI = 2
    iFCP = 3


class NodeType(IntFlag):
    """iSCSI Node Type bitmap (6.4.2): bit 31 Target, 30 Initiator, 29 Control."""

    Target = 0x1
    Initiator = 0x2
    Control = 0x4


class ScnBits(IntFlag):
    """iSCSI SCN Bitmap (6.4.4)."""

    DDMemberAdded = 0x01
    DDMemberRemoved = 0x02
    ObjectUpdated = 0x04
    ObjectAdded = 0x08
    ObjectRemoved = 0x10
    ManagementRegistration = 0x20
    TargetAndSelfOnly = 0x40
    InitiatorAndSelfOnly = 0x80


PORT_UDP = 0x10000  # 6.3.2: bit 15 of the Portal TCP/UDP Port attribute set means UDP
