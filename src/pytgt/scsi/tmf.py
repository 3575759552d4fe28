"""Task management functions (SAM-5 7): abort, wait until gone, effects, answer.

One sequence serves every function. The tasks in scope are taken from the LUs' task
sets (``taskset.py``) and aborted, each answered TASK ABORTED through its ``done``:
the transport sends that status only for another nexus's task, as the Control mode
page's TAS=1 promises (SPC-4 7.5.8); the nexus that asked gets no status for its own
(its initiator learns from the TMF response). Each other nexus's
transport is told to abort the commands it still holds for that scope (Data-Out
still arriving: :meth:`NexusPort.abort_pending`). The function is answered only once
every aborted command is gone: its coroutine cancelled and ended, and the store I/O
it left in threads finished (``stores.base.quiesce``), so an aborted WRITE cannot
land after the initiator has moved on. That wait is bounded: past ``wait_timeout``
the answer is FUNCTION REJECTED. A TARGET COLD RESET is a power on: after the
answer every nexus of the target is dropped (RFC 7143 11.5.1).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from pytgt.scsi.lu import LogicalUnit
from pytgt.scsi.sense import Asc
from pytgt.scsi.target import ScsiTarget
from pytgt.scsi.task import ItNexus, ScsiTask, Status
from pytgt.stores.base import BackingStore, quiesce

log = logging.getLogger("pytgt.scsi")


class Function(enum.Enum):
    """The task management functions (SAM-5 7.1); the two target resets are SAM-5's
    hard reset and power on, as iSCSI's TARGET WARM/COLD RESET ask for them."""

    ABORT_TASK = "ABORT TASK"
    ABORT_TASK_SET = "ABORT TASK SET"
    CLEAR_TASK_SET = "CLEAR TASK SET"
    LOGICAL_UNIT_RESET = "LOGICAL UNIT RESET"
    TARGET_WARM_RESET = "TARGET WARM RESET"
    TARGET_COLD_RESET = "TARGET COLD RESET"


class ServiceResponse(enum.Enum):
    """How a task management function ended (SAM-5 7.1)."""

    FUNCTION_COMPLETE = "FUNCTION COMPLETE"
    FUNCTION_REJECTED = "FUNCTION REJECTED"
    INCORRECT_LOGICAL_UNIT_NUMBER = "INCORRECT LOGICAL UNIT NUMBER"


_LU_SCOPED = frozenset({Function.ABORT_TASK, Function.ABORT_TASK_SET,
                        Function.CLEAR_TASK_SET, Function.LOGICAL_UNIT_RESET})
_RESETS = frozenset({Function.TARGET_WARM_RESET, Function.TARGET_COLD_RESET})
_EXTENDED_COPY = 0x83


async def execute(target: ScsiTarget, function: Function, nexus: ItNexus, lun: int,
                  respond: Callable[[ServiceResponse], None], *, tag: int | None = None,
                  wait_timeout: float = 10.0) -> None:
    """Carry out ``function`` for ``nexus`` and call ``respond`` once with its outcome.

    ``lun`` is a LUN number or raw LUN field (ignored by the target resets); ``tag``
    names the task for ABORT TASK. Each answer is counted in ``target.stat_tmf``.
    """
    respond = _counted(target, function, respond)
    lu = target.lu(lun) if function in _LU_SCOPED else None
    if function in _LU_SCOPED and lu is None:
        respond(ServiceResponse.INCORRECT_LOGICAL_UNIT_NUMBER)
        return
    victims = _in_scope(target, function, nexus, lu, tag)
    for task in victims:
        _abort(task)
    if function not in (Function.ABORT_TASK, Function.ABORT_TASK_SET):
        _abort_held_elsewhere(target, nexus, None if lu is None else lu.lun)
    _effects(target, function, lu)
    if function is Function.LOGICAL_UNIT_RESET or function in _RESETS:
        for each in [lu] if lu is not None else list(target.luns.values()):
            if each.shared is not None:  # the LU is served by other gateways too
                await each.shared.reset()
            await each.reset_device()  # a passthrough LU's device (SG_SCSI_RESET)
    response = ServiceResponse.FUNCTION_COMPLETE
    if victims and not await _gone(target, victims, wait_timeout):
        log.warning("%s: aborted commands still running after %.0f s, answering "
                    "FUNCTION REJECTED", function.value, wait_timeout)
        response = ServiceResponse.FUNCTION_REJECTED
    respond(response)
    if function is Function.TARGET_COLD_RESET and response is ServiceResponse.FUNCTION_COMPLETE:
        for other in list(target.nexuses.values()):
            if other.port is not None:
                other.port.drop("target cold reset")


