"""A SCSI target device: the LUN map, LUN 0, REPORT LUNS, unit attentions, commands.

The transport calls ``add_nexus`` at login (POWER ON unit attention for that nexus on
every LU), ``submit`` per command (``execute`` to await one), ``scsi.tmf.execute``
for task management, and ``remove_nexus`` at session end. LUNs arrive as the
transport decoded them: either a LUN number or the raw 64-bit LUN field (SAM-5 4.6:
peripheral or flat space addressing), both accepted.
"""

from __future__ import annotations

import logging
import struct

from pytgt import eager
from pytgt.scsi import lu_stats, spc
from pytgt.scsi.alua import TargetPortGroups
from pytgt.scsi.cdb import Command, OperationCode
from pytgt.scsi.lu import LogicalUnit, create_lu
from pytgt.scsi.lun import decode_lun, encode_lun
from pytgt.scsi.pr import registrant_id
from pytgt.scsi.sense import (
    Asc,
    CheckCondition,
    SenseKey,
    build_sense,
    invalid_field,
    sense_bytes,
)
from pytgt.scsi.task import Completion, Data, ItNexus, ScsiResult, ScsiTask, Status, TaskAttribute

log = logging.getLogger("pytgt.scsi")
_SIMPLE = TaskAttribute.SIMPLE
_INTERNAL_TARGET_FAILURE = build_sense(SenseKey.HARDWARE_ERROR, *Asc.INTERNAL_TARGET_FAILURE)

_LUN_NOT_SUPPORTED = CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.LOGICAL_UNIT_NOT_SUPPORTED)


_LOST_KEPT = 4096  # ended nexuses remembered for I_T NEXUS LOSS OCCURRED


