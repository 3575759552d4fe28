"""``pytgtadm --op stat``: I/O counters per LU and login counters per target.

tgtadm's table comes first, in its layout (``--mode system``, ``--mode target --tid N``,
``--mode logicalunit --tid N --lun L``)::

    tgt lun sid rd_subm(bytes,cmds) rd_done(bytes,cmds) wr_subm(bytes,cmds) wr_done(bytes,cmds) errs
      1   1   -      1048576    256      1048576    256        4096      1         4096      1    0

tgt prints one row per I_T nexus and LU while sessions exist; pytgt counts per LU only
(plain ints bumped on completion, see ``pytgt.scsi.lu_stats``), so the ``sid`` column
reads ``-`` and rows exist from the LU's creation, sessions or not. Commands are counted
when they complete, so the "subm" and "done" columns are equal. ``errs`` counts
commands that ended with a status other than GOOD.

pytgt adds a second table for ``--mode system`` and ``--mode target`` (as tgt adds a
connection table to its session statistics)::

    tgt commands login_ok login_fail auth_fail acl_denied
      1      514        2          1         1          0

``commands`` is every command the target's LUs completed; ``login_fail`` every failed
login to the target after it was named, ``auth_fail`` the CHAP failures among them,
``acl_denied`` logins refused by the target's ACL.

``--mode system`` ends with pytgt's daemon-wide security table (see
:mod:`pytgt.daemon.security`), which also counts what no target table can: CHAP
failures of discovery sessions, logins refused by the back-off, control requests
refused by ``SO_PEERCRED``::

    auth_fail acl_denied backoff_refused backoff_sources control_refused
            6          1               3               1               0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytgt.daemon.security import failure_reason
from pytgt.iscsi.constants import LoginStatus
from pytgt.scsi.lu_stats import commands

if TYPE_CHECKING:
    from pytgt.config.model import Target
    from pytgt.daemon.mgmt import Management
    from pytgt.scsi.lu import LogicalUnit

HEADER = ("tgt lun sid rd_subm(bytes,cmds) rd_done(bytes,cmds) wr_subm(bytes,cmds) "
          "wr_done(bytes,cmds) errs")
LOGIN_HEADER = "tgt commands login_ok login_fail auth_fail acl_denied"


@dataclass
class LoginStats:
    """Login outcomes of one target (kept in ``Target.extra["stats"]``)."""

    login_ok: int = 0
    login_fail: int = 0
    auth_fail: int = 0
    acl_denied: int = 0
    # failed logins by reason (failure_reason), ACL denials included: metrics
    failures: dict[str, int] = field(default_factory=dict)


def login_stats(target: Target) -> LoginStats:
    extra = target.extra
    stats = extra.get("stats")
    if not isinstance(stats, LoginStats):
        stats = extra["stats"] = LoginStats()
    return stats


# -- counting (RegistryPolicy hooks) ------------------------------------------------------
def count_login_failure(target: Target | None, status: int) -> None:
    if target is None:
        return
    stats = login_stats(target)
    stats.login_fail += 1
    reason = failure_reason(status)
    stats.failures[reason] = stats.failures.get(reason, 0) + 1
    if status == LoginStatus.AUTHENTICATION_FAILURE:
        stats.auth_fail += 1


def count_acl_denied(target: Target) -> None:
    stats = login_stats(target)
    stats.acl_denied += 1
    reason = failure_reason(LoginStatus.AUTHORIZATION_FAILURE)
    stats.failures[reason] = stats.failures.get(reason, 0) + 1


def count_login_ok(target: Target) -> None:
    login_stats(target).login_ok += 1


# -- formatting ----------------------------------------------------------------------------
def lu_row(tid: int, lu: LogicalUnit) -> str:
    rb, rc = lu.stat_read_bytes, lu.stat_read_cmds
    wb, wc = lu.stat_write_bytes, lu.stat_write_cmds
    return (f"{tid:3d} {lu.lun:3d} {'-':>3} {rb:12d} {rc:6d} {rb:12d} {rc:6d} "
            f"{wb:12d} {wc:6d} {wb:12d} {wc:6d} {lu.stat_errors:4d}")


def _luns(target: Target) -> list[LogicalUnit]:
    return [lu for _n, lu in sorted(target.scsi.luns.items())]


def format_io(rows: list[tuple[int, LogicalUnit]]) -> str:
    return "\n".join([HEADER, *(lu_row(tid, lu) for tid, lu in rows), " "]) + "\n"


def format_logins(targets: list[Target]) -> str:
    lines = [LOGIN_HEADER]
    for t in targets:
        s = login_stats(t)
        total = sum(commands(lu) for lu in _luns(t))
        lines.append(f"{t.tid:3d} {total:8d} {s.login_ok:8d} {s.login_fail:10d} "
                     f"{s.auth_fail:9d} {s.acl_denied:10d}")
    return "\n".join(lines) + "\n"


def stat(m: Management, targets: list[Target], lun: int | None = None) -> str:
    rows = [(t.tid, lu) for t in targets for lu in _luns(t)
            if lun is None or lu.lun == lun]
    out = format_io(rows)
    if lun is None:
        out += format_logins(targets)
    return out


# -- handlers (mgmt.HANDLERS) --------------------------------------------------------------
async def system_stat(m: Management, req: dict[str, Any]) -> str:
    out = stat(m, sorted(m.registry.targets.values(), key=lambda t: t.tid))
    return out + m.security.format()


async def target_stat(m: Management, req: dict[str, Any]) -> str:
    if req.get("tid") in (None, ""):
        return await system_stat(m, req)
    return stat(m, [m.target(req)])


async def lu_stat(m: Management, req: dict[str, Any]) -> str:
    from pytgt.daemon.mgmt import _lu

    target, lu = _lu(m, req)
    return stat(m, [target], lu.lun)
