"""The asyncio adapter: one small BufferedProtocol feeding :class:`InitiatorConnection`,
plus the friendly API (:class:`Initiator`, :class:`InitiatorSession`).

Every await is bounded: each operation takes ``timeout=`` (default: the session's
``timeout``) and raises TimeoutError when it passes; the request is then forgotten.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Generator
from typing import Any

from pytgt.initiator import scsi
from pytgt.initiator.core import InitiatorConnection
from pytgt.initiator.errors import ConnectionLost, LoginFailed, UsageError
from pytgt.initiator.events import (
    AsyncEventReceived,
    CommandComplete,
    ConnectionClosed,
    Event,
    LoginComplete,
    LogoutComplete,
    NopReply,
    RequestFailed,
    TaskManagementComplete,
    TextComplete,
)
from pytgt.initiator.options import DEFAULT_INITIATOR_NAME, InitiatorOptions
from pytgt.initiator.scsi import Capacity, Inquiry, ScsiResult
from pytgt.iscsi.constants import RESERVED_TAG, AsyncEvent, TmfFunction
from pytgt.iscsi.keys import SessionParams

log = logging.getLogger("pytgt.initiator")
DEFAULT_TIMEOUT = 10.0
_LOGIN_ITT = 0


class _Protocol(asyncio.BufferedProtocol):
    """Feed the core, hand its events to ``sink``, transmit what it produced."""

    def __init__(self, conn: InitiatorConnection, sink: Callable[[Event], None]) -> None:
        self.conn = conn
        self.sink = sink
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.conn.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self.conn.buffer_updated(nbytes)
        self.drain()

    def eof_received(self) -> bool:
        self.conn.receive_data(b"")
        self.drain()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.connection_lost(f"connection lost: {exc}" if exc else "connection closed")
        self.drain()
        self.transport = None

    def drain(self) -> None:
        while (ev := self.conn.next_event()) is not None:
            self.sink(ev)
        self.transmit()

    def transmit(self) -> None:
        bufs = self.conn.data_to_send()
        if bufs and self.transport is not None and not self.transport.is_closing():
            self.transport.writelines(bufs)


class InitiatorSession:
    """A logged-in iSCSI session (one connection). Use as ``async with``: leaving logs out.

    Create it with :meth:`Initiator.login`. Transport and protocol failures raise
    :class:`~pytgt.initiator.errors.InitiatorError` subclasses; SCSI helpers raise
    ScsiError on a status other than GOOD (``execute`` returns the result instead).
    """

    def __init__(self, options: InitiatorOptions, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.options = options
        self.timeout = timeout
        self.conn = InitiatorConnection(options)
        self.protocol = _Protocol(self.conn, self._on_event)
        self.async_events: list[Any] = []
        self.unit_attentions: list[bytes] = []  # sense data of UAs the helpers retried
        self.abort_on_timeout = True  # send ABORT TASK for a command that timed out
        self.closed_reason: str | None = None
        self._futures: dict[int, asyncio.Future[Any]] = {}
        self._closed = asyncio.Event()

    # -- connection and login -------------------------------------------------------------
    async def _open(self, host: str, port: int, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            await loop.create_connection(lambda: self.protocol, host, port)
            fut = self._expect(_LOGIN_ITT)
            self.conn.start_login()
            self.protocol.transmit()
            try:
                await fut
            except BaseException:
                self.abort()
                raise

    @property
    def negotiated(self) -> dict[str, object]:
        """The parameters in effect (``SessionParams`` fields) plus the keys the target
        sent, as on the wire (``"HeaderDigest": "None"``)."""
        return {**self.conn.login.peer_keys, **self.conn.negotiated.as_dict()}

    @property
    def params(self) -> SessionParams:
        """The typed :class:`~pytgt.iscsi.keys.SessionParams` in effect."""
        return self.conn.negotiated

    @property
    def closed(self) -> bool:
        return self.conn.closed

    # -- events -----------------------------------------------------------------------------
    def _expect(self, itt: int) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._futures[itt] = fut
        return fut

    def _resolve(self, itt: int, value: Any = None, error: BaseException | None = None) -> None:
        fut = self._futures.pop(itt, None)
        if fut is None or fut.done():
            return
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(value)

    def _on_event(self, ev: Event) -> None:
        if isinstance(ev, CommandComplete):
            self._resolve(ev.itt, ev.result)
        elif isinstance(ev, RequestFailed):
            self._resolve(ev.itt, error=ev.error)
        elif isinstance(ev, LoginComplete):
            self._resolve(_LOGIN_ITT, ev)
        elif isinstance(ev, TaskManagementComplete):
            self._resolve(ev.itt, ev.response)
        elif isinstance(ev, NopReply):
            self._resolve(ev.itt, ev.data)
        elif isinstance(ev, TextComplete):
            self._resolve(ev.itt, ev.pairs)
        elif isinstance(ev, LogoutComplete):
            self._resolve(ev.itt, ev)
        elif isinstance(ev, AsyncEventReceived):
            self.async_events.append(ev.message)
            if ev.logout_itt is not None:  # the core logged out for the target's request
                self._expect(ev.logout_itt).add_done_callback(_consume)
        elif isinstance(ev, ConnectionClosed):
            self.closed_reason = ev.reason
            for itt in list(self._futures):
                self._resolve(itt, error=ConnectionLost(ev.reason))
            if self.protocol.transport is not None:
                self.protocol.transport.close()
            self._closed.set()

    async def _call(self, itt: int, timeout: float | None) -> Any:
        fut = self._expect(itt)
        self.protocol.transmit()
        try:
            return await asyncio.wait_for(fut, self.timeout if timeout is None else timeout)
        except TimeoutError:
            self._futures.pop(itt, None)
            tmf = self.conn.cancel(itt, abort=self.abort_on_timeout)
            if tmf is not None:  # the target's answer to our ABORT TASK is not awaited
                self._expect(tmf).add_done_callback(_consume)
                self.protocol.transmit()
            raise TimeoutError(f"no answer to ITT {itt:#x} within the timeout") from None
        except asyncio.CancelledError:
            self._futures.pop(itt, None)
            self.conn.cancel(itt)
            raise

    def _check_open(self) -> None:
        if self.conn.closed:
            raise ConnectionLost(self.closed_reason or "session closed")

    # -- requests ---------------------------------------------------------------------------
    async def execute(self, lun: int, cdb: bytes, data_out: bytes | bytearray | memoryview = b"",
                      read_length: int = 0, *, attr: int = 1, immediate: bool = False,
                      timeout: float | None = None) -> ScsiResult:
        """Run one SCSI command; returns its ScsiResult whatever the status."""
        self._check_open()
        itt = self.conn.send_command(lun, cdb, data_out, read_length, attr=attr,
                                     immediate=immediate)
        result: ScsiResult = await self._call(itt, timeout)
        return result

    async def nop(self, data: bytes = b"", *, immediate: bool = True,
                  timeout: float | None = None) -> bytes:
        """NOP-Out ping; returns the data echoed in the NOP-In."""
        self._check_open()
        reply: bytes = await self._call(self.conn.send_nop(data, immediate=immediate), timeout)
        return reply

    async def text(self, pairs: list[tuple[str, str]], *,
                   timeout: float | None = None) -> list[tuple[str, str]]:
        """A text exchange (11.10); returns the target's pairs."""
        self._check_open()
        answer: list[tuple[str, str]] = await self._call(self.conn.send_text(pairs), timeout)
        return answer

    async def send_targets(self, value: str = "All", *,
                           timeout: float | None = None) -> list[tuple[str, list[str]]]:
        """SendTargets (RFC 7143 appendix C) -> ``[(target name, [address,tpgt, ...]), ...]``."""
        out: list[tuple[str, list[str]]] = []
        for key, val in await self.text([("SendTargets", value)], timeout=timeout):
            if key == "TargetName":
                out.append((val, []))
            elif key == "TargetAddress" and out:
                out[-1][1].append(val)
        return out

    async def task_management(self, function: int, lun: int = 0, ref_itt: int = RESERVED_TAG,
                              *, ref_cmd_sn: int | None = None,
                              timeout: float | None = None) -> int:
        """A task management function (TmfFunction); returns the response code (11.6.1)."""
        self._check_open()
        itt = self.conn.send_task_management(function, lun, ref_itt, ref_cmd_sn)
        response: int = await self._call(itt, timeout)
        return response

    async def abort_task(self, lun: int, ref_itt: int, **kw: Any) -> int:
        return await self.task_management(TmfFunction.ABORT_TASK, lun, ref_itt, **kw)

    async def logout(self, *, timeout: float | None = None) -> None:
        """Close the session (11.14) and the connection; idempotent."""
        if not self.conn.closed and self.conn.full_feature:
            try:
                await self._call(self.conn.send_logout(), timeout)
                await asyncio.wait_for(self._closed.wait(), 2.0)
            except (TimeoutError, ConnectionLost):
                pass
        self.abort()

    def abort(self) -> None:
        """Drop the connection without logging out."""
        if self.protocol.transport is not None:
            self.protocol.transport.close()
        self.conn.connection_lost("closed by initiator")
        self.protocol.drain()

    async def __aenter__(self) -> InitiatorSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.logout()

    # -- SCSI helpers -------------------------------------------------------------------
    # Like a host's SCSI midlayer, the helpers retry a command that reports a UNIT
    # ATTENTION (power on, reset, parameters changed, ...) and keep the sense in
    # ``unit_attentions``; ``execute`` itself returns every status untouched.
    _UA_RETRIES = 8

    async def _run(self, lun: int, cdb: bytes, **kw: Any) -> ScsiResult:
        for _ in range(self._UA_RETRIES):
            r = await self.execute(lun, cdb, **kw)
            if r.status != 0x02 or r.sense_key != 0x06:
                return r
            self.unit_attentions.append(r.sense)
        return r

    async def test_unit_ready(self, lun: int = 0, **kw: Any) -> ScsiResult:
        return (await self._run(lun, scsi.cdb_test_unit_ready(), **kw)).check()

    async def inquiry(self, lun: int = 0, evpd: bool = False, page: int = 0,
                      allocation_length: int = 255, **kw: Any) -> Inquiry | bytes:
        """Standard INQUIRY -> Inquiry; with ``evpd`` the raw VPD page bytes."""
        r = await self._run(lun, scsi.cdb_inquiry(evpd, page, allocation_length),
                               read_length=allocation_length, **kw)
        r.check()
        return r.data if evpd else Inquiry.parse(r.data)

    async def read_capacity16(self, lun: int = 0, **kw: Any) -> Capacity:
        r = await self._run(lun, scsi.cdb_read_capacity16(32), read_length=32, **kw)
        return Capacity.parse(r.check().data)

    async def report_luns(self, allocation_length: int = 4096, **kw: Any) -> list[int]:
        r = await self._run(0, scsi.cdb_report_luns(allocation_length),
                               read_length=allocation_length, **kw)
        return scsi.parse_report_luns(r.check().data)

    async def read16(self, lun: int, lba: int, blocks: int, block_size: int = 512,
                     *, fua: bool = False, **kw: Any) -> bytes:
        r = await self._run(lun, scsi.cdb_read16(lba, blocks, fua),
                               read_length=blocks * block_size, **kw)
        return r.check().data

    async def write16(self, lun: int, lba: int, data: bytes | bytearray | memoryview,
                      block_size: int = 512, *, fua: bool = False, **kw: Any) -> ScsiResult:
        if len(data) % block_size:
            raise UsageError(f"write of {len(data)} bytes is not a multiple of {block_size}")
        cdb = scsi.cdb_write16(lba, len(data) // block_size, fua)
        return (await self._run(lun, cdb, data_out=data, **kw)).check()

    async def synchronize_cache(self, lun: int, **kw: Any) -> ScsiResult:
        return (await self._run(lun, scsi.cdb_synchronize_cache16(), **kw)).check()


class _Opening:
    """A login in the making: awaitable, and an async context manager that logs out."""

    def __init__(self, options: InitiatorOptions, host: str, port: int, timeout: float) -> None:
        self._args = options, host, port, timeout
        self._session: InitiatorSession | None = None

    async def _open(self) -> InitiatorSession:
        options, host, port, timeout = self._args
        session = InitiatorSession(options, timeout)
        await session._open(host, port, timeout)
        self._session = session
        return session

    def __await__(self) -> Generator[Any, None, InitiatorSession]:
        return self._open().__await__()

    async def __aenter__(self) -> InitiatorSession:
        return await self._open()

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.logout()


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


class Initiator:
    """An initiator identity aimed at one portal. ``async with`` closes what it opened.

    ``await ini.discover()`` runs a discovery session; ``await ini.connect(target)``
    (or the class method :meth:`login`) opens a normal session.
    """

    def __init__(self, host: str, port: int = 3260, *,
                 initiator_name: str = DEFAULT_INITIATOR_NAME,
                 timeout: float = DEFAULT_TIMEOUT, **options: Any) -> None:
        self.host, self.port = host, port
        self.initiator_name = initiator_name
        self.timeout = timeout
        self.options = options
        self.sessions: list[InitiatorSession] = []

    @classmethod
    def login(cls, host: str, port: int = 3260, *, target: str | None,
              initiator_name: str = DEFAULT_INITIATOR_NAME,
              timeout: float = DEFAULT_TIMEOUT, **options: Any) -> _Opening:
        """Connect and log in; ``target=None`` opens a discovery session.

        Await it for an :class:`InitiatorSession`, or use it directly in ``async with``
        (both ``async with Initiator.login(...)`` and ``async with await ...`` work).
        ``options`` are :class:`InitiatorOptions` fields (header_digest, immediate_data,
        initial_r2t, max_recv_data_segment_length, chap=(user, secret), isid, ...).
        A second connection of session ``a`` (MaxConnections > 1): ``a``'s ``isid``,
        ``tsih=a.conn.tsih``, a new ``cid`` and ``session=a.params``; it works by the
        session's values of the session-wide keys (ImmediateData, InitialR2T, bursts).
        Raises LoginFailed (with the target's status), NegotiationError, TimeoutError,
        OSError (cannot connect).
        """
        opts = InitiatorOptions(initiator_name=initiator_name, target_name=target, **options)
        return _Opening(opts, host, port, timeout)

    async def connect(self, target: str | None, **options: Any) -> InitiatorSession:
        """Log in to ``target`` from this initiator (options override the defaults)."""
        kw = {**self.options, **options}
        kw.setdefault("timeout", self.timeout)
        s = await Initiator.login(self.host, self.port, target=target,
                                  initiator_name=self.initiator_name, **kw)
        self.sessions.append(s)
        return s

    async def discover(self, value: str = "All", **options: Any) -> list[tuple[str, list[str]]]:
        """SendTargets over a fresh discovery session -> ``[(iqn, ["addr:port,tpgt"]), ...]``."""
        s = await self.connect(None, **options)
        try:
            return await s.send_targets(value)
        finally:
            await s.logout()
            self.sessions.remove(s)

    async def close(self) -> None:
        for s in self.sessions:
            await s.logout()
        self.sessions.clear()

    async def __aenter__(self) -> Initiator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = ["Initiator", "InitiatorSession", "LoginFailed", "AsyncEvent"]
