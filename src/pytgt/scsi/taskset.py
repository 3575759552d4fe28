"""Task attributes within one logical unit's task set (SAM-5 8.6).

SIMPLE tasks run concurrently (the control mode page reports QUEUE ALGORITHM
MODIFIER 1, unrestricted reordering). An ORDERED task starts once every earlier task
has completed, and tasks received after it wait until it has completed. HEAD OF QUEUE
tasks start at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pytgt.scsi.task import ScsiResult, ScsiTask, TaskAttribute


class TaskSet:
    """Counts running tasks and holds the barrier an ORDERED task raises."""

    def __init__(self) -> None:
        self.active = 0
        self.barrier: asyncio.Future[None] | None = None
        self.drained: asyncio.Future[None] | None = None  # an ORDERED task waits on it

    def wake(self) -> None:
        """Called after a task completed while an ORDERED task may be waiting."""
        if not self.active and self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    async def run(self, task: ScsiTask,
                  execute: Callable[[ScsiTask], Awaitable[ScsiResult]]) -> ScsiResult:
        """Run ``task`` honouring ORDERED barriers (the slow path); ``execute`` counts it."""
        if task.attribute != TaskAttribute.HEAD_OF_QUEUE:
            while self.barrier is not None:
                await asyncio.shield(self.barrier)
        if task.attribute != TaskAttribute.ORDERED:
            return await execute(task)
        loop = asyncio.get_running_loop()
        self.barrier = barrier = loop.create_future()
        try:
            while self.active:
                self.drained = loop.create_future()
                await self.drained
            self.drained = None
            return await execute(task)
        finally:
            self.drained = None
            self.barrier = None
            barrier.set_result(None)
