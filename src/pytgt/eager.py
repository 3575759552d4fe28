"""Run a coroutine's steps as callbacks: no ``asyncio.Task`` per command.

Most SCSI commands (page-cache reads, non-data commands) finish without waiting
for anything, and wrapping each in an ``asyncio.Task`` costs more than running it.
:func:`start` steps the coroutine by hand through the coroutine protocol (PEP 492
``send``/``throw``), like Python 3.12's eager tasks: a coroutine that ends in its
first step costs one call. One that stops at an ``await`` yields the asyncio future
it waits on; a done callback on that future takes the next step, and so on, so a
command that waits for the disk still needs no Task. :class:`Stepper` is the handle:
:meth:`Stepper.cancel` aborts the coroutine where it waits (task management) and
:meth:`Stepper.wait` lets a graceful stop wait for it. Only public asyncio API is
used (``Future.add_done_callback``, ``Future.cancel``, ``loop.call_soon``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Stepper(Generic[T]):
    """A coroutine being stepped; ``on_result``/``on_error`` get its outcome once,
    unless it was cancelled (then neither is called)."""

    __slots__ = ("_coro", "_on_result", "_on_error", "_waiting_on", "_cancel", "_ended",
                 "_waiters")

    def __init__(self, coro: Coroutine[Any, Any, T], on_result: Callable[[T], None],
                 on_error: Callable[[BaseException], None]) -> None:
        self._coro = coro
        self._on_result = on_result
        self._on_error = on_error
        self._waiting_on: asyncio.Future[Any] | None = None
        self._cancel = False
        self._ended = False
        self._waiters: list[asyncio.Future[None]] | None = None

    @property
    def ended(self) -> bool:
        return self._ended

    def step(self, _: object = None) -> None:
        """Resume the coroutine until it waits again or ends."""
        self._waiting_on = None
        on_result, on_error = self._on_result, self._on_error
        try:
            if self._cancel:
                self._cancel = False
                yielded = self._coro.throw(asyncio.CancelledError())
            else:
                yielded = self._coro.send(None)
        except StopIteration as stop:
            self._end()
            on_result(stop.value)
            return
        except asyncio.CancelledError:
            self._end()
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's handler
            self._end()
            on_error(exc)
            return
        if yielded is None:  # a bare yield (asyncio.sleep(0)): one loop iteration
            asyncio.get_running_loop().call_soon(self.step)
        else:  # an asyncio future: resumed when it is done
            self._waiting_on = yielded
            yielded.add_done_callback(self.step)

    def cancel(self) -> None:
        """Abort the coroutine: CancelledError is raised where it waits."""
        if self._ended:
            return
        fut = self._waiting_on
        if fut is None or not fut.cancel():  # not cancellable now: thrown in at next step
            self._cancel = True

    async def wait(self) -> None:
        """Until the coroutine has ended (returned, failed or been cancelled)."""
        if self._ended:
            return
        fut = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(fut)
        await asyncio.shield(fut)

    def _end(self) -> None:
        self._ended = True
        # drop what the callbacks hold (often the object that holds this stepper)
        self._on_result = self._on_error = _dropped
        for fut in self._waiters or ():
            if not fut.done():
                fut.set_result(None)


def _dropped(_: object) -> None:
    return None


def start(coro: Coroutine[Any, Any, T], on_result: Callable[[T], None],
          on_error: Callable[[BaseException], None]) -> Stepper[T] | None:
    """Step ``coro`` now: ``on_result(value)`` / ``on_error(exc)`` when it ends.

    Returns None when it ended in this first step, else its :class:`Stepper`.
    """
    stepper = Stepper(coro, on_result, on_error)
    stepper.step()
    return None if stepper.ended else stepper
