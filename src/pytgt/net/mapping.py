"""iSCSI mapped onto SAM-5: I_T nexus, SCSI task, task management codes.

RFC 7143 4.4 (the SCSI architecture model): an I_T nexus is an initiator port
(iSCSI initiator name + ",i," + ISID) talking to a target port (target name +
",t," + TPGT); a SCSI Command PDU carries one task with its attribute (11.3.1),
expected transfer lengths and Data-Out. These functions are the only place that
translates between the two layers' objects.
"""

from __future__ import annotations

from pytgt.iscsi.command import Task
from pytgt.iscsi.constants import TmfFunction, TmfResponse
from pytgt.iscsi.session import Session
from pytgt.scsi import tmf
from pytgt.scsi.lun import decode_lun
from pytgt.scsi.task import ItNexus, ScsiTask, Status, TaskAttribute

_ATTRIBUTES = tuple(TaskAttribute(min(n, TaskAttribute.ACA)) for n in range(8))
# ATTR values 5-7 are reserved (11.3.1): treated as ACA, which the LU refuses.

FUNCTIONS: dict[int, tmf.Function] = {
    TmfFunction.ABORT_TASK: tmf.Function.ABORT_TASK,
    TmfFunction.ABORT_TASK_SET: tmf.Function.ABORT_TASK_SET,
    TmfFunction.CLEAR_TASK_SET: tmf.Function.CLEAR_TASK_SET,
    TmfFunction.LOGICAL_UNIT_RESET: tmf.Function.LOGICAL_UNIT_RESET,
    TmfFunction.TARGET_WARM_RESET: tmf.Function.TARGET_WARM_RESET,
    TmfFunction.TARGET_COLD_RESET: tmf.Function.TARGET_COLD_RESET,
}
RESPONSES: dict[tmf.ServiceResponse, TmfResponse] = {
    tmf.ServiceResponse.FUNCTION_COMPLETE: TmfResponse.FUNCTION_COMPLETE,
    tmf.ServiceResponse.FUNCTION_REJECTED: TmfResponse.FUNCTION_REJECTED,
    tmf.ServiceResponse.INCORRECT_LOGICAL_UNIT_NUMBER: TmfResponse.LUN_DOES_NOT_EXIST,
}


def it_nexus(session: Session, portal_group_tag: int, port: SessionPort | None = None
             ) -> ItNexus:
    """The I_T nexus of a Normal session (RFC 7143 4.4); the key adds the TSIH, so a
    reinstated session is a new nexus of the same initiator port, and the portal group
    tag, so it names the nexus among every gateway that serves a shared LU."""
    initiator_port = f"{session.initiator_name},i,{session.isid:#014x}"
    return ItNexus(
        key=f"{initiator_port},tsih={session.tsih},tpgt={portal_group_tag}",
        initiator_name=session.initiator_name,
        initiator_port=initiator_port,
        relative_port=portal_group_tag,
        port_group=portal_group_tag,
        target_port=f"{session.target_name},t,{portal_group_tag:#06x}",
        port=port)


def scsi_task(task: Task, nexus: ItNexus) -> ScsiTask:
    """The SCSI task for an iSCSI task whose Data-Out has all arrived."""
    return ScsiTask(nexus, task.lun, task.cdb, task.itt, _ATTRIBUTES[task.attr & 7],
                    task.data_out_buffer() if task.write else b"",
                    task.expected_length if task.read else 0, task.edtl, task)


class SessionPort:
    """What task management asks of a session's transport (``scsi.task.NexusPort``)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def abort_pending(self, lun: int | None) -> None:
        for conn in list(self.session.connections.values()):
            victims = [t for t in conn.tasks.values()  # not yet handed to the SCSI layer
                       if not t.submitted and (lun is None or decode_lun(t.lun) == lun)]
            for task in victims:
                conn.terminate(task, Status.TASK_ABORTED)
            if victims and conn.wakeup is not None:
                conn.wakeup()  # transmit the responses

    def drop(self, reason: str) -> None:
        for conn in list(self.session.connections.values()):
            conn.close(reason)
