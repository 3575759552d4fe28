"""The task set of one logical unit and its task attribute rules (SAM-5 8.6).

Every command that has not completed is in its LU's task set, oldest first: the
registry task management walks (``scsi/tmf.py``). A task enters enabled (it may
run) or dormant (it waits):

- HEAD OF QUEUE: enabled at once; it stands before every dormant task, so SIMPLE and
  ORDERED tasks do not start while one is in the set (SAM-5 8.6.4).
- ORDERED: enabled once every older task has completed (SAM-5 8.6.3).
- SIMPLE (and UNTAGGED, which iSCSI maps to SIMPLE): enabled once every older ORDERED
  and HEAD OF QUEUE task has completed (SAM-5 8.6.2). With the Control mode page's
  QUEUE ALGORITHM MODIFIER at 0 (restricted reordering, SPC-4 7.5.8) a SIMPLE task
  also waits for every older task: the LU runs them in order, which keeps data
  integrity however the initiator's commands overlap.
- ACA: refused by the LU (NormACA=0: no ACA condition can exist).

A dormant task waits on ``task.waiter``; completing a task enables the dormant
tasks that the rules now allow, in order.
"""

from __future__ import annotations

import asyncio

from pytgt.scsi.modepages import ModePages
from pytgt.scsi.task import ScsiTask, TaskAttribute

_SIMPLE_MAX = TaskAttribute.SIMPLE  # UNTAGGED (0) and SIMPLE (1)
_ORDERED = TaskAttribute.ORDERED
_HEAD_OF_QUEUE = TaskAttribute.HEAD_OF_QUEUE


class TaskSet:
    """The uncompleted tasks of one LU, in arrival order."""

    __slots__ = ("tasks", "blockers", "head_of_queue", "dormant", "mode")

    def __init__(self, mode: ModePages) -> None:
        self.tasks: dict[ScsiTask, None] = {}  # an ordered set: oldest first
        self.blockers = 0  # ORDERED and HEAD OF QUEUE tasks in the set
        self.head_of_queue = 0  # HEAD OF QUEUE tasks in the set
        self.dormant = 0  # tasks waiting to be enabled
        self.mode = mode  # the LU's: QUEUE ALGORITHM MODIFIER

    @property
    def restricted(self) -> bool:
        """QUEUE ALGORITHM MODIFIER 0: restricted reordering (SPC-4 7.5.8)."""
        return self.mode.qam == 0

    def simple_enabled(self) -> bool:
        """Whether a SIMPLE task arriving now would be enabled at once (the fast path
        runs only then)."""
        return not self.blockers and not (self.tasks and self.mode.qam == 0)

    def enter(self, task: ScsiTask) -> asyncio.Future[None] | None:
        """Add ``task``; None when it is enabled, else the future it waits on."""
        attr = task.attribute
        if attr <= _SIMPLE_MAX:
            enabled = self.simple_enabled()
        elif attr == _ORDERED:
            enabled = not self.tasks
            self.blockers += 1
        else:  # HEAD OF QUEUE (ACA is refused before it gets here)
            enabled = True
            self.blockers += 1
            self.head_of_queue += 1
        self.tasks[task] = None
        if enabled:
            return None
        task.waiter = waiter = asyncio.get_running_loop().create_future()
        self.dormant += 1
        return waiter

    def leave(self, task: ScsiTask) -> None:
        """``task`` completed or was aborted: enable what may start now."""
        if task not in self.tasks:
            return
        del self.tasks[task]
        attr = task.attribute
        if attr == _ORDERED:
            self.blockers -= 1
        elif attr == _HEAD_OF_QUEUE:
            self.blockers -= 1
            self.head_of_queue -= 1
        waiter = task.waiter
        if waiter is not None:  # left while dormant (aborted)
            self.dormant -= 1
            task.waiter = None
            if not waiter.done():
                waiter.cancel()
        if self.dormant:
            self._enable()

    def _enable(self) -> None:
        if self.head_of_queue:
            return  # a HEAD OF QUEUE task stands before every dormant one
        older_any = older_ordered = False
        for task in self.tasks:
            ordered = task.attribute == _ORDERED
            waiter = task.waiter
            if waiter is not None and not (
                    older_any if ordered or self.restricted else older_ordered):
                task.waiter = None  # enabled
                self.dormant -= 1
                if not waiter.done():
                    waiter.set_result(None)
            older_ordered |= ordered
            older_any = True

    def of(self, nexus_key: str | None = None, tag: int | None = None) -> list[ScsiTask]:
        """Tasks of one nexus (None: every nexus), or the one with ``tag``."""
        return [t for t in self.tasks
                if (nexus_key is None or t.nexus.key == nexus_key)
                and (tag is None or t.tag == tag)]
