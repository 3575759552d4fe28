"""Reservation state shared by several targets that serve one logical unit (gateways).

When a LU's medium is shared (an RBD image served by several pytgtd gateways), SPC-2
RESERVE/RELEASE and the persistent reservations of SPC-4 5.9 belong to the LU, not to
one gateway: a PREEMPT through one gateway must fence a registrant on another. The SCSI
layer keeps computing with ``lu.pr`` and ``lu.reservation`` as always; a
:class:`SharedState` installed as ``lu.shared`` (by the store's plugin, which does the
I/O) makes each change a cluster-wide read-modify-write and hands the unit attentions
it produces to the other gateways. Without one (``lu.shared is None``) nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

T = TypeVar("T")


class SharedState(Protocol):
    """The shared home of one LU's reservations.

    ``update(change)`` loads the current state into ``lu.pr``/``lu.reservation``, runs
    ``change()`` (synchronous, the usual SPC code), and, if it changed anything, stores
    the result atomically (a concurrent change elsewhere makes it load and run again),
    then tells every other gateway before returning ``change()``'s result. Unit
    attentions raised meanwhile (``PersistentReservations.outbox``) are delivered to the
    nexuses of every gateway. ``refresh()`` loads the current state (PERSISTENT RESERVE
    IN answers from it). ``forget(change)`` runs an update in the background, for
    events that cannot wait (nexus loss, LU reset); ``reset()`` spreads a reset.
    """

    async def update(self, change: Callable[[], T]) -> T: ...

    async def refresh(self) -> None: ...

    def forget(self, change: Callable[[], object]) -> None: ...

    async def reset(self) -> None:
        """The LU was reset through this gateway (SAM-5 6.3.3): every other gateway
        applies the reset to its nexuses (BUS DEVICE RESET FUNCTION OCCURRED) before the
        task management function is answered."""
        ...
