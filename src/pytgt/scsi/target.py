"""A SCSI target device: the LUN map, LUN 0 handling, REPORT LUNS, unit attentions, TMFs.

INTERFACE STUB (to be implemented): the iSCSI layer uses exactly these methods.
"""

from __future__ import annotations

from pytgt.scsi.task import ItNexus, ScsiResult, ScsiTask


class ScsiTarget:
    """The logical units of one target, addressed by LUN (SAM-5 4.6).

    Lifecycle per nexus: ``add_nexus`` at login (sets the POWER ON/RESET unit
    attention for that nexus on every LU), ``remove_nexus`` at session end.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def add_lu(self, lu: object) -> None:
        """Add a logical unit; other nexuses get REPORTED LUNS DATA HAS CHANGED."""
        raise NotImplementedError

    def remove_lu(self, lun: int) -> None:
        raise NotImplementedError

    def add_nexus(self, nexus: ItNexus) -> None:
        raise NotImplementedError

    def remove_nexus(self, nexus: ItNexus) -> None:
        raise NotImplementedError

    async def execute(self, task: ScsiTask) -> ScsiResult:
        """Run one command: LUN lookup, unit attentions, preflight, then the device's handler."""
        raise NotImplementedError

    def expected_data_out(self, lun: int, cdb: bytes) -> int | None:
        """Bytes of Data-Out the CDB asks for (None if unknown / not a data-out command)."""
        raise NotImplementedError

    # Task management (SAM-5 7). Return a TMF response code (iSCSI values: 0 complete,
    # 1 task does not exist, 2 LUN does not exist, 5 not supported, 6 authorization failed).
    def lu_reset(self, nexus: ItNexus, lun: int) -> int:
        raise NotImplementedError

    def target_reset(self, nexus: ItNexus, cold: bool) -> int:
        raise NotImplementedError

    def clear_task_set(self, nexus: ItNexus, lun: int) -> int:
        raise NotImplementedError
