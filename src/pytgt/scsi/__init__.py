"""The SCSI layer (SAM-5, SPC-4, SBC-3): targets, logical units, commands, sense data."""

from pytgt.scsi.lu import LogicalUnit, create_lu
from pytgt.scsi.sense import Asc, CheckCondition, SenseKey
from pytgt.scsi.target import ScsiTarget
from pytgt.scsi.task import ItNexus, ScsiResult, ScsiTask, Status, TaskAttribute

__all__ = [
    "Asc",
    "CheckCondition",
    "ItNexus",
    "LogicalUnit",
    "ScsiResult",
    "ScsiTarget",
    "ScsiTask",
    "SenseKey",
    "Status",
    "TaskAttribute",
    "create_lu",
]
