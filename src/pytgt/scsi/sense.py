"""Sense data (SPC-4 4.5): the one place where a :class:`CheckCondition` becomes bytes.

Handlers raise ``CheckCondition(sense_key, asc, ascq, field=..., bit=...)`` where the
fault is found; :func:`build_sense` encodes it as fixed (response code 70h, 18 bytes)
or descriptor (72h) format, as the logical unit's control mode page D_SENSE selects.
"""

from __future__ import annotations

import enum
import struct


class SenseKey(enum.IntEnum):
    """SPC-4 table 27."""

    NO_SENSE = 0x0
    RECOVERED_ERROR = 0x1
    NOT_READY = 0x2
    MEDIUM_ERROR = 0x3
    HARDWARE_ERROR = 0x4
    ILLEGAL_REQUEST = 0x5
    UNIT_ATTENTION = 0x6
    DATA_PROTECT = 0x7
    BLANK_CHECK = 0x8
    VENDOR_SPECIFIC = 0x9
    COPY_ABORTED = 0xA
    ABORTED_COMMAND = 0xB
    VOLUME_OVERFLOW = 0xD
    MISCOMPARE = 0xE


class Asc(tuple[int, int], enum.Enum):
    """Additional sense code and qualifier pairs (SPC-4 annex D), named as the spec."""

    NO_ADDITIONAL_SENSE = (0x00, 0x00)
    LOGICAL_UNIT_NOT_READY_CAUSE_NOT_REPORTABLE = (0x04, 0x00)
    LOGICAL_UNIT_NOT_READY_INITIALIZING_COMMAND_REQUIRED = (0x04, 0x02)
    LOGICAL_UNIT_NOT_READY_MANUAL_INTERVENTION_REQUIRED = (0x04, 0x03)
    WRITE_ERROR = (0x0C, 0x00)
    UNRECOVERED_READ_ERROR = (0x11, 0x00)
    MISCOMPARE_DURING_VERIFY_OPERATION = (0x1D, 0x00)
    PARAMETER_LIST_LENGTH_ERROR = (0x1A, 0x00)
    INVALID_COMMAND_OPERATION_CODE = (0x20, 0x00)
    LOGICAL_BLOCK_ADDRESS_OUT_OF_RANGE = (0x21, 0x00)
    INVALID_FIELD_IN_CDB = (0x24, 0x00)
    LOGICAL_UNIT_NOT_SUPPORTED = (0x25, 0x00)
    INVALID_FIELD_IN_PARAMETER_LIST = (0x26, 0x00)
    PARAMETER_VALUE_INVALID = (0x26, 0x02)
    WRITE_PROTECTED = (0x27, 0x00)
    SPACE_ALLOCATION_FAILED_WRITE_PROTECT = (0x27, 0x07)
    POWER_ON_RESET_OR_BUS_DEVICE_RESET_OCCURRED = (0x29, 0x00)
    POWER_ON_OCCURRED = (0x29, 0x01)
    SCSI_BUS_RESET_OCCURRED = (0x29, 0x02)
    BUS_DEVICE_RESET_FUNCTION_OCCURRED = (0x29, 0x03)
    I_T_NEXUS_LOSS_OCCURRED = (0x29, 0x07)
    MODE_PARAMETERS_CHANGED = (0x2A, 0x01)
    RESERVATIONS_PREEMPTED = (0x2A, 0x03)
    RESERVATIONS_RELEASED = (0x2A, 0x04)
    REGISTRATIONS_PREEMPTED = (0x2A, 0x05)
    CAPACITY_DATA_HAS_CHANGED = (0x2A, 0x09)
    COMMANDS_CLEARED_BY_ANOTHER_INITIATOR = (0x2F, 0x00)
    SAVING_PARAMETERS_NOT_SUPPORTED = (0x39, 0x00)
    MEDIUM_NOT_PRESENT = (0x3A, 0x00)
    REPORTED_LUNS_DATA_HAS_CHANGED = (0x3F, 0x0E)
    INTERNAL_TARGET_FAILURE = (0x44, 0x00)
    MEDIUM_REMOVAL_PREVENTED = (0x53, 0x02)
    INSUFFICIENT_REGISTRATION_RESOURCES = (0x55, 0x04)


