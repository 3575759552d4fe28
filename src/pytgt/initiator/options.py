"""Initiator options: one documented dataclass (what the initiator proposes at login)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from pytgt.iscsi.keys import SessionParams

DEFAULT_INITIATOR_NAME = "iqn.2026-11.org.pytgt:initiator"


def random_isid() -> int:
    """A random-type ISID (RFC 7143 11.12.5: T=10b, 24 random bits in B and C, D=0)."""
    return (0x80 << 40) | (secrets.randbits(24) << 16)


@dataclass(slots=True)
class InitiatorOptions:
    """What to ask for at login; the results end up in a ``SessionParams`` (the record
    the target keeps too, :mod:`pytgt.iscsi.keys`).

    ``header_digest`` / ``data_digest`` True propose CRC32C only (the target must
    accept it or fail the login); False proposes None. ``chap`` is (user, secret) for
    one-way CHAP; ``mutual_chap`` adds the target's (user, secret) to check it back.

    To add a connection to a session (MaxConnections > 1, RFC 7143 5.3.4) give its
    ``isid``, ``tsih``, a new ``cid`` and ``session``: the session's parameters (the
    leading connection's ``negotiated``). The joining connection negotiates only
    connection keys (digests, MaxRecvDataSegmentLength) and takes the session-wide ones
    (ImmediateData, InitialR2T, FirstBurstLength, ...) from ``session``; a join without
    ``session`` is a UsageError.
    """

    initiator_name: str = DEFAULT_INITIATOR_NAME
    target_name: str | None = None  # None: a discovery session
    initiator_alias: str | None = None
    isid: int = field(default_factory=random_isid)
    tsih: int = 0
    cid: int = 0
    session: SessionParams | None = None  # when joining a session: its parameters
    cmd_sn: int = 1
    header_digest: bool = False
    data_digest: bool = False
    immediate_data: bool = True
    initial_r2t: bool = True
    max_recv_data_segment_length: int = 262144
    max_burst_length: int = 262144
    first_burst_length: int = 65536
    max_outstanding_r2t: int = 1
    max_connections: int = 1
    default_time2wait: int = 2
    default_time2retain: int = 0
    error_recovery_level: int = 0
    chap: tuple[str, str] | None = None
    mutual_chap: tuple[str, str] | None = None
    chap_algorithms: tuple[int, ...] = (5,)
    extra_keys: list[tuple[str, str]] = field(default_factory=list)

    @property
    def discovery(self) -> bool:
        return self.target_name is None