class ScsiTarget:
    """The logical units of one target, addressed by LUN (SAM-5 4.6).

    LUN 0 is a "controller" LU (peripheral type 0Ch, like tgt) until replaced.
    ``timing`` N > 0: the latency of one command in N is measured (``lu_stats.Latency``;
    a clock read costs more than the rest of the bookkeeping, so pytgtd samples).
    """

    def __init__(self, name: str, tid: int = 0, *, home_group: int = 1,
                 timing: int = 0) -> None:
        self.name = name
        self.tid = tid
        self.timing = timing
        self._until_timed = 1  # commands until the next timed one
        # task management functions answered: (function, service response) -> count
        self.stat_tmf: dict[tuple[str, str], int] = {}
        self.luns: dict[int, LogicalUnit] = {0: create_lu("controller", 0, None, tid=tid)}
        self.nexuses: dict[str, ItNexus] = {}
        self._lost: dict[str, None] = {}  # ports of ended nexuses, oldest first (bounded)
        self._by_field: dict[int, LogicalUnit] = {}  # LUN number and raw LUN field -> LU
        self.alua = TargetPortGroups(self.luns, home_group)  # ALUA states of every LU
        self.luns[0].alua = self.alua
        self._reindex()

    def _reindex(self) -> None:
        self._by_field = {}
        for n, lu in self.luns.items():
            self._by_field[n] = lu
            self._by_field[int.from_bytes(encode_lun(n), "big")] = lu

    # LU and nexus lifecycle.
    def add_lu(self, lu: LogicalUnit) -> None:
        """Add a logical unit; raises ValueError if the LUN is taken.

        Every nexus gets REPORTED LUNS DATA HAS CHANGED on the other LUs and POWER ON
        on the new one.
        """
        if lu.lun in self.luns:
            raise ValueError(f"LUN {lu.lun} already exists in target {self.tid}")
        keys = list(self.nexuses)
        for other in self.luns.values():
            other.ua_add_all(keys, Asc.REPORTED_LUNS_DATA_HAS_CHANGED)
        lu.nexuses = dict(self.nexuses)
        lu.alua = self.alua
        lu.peers = self.luns
        lu.ua_add_all(keys, Asc.POWER_ON_RESET_OR_BUS_DEVICE_RESET_OCCURRED)
        self.luns[lu.lun] = lu
        self._reindex()

    def remove_lu(self, lun: int) -> LogicalUnit:
        """Remove and return a LU (KeyError if absent).

        Every nexus gets REPORTED LUNS DATA HAS CHANGED on the remaining LUs.
        """
        lu = self.luns.pop(lun)
        lu.peers = {lun: lu}
        if lun == 0:
            self.luns[0] = create_lu("controller", 0, None, tid=self.tid)
            self.luns[0].nexuses = dict(self.nexuses)
            self.luns[0].alua = self.alua
        for other in self.luns.values():
            other.ua_add_all(list(self.nexuses), Asc.REPORTED_LUNS_DATA_HAS_CHANGED)
        self._reindex()
        return lu

    def add_nexus(self, nexus: ItNexus) -> None:
        """A new I_T nexus (login): a unit attention on every LU, I_T NEXUS LOSS OCCURRED
        when this initiator port (name + ISID) had a nexus here that ended, else POWER ON,
        RESET, OR BUS DEVICE RESET OCCURRED (SAM-5 6.3.4)."""
        self.nexuses[nexus.key] = nexus
        self.alua.learn(nexus)  # its portal group is a target port group
        port = registrant_id(nexus)  # initiator port + target port: not the session's TSIH
        returning = port in self._lost
        self._lost.pop(port, None)
        asc = (Asc.I_T_NEXUS_LOSS_OCCURRED if returning
               else Asc.POWER_ON_RESET_OR_BUS_DEVICE_RESET_OCCURRED)
        for lu in self.luns.values():
            lu.nexuses[nexus.key] = nexus
            lu.ua_add(nexus.key, asc)

    def remove_nexus(self, nexus: ItNexus) -> None:
        """The nexus is gone: drop its UAs, PREVENT and reservations."""
        if self.nexuses.pop(nexus.key, None) is not None:
            self._lost[registrant_id(nexus)] = None
            if len(self._lost) > _LOST_KEPT:
                del self._lost[next(iter(self._lost))]
        for lu in self.luns.values():
            lu.nexuses.pop(nexus.key, None)
            lu.nexus_lost(nexus)

    def lu(self, lun: int) -> LogicalUnit | None:
        return self.luns.get(decode_lun(lun))

    # Commands.
    def submit(self, task: ScsiTask, done: Completion) -> Data | None:
        """Run one command. Returns the Data-In (maybe empty) of a GOOD answer given at
        once; else None, and ``done(task, status, data, sense)`` is called once with the
        answer, maybe before this returns; never for a task that task management
        aborted for the nexus that sent it (``scsi/tmf.py``).

        A SIMPLE task that its LU's task set would enable at once, for a command whose
        row has a ``nowait`` handler, passes the LU's ``preflight`` and is answered right
        here when the store serves it without waiting (``fastpath.py``); anything else
        runs as a coroutine stepped by callbacks (``pytgt.eager``), in its LU's task set.
        """
        lu = self._by_field.get(task.lun)
        started = 0
        if self.timing:
            self._until_timed -= 1
            if not self._until_timed:
                self._until_timed = self.timing
                started = task.started = lu_stats.now_ns()
        if lu is not None and task.attribute <= _SIMPLE and len(task.cdb) >= 16:
            row = lu.commands.get(task.cdb[0])
            if row is not None and row.nowait is not None and lu.task_set.simple_enabled():
                try:
                    refused = lu.preflight(task, row)
                except CheckCondition as exc:
                    refused = lu.check_condition(exc)
                if refused is not None:
                    lu_stats.record(lu, task, refused)
                    done(task, refused.status, b"", refused.sense)
                    return None
                # sets transfer_out where it answers; a LU with QoS limits waits in run()
                data = row.nowait(lu, task) if lu.qos is None else None
                if data is not None:
                    if started:
                        lu_stats.observe(lu, task)
                    return data
                if row.data_out is not None:  # the Data-Out length asked for (residuals)
                    task.transfer_out = row.data_out(task.cdb, lu.block_size)
                task.done = done
                task.runner = eager.start(self._run_admitted(lu, task, row),
                                          lambda r: _answer(task, r),
                                          lambda exc: _failed(task, exc))
                return None
        task.done = done
        task.runner = eager.start(self.execute(task), lambda r: _answer(task, r),
                                  lambda exc: _failed(task, exc))
        return None

    async def _run_admitted(self, lu: LogicalUnit, task: ScsiTask, row: Command) -> ScsiResult:
        ts = lu.task_set
        ts.enter(task)  # enabled: simple_enabled() held and nothing ran since
        try:
            result = await lu.run(task, row)
        finally:
            ts.leave(task)
        if task.aborted:
            return ScsiResult(Status.TASK_ABORTED)
        lu_stats.record(lu, task, result)
        return result

    async def execute(self, task: ScsiTask) -> ScsiResult:
        """Run one command: LUN lookup, unit attentions, preflight, then the device's handler."""
        lu = self._by_field.get(task.lun)
        if lu is None:
            lu = self.lu(task.lun)  # another spelling of the address, or no such LUN
        cdb = task.cdb
        if len(cdb) < 16:  # as iSCSI carries it: handlers may read any of the 16 bytes
            task.cdb = cdb = bytes(cdb).ljust(16, b"\0")
        if cdb[0] == OperationCode.REPORT_LUNS:
            return self._report_luns(task, lu)
        if lu is None:
            return self._no_lu(task)
        task.transfer_out = self.expected_data_out(task.lun, cdb)  # residuals (transport)
        result = await lu.execute(task)
        lu_stats.record(lu, task, result)
        return result

    def running(self) -> list[ScsiTask]:
        """Commands in the LUs' task sets now (a graceful stop waits for them)."""
        return [t for lu in self.luns.values() for t in lu.task_set.tasks]

    def _no_lu(self, task: ScsiTask) -> ScsiResult:
        cdb = task.cdb
        try:
            if cdb[0] == OperationCode.INQUIRY:
                _, _, alloc = spc.check_inquiry_cdb(cdb)
                return spc.data_in(spc.not_supported_inquiry(), alloc)
            if cdb[0] == OperationCode.REQUEST_SENSE:
                return spc.request_sense_no_lu(cdb)
            raise _LUN_NOT_SUPPORTED
        except CheckCondition as exc:
            return ScsiResult(Status.CHECK_CONDITION, b"", sense_bytes(exc))

    def _report_luns(self, task: ScsiTask, lu: LogicalUnit | None) -> ScsiResult:
        """REPORT LUNS (SPC-4 6.33), valid on any LUN."""
        cdb = task.cdb
        try:
            select = cdb[2]
            if select not in (0x00, 0x01, 0x02):
                raise invalid_field(2)
            alloc = struct.unpack_from(">I", cdb, 6)[0]
            if alloc < 16:
                raise invalid_field(6)
        except CheckCondition as exc:
            d_sense = lu.mode.d_sense if lu is not None else False
            return ScsiResult(Status.CHECK_CONDITION, b"", sense_bytes(exc, d_sense))
        luns = [] if select == 0x01 else sorted(self.luns)
        body = b"".join(encode_lun(n) for n in luns)
        for each in self.luns.values():
            each.ua_clear(task.nexus.key, Asc.REPORTED_LUNS_DATA_HAS_CHANGED)
        return spc.data_in(struct.pack(">I4x", len(body)) + body, alloc)

    def expected_data_out(self, lun: int, cdb: bytes) -> int | None:
        """Bytes of Data-Out the CDB asks for (None if unknown / not a data-out command)."""
        lu = self._by_field.get(lun) or self.lu(lun)
        if lu is None or not cdb:
            return None
        try:
            row = lu.lookup(cdb)
        except CheckCondition:
            return None
        if row.data_out is None:
            return 0
        try:
            return row.data_out(cdb, lu.block_size)
        except (IndexError, struct.error):  # CDB too short for its opcode
            return None


def _answer(task: ScsiTask, result: ScsiResult) -> None:
    done = task.done
    if done is not None:
        done(task, result.status, result.data, result.sense)


def _failed(task: ScsiTask, exc: BaseException) -> None:
    """The SCSI layer answers every error itself: an exception here is a bug."""
    log.error("SCSI command %s failed", bytes(task.cdb[:1]).hex(), exc_info=exc)
    done = task.done
    if done is not None:
        done(task, Status.CHECK_CONDITION, b"", _INTERNAL_TARGET_FAILURE)