class CheckCondition(Exception):
    """A command ends with CHECK CONDITION and this sense.

    ``field``/``bit`` point at the offending byte/bit (sense-key specific field pointer,
    SPC-4 4.5.2.4.2) in the CDB (``cdb=True``) or the parameter list; ``information``
    fills the INFORMATION field (e.g. the miscompare offset).
    """

    def __init__(self, key: int, asc: Asc | tuple[int, int], *, field: int | None = None,
                 bit: int | None = None, cdb: bool = True,
                 information: int | None = None) -> None:
        self.key = key
        self.asc, self.ascq = asc
        self.field = field
        self.bit = bit
        self.cdb = cdb
        self.information = information
        super().__init__(f"sense {key:x}/{self.asc:02x}/{self.ascq:02x}")


def invalid_field(field: int, bit: int | None = None) -> CheckCondition:
    """ILLEGAL REQUEST, INVALID FIELD IN CDB pointing at ``field``/``bit``."""
    return CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB, field=field, bit=bit)


def invalid_param(field: int, bit: int | None = None) -> CheckCondition:
    """ILLEGAL REQUEST, INVALID FIELD IN PARAMETER LIST pointing into the Data-Out."""
    return CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_PARAMETER_LIST,
                          field=field, bit=bit, cdb=False)


def lba_out_of_range() -> CheckCondition:
    return CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.LOGICAL_BLOCK_ADDRESS_OUT_OF_RANGE)


def invalid_opcode() -> CheckCondition:
    return CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_COMMAND_OPERATION_CODE, field=0)


_FIXED = struct.Struct(">BBBIBIBBB3s")  # 18 bytes


def _sks(exc: CheckCondition) -> bytes | None:
    """The sense-key specific field: a field pointer (SPC-4 4.5.2.4.2)."""
    if exc.field is None:
        return None
    b0 = 0x80 | (0x40 if exc.cdb else 0)
    if exc.bit is not None:
        b0 |= 0x08 | (exc.bit & 7)
    return bytes((b0, (exc.field >> 8) & 0xFF, exc.field & 0xFF))


def build_sense(key: int, asc: int, ascq: int, *, descriptor: bool = False,
                information: int | None = None, sks: bytes | None = None) -> bytes:
    """Encode sense data, fixed format (70h) or descriptor format (72h)."""
    if not descriptor:
        # Fixed format has 4 bytes of INFORMATION: VALID only when the value fits.
        fits = information is not None and 0 <= information <= 0xFFFFFFFF
        info = information if fits and information is not None else 0
        valid = 0x80 if fits else 0
        return _FIXED.pack(0x70 | valid, 0, key & 0xF, info, 10, 0, asc, ascq, 0,
                           sks or b"\0\0\0")
    body = b""
    if information is not None:
        body += struct.pack(">BBBBQ", 0x00, 0x0A, 0x80, 0, information & (2**64 - 1))
    if sks is not None:
        body += bytes((0x02, 0x06, 0, 0)) + sks + b"\0"
    return bytes((0x72, key & 0xF, asc, ascq, 0, 0, 0, len(body))) + body


def sense_bytes(exc: CheckCondition, descriptor: bool = False) -> bytes:
    """The sense data for a :class:`CheckCondition`."""
    return build_sense(exc.key, exc.asc, exc.ascq, descriptor=descriptor,
                       information=exc.information, sks=_sks(exc))


def decode_sense(sense: bytes) -> tuple[int, int, int]:
    """(sense key, asc, ascq) from fixed or descriptor sense data (for tests and logs)."""
    if sense[0] & 0x7F in (0x72, 0x73):
        return sense[1] & 0xF, sense[2], sense[3]
    return sense[2] & 0xF, sense[12], sense[13]