def _counted(target: ScsiTarget, function: Function,
             respond: Callable[[ServiceResponse], None]) -> Callable[[ServiceResponse], None]:
    def answer(response: ServiceResponse) -> None:
        key = (function.name.lower(), response.name.lower())
        target.stat_tmf[key] = target.stat_tmf.get(key, 0) + 1
        respond(response)
    return answer


def _in_scope(target: ScsiTarget, function: Function, nexus: ItNexus,
              lu: LogicalUnit | None, tag: int | None) -> list[ScsiTask]:
    if function is Function.ABORT_TASK:
        assert lu is not None
        return lu.task_set.of(nexus.key, tag)
    if function is Function.ABORT_TASK_SET:
        assert lu is not None
        return lu.task_set.of(nexus.key)
    lus = [lu] if lu is not None else list(target.luns.values())
    return [task for each in lus for task in each.task_set.of()]


def _abort(task: ScsiTask) -> None:
    """Mark ``task`` aborted, answer it TASK ABORTED, stop its coroutine where it waits."""
    task.aborted = True
    done, task.done = task.done, None  # no answer from the command itself any more
    if done is not None:
        done(task, Status.TASK_ABORTED, b"", b"")
    if task.runner is not None:
        task.runner.cancel()


def _abort_held_elsewhere(target: ScsiTarget, nexus: ItNexus, lun: int | None) -> None:
    """Other nexuses' commands the transport still gathers Data-Out for."""
    for other in list(target.nexuses.values()):
        if other.key != nexus.key and other.port is not None:
            other.port.abort_pending(lun)


def _effects(target: ScsiTarget, function: Function, lu: LogicalUnit | None) -> None:
    if function is Function.LOGICAL_UNIT_RESET:
        assert lu is not None
        logical_unit_reset(target, lu)
    elif function in _RESETS:
        target_reset(target, cold=function is Function.TARGET_COLD_RESET)


def logical_unit_reset(target: ScsiTarget, lu: LogicalUnit) -> None:
    """LOGICAL UNIT RESET effects (SAM-5 6.3.3): LU state back to defaults, BUS DEVICE
    RESET FUNCTION OCCURRED for every nexus."""
    lu.reset()
    lu.ua_add_all(list(target.nexuses), Asc.BUS_DEVICE_RESET_FUNCTION_OCCURRED)


def target_reset(target: ScsiTarget, cold: bool) -> None:
    """TARGET WARM/COLD RESET effects: every LU reset; POWER ON, RESET, OR BUS DEVICE
    RESET OCCURRED after a warm reset (a hard reset, SAM-5 6.3.2), POWER ON OCCURRED
    after a cold one (a power on, RFC 7143 11.5.1)."""
    asc = Asc.POWER_ON_OCCURRED if cold else Asc.POWER_ON_RESET_OR_BUS_DEVICE_RESET_OCCURRED
    for lu in target.luns.values():
        lu.reset()
        lu.ua_add_all(list(target.nexuses), asc)


async def _gone(target: ScsiTarget, victims: list[ScsiTask], timeout: float) -> bool:
    """Wait until the aborted commands ended and their store I/O finished (no
    ``asyncio.timeout``: this may run without a Task, see ``pytgt.eager``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    stores = _stores_touched(target, victims)
    runners = [t.runner for t in victims if t.runner is not None]

    def ended() -> list[Coroutine[Any, Any, None]]:
        return [runner.wait() for runner in runners]

    def quiesced() -> list[Coroutine[Any, Any, None]]:
        return [quiesce(store) for store in stores]

    for phase in (ended, quiesced):
        futures = {asyncio.ensure_future(w) for w in phase()}
        if not futures:
            continue
        _, late = await asyncio.wait(futures, timeout=max(0.0, deadline - loop.time()))
        for fut in late:
            fut.cancel()
        if late:
            return False
    return True


def _stores_touched(target: ScsiTarget, tasks: Iterable[ScsiTask]) -> list[BackingStore]:
    """The stores an aborted command may still be writing to (reads need no waiting)."""
    stores: dict[int, BackingStore] = {}
    for task in tasks:
        if not (task.data_out or task.transfer_out):
            continue
        if task.cdb[:1] == bytes((_EXTENDED_COPY,)):  # may write to any LU of the target
            lus: Iterable[LogicalUnit] = target.luns.values()
        else:
            one = target.lu(task.lun)
            lus = [one] if one is not None else []
        for lu in lus:
            if lu.store is not None:
                stores[id(lu.store)] = lu.store
    return list(stores.values())
