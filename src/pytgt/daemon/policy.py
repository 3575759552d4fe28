"""The daemon's answers to the iSCSI core's questions, read from the config model.

Login (target lookup, ACL, admin overrides, CHAP accounts), discovery (SendTargets
filtered by ACL, RFC 7143 Appendix C), session bookkeeping for ``--op show`` and the
target-wide part of task management (SAM-5 7).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from pytgt.config.model import ConnectionInfo, NexusInfo, Registry, Target
from pytgt.daemon import redirect, stats
from pytgt.daemon.security import SecurityMonitor
from pytgt.iscsi.policy import LoginFailure, TargetPolicy

if TYPE_CHECKING:
    from pytgt.iscsi.connection import TargetConnection
    from pytgt.iscsi.keys import SessionParams
    from pytgt.iscsi.session import Session

log = logging.getLogger("pytgt.daemon.policy")

_SHOWN_PARAMS = (
    "HeaderDigest", "DataDigest", "MaxRecvDataSegmentLength", "MaxXmitDataSegmentLength",
    "MaxBurstLength", "FirstBurstLength", "ImmediateData", "InitialR2T", "MaxOutstandingR2T",
    "MaxConnections", "ErrorRecoveryLevel", "DataPDUInOrder", "DataSequenceInOrder",
    "DefaultTime2Wait", "DefaultTime2Retain",
)


class RegistryPolicy(TargetPolicy[Target]):
    """Login/discovery policy over a :class:`Registry` for one portal group; also told
    of sessions starting and connections closing (by ``pytgt.net.portal``)."""

    def __init__(self, registry: Registry, portals: list[tuple[str, int]],
                 portal_group_tag: int = 1, security: SecurityMonitor | None = None) -> None:
        self.registry = registry
        self.portals = portals
        self.portal_group_tag = portal_group_tag
        self.security = security or SecurityMonitor()
        # iSNS access control (pytgtd --iscsi isns_ac=On): (target, initiator) -> allowed
        self.isns_allows: Callable[[str, str], bool] | None = None

    # -- login ---------------------------------------------------------------------
    def find_target(self, name: str) -> Target | None:
        return self.registry.by_name(name)

    def target_allows(self, target: Target, initiator_name: str, address: str) -> bool:
        if self._allows(target, initiator_name, address):
            return True
        stats.count_acl_denied(target)
        return False

    def _allows(self, target: Target, initiator_name: str, address: str) -> bool:
        return target.allows(initiator_name, address) and (
            self.isns_allows is None or self.isns_allows(target.name, initiator_name))

    def login_permitted(self, address: str, initiator_name: str) -> bool:
        return self.security.login_permitted(address, initiator_name)

    def login_failed(self, target: Target | None, failure: LoginFailure) -> None:
        """Logged once and counted (per target and daemon-wide)."""
        if int(failure.status) >> 8 == 1:  # redirected (class 1): not a failure
            log.debug("login of %s from %s redirected (%s)", failure.initiator_name,
                      failure.address, failure.reason)
            return
        stats.count_login_failure(target, int(failure.status))
        self.security.login_failed(failure)

    def target_redirect(self, target: Target) -> tuple[str, bool] | None:
        return redirect.target_address(target)

    def target_ready(self, target: Target | None) -> bool:
        if self.registry.state != "ready":
            return False
        return target is None or target.state == "ready"

    def target_settings(self, target: Target | None) -> dict[str, str]:
        return dict(target.iscsi_params) if target is not None else {}

    def target_alias(self, target: Target | None) -> str:
        return target.alias if target is not None else ""

    def _accounts_of(self, target: Target | None) -> tuple[list[str], str | None]:
        """Incoming accounts and the outgoing account of a target, or of the discovery
        side when ``target`` is None (accounts bound without --tid, as tgt does)."""
        if target is None:
            return self.registry.incoming_accounts, self.registry.outgoing_account
        return target.incoming_accounts, target.outgoing_account

    def auth_required(self, target: Target | None) -> bool:
        return bool(self._accounts_of(target)[0])

    def chap_secret(self, target: Target | None, user: str) -> str | None:
        """The CHAP secret of ``user`` if it is bound (incoming) to ``target``."""
        if user not in self._accounts_of(target)[0]:
            return None
        acct = self.registry.accounts.get(user)
        return acct.password if acct else None

    def chap_mutual_account(self, target: Target | None) -> tuple[str, str] | None:
        """The outgoing (mutual CHAP) account bound to ``target``: (user, secret)."""
        user = self._accounts_of(target)[1]
        acct = self.registry.accounts.get(user) if user else None
        return (acct.user, acct.password) if acct else None

    # -- discovery -----------------------------------------------------------------
    def send_targets(self, initiator_name: str, address: str, value: str,
                     session_type: str, local_address: str = "") -> list[tuple[str, str]]:
        """TargetName/TargetAddress pairs the initiator may see (RFC 7143 Appendix C)."""
        out: list[tuple[str, str]] = []
        for target in sorted(self.registry.targets.values(), key=lambda t: t.tid):
            if value not in ("All", "") and value.lower() != target.name.lower():
                continue
            if value == "" and session_type != "Normal":
                continue
            if not self._allows(target, initiator_name, address):
                continue
            out.append(("TargetName", target.name))
            for addr in self._addresses(local_address):
                out.append(("TargetAddress", f"{addr},{self.portal_group_tag}"))
        return out

    def _addresses(self, local_address: str) -> list[str]:
        out: list[str] = []
        for host, port in self.portals:
            if host in ("0.0.0.0", "::", ""):
                if local_address:
                    out.append(local_address)
                continue
            out.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        return list(dict.fromkeys(out))

    # -- sessions --------------------------------------------------------------------
    def session_started(self, session: Session, conn: TargetConnection) -> None:
        """Add a logged-in connection to its session's ``--op show`` entry."""
        target: Target = session.target
        info = target.nexuses.get(session.tsih)
        if info is None:
            info = NexusInfo(session.tsih, session.initiator_name, session.initiator_alias)
            target.nexuses[session.tsih] = info
        if not info.connections:
            stats.count_login_ok(target)
        info.connections[conn.cid] = ConnectionInfo(conn.cid, conn.address)
        p: SessionParams | None = session.params
        if p is not None:
            info.params = _describe(p)

    def connection_closed(self, session: Session, conn: TargetConnection) -> None:
        """Drop a closed connection from its session's ``--op show`` entry (unless a
        connection reinstated under the same CID, 6.3.4, holds that CID now)."""
        target: Target = session.target
        info = target.nexuses.get(session.tsih)
        if info is not None and session.connections.get(conn.cid) in (None, conn):
            info.connections.pop(conn.cid, None)

    def session_ended(self, session: Session) -> None:
        """The session leaves ``--op show``."""
        target: Target = session.target
        target.nexuses.pop(session.tsih, None)


def _describe(p: SessionParams) -> dict[str, str]:
    def fmt(v: int | str) -> str:
        return ("Yes" if v else "No") if isinstance(v, bool) else str(v)

    names: dict[str, int | str] = {
        "HeaderDigest": "CRC32C" if p.header_digest else "None",
        "DataDigest": "CRC32C" if p.data_digest else "None",
        "MaxRecvDataSegmentLength": p.max_recv_data_segment_length,
        "MaxXmitDataSegmentLength": p.max_xmit_data_segment_length,
        "MaxBurstLength": p.max_burst_length, "FirstBurstLength": p.first_burst_length,
        "ImmediateData": bool(p.immediate_data), "InitialR2T": bool(p.initial_r2t),
        "MaxOutstandingR2T": p.max_outstanding_r2t, "MaxConnections": p.max_connections,
        "ErrorRecoveryLevel": p.error_recovery_level,
        "DataPDUInOrder": bool(p.data_pdu_in_order),
        "DataSequenceInOrder": bool(p.data_sequence_in_order),
        "DefaultTime2Wait": p.default_time2wait, "DefaultTime2Retain": p.default_time2retain,
    }
    return {k: fmt(names[k]) for k in _SHOWN_PARAMS}
