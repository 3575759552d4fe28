"""pytgtd's iSNS client (RFC 4171): the asyncio adapter over :mod:`pytgt.isns`.

``--iscsi isns=On,isns_addr=HOST[,isns_port=PORT][,isns_ac=On]`` (tgtd's keys). At start
the entity, its portals and every target node are registered with one replacing
DevAttrReg; after every management change (``Management.on_change``) the registration
is brought up to date: removed targets are deregistered, the rest re-registered. Stopping
deregisters the entity. The server's ESI and SCN messages arrive on a port of our own,
registered with each portal, and are answered there. With ``isns_ac=On`` a target admits
only the initiators its iSNS discovery domains show it (tgt's iSNSAccessControl).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pytgt.isns import messages
from pytgt.isns.codec import IsnsFormatError, Message
from pytgt.isns.constants import ISNS_PORT, IsnsFunction, IsnsStatus, Tag
from pytgt.isns.session import ClientConnection, EsiReceived, Response, ScnReceived

if TYPE_CHECKING:
    from pytgt.daemon.server import Daemon

log = logging.getLogger("pytgt.isns")
RETRY_MAX = 10.0  # seconds between attempts to reach a server that does not answer


@dataclass
class IsnsSettings:
    """The ``--iscsi isns*`` keys. ``esi_interval`` (pytgt's) is asked of the server."""

    enabled: bool = False
    address: str = ""
    port: int = ISNS_PORT
    access_control: bool = False
    esi_interval: int = 60
    timeout: float = 10.0


def _on_off(value: str) -> bool:
    if value.lower() not in ("on", "off"):
        raise ValueError("must be On or Off")
    return value.lower() == "on"


def _port(value: str) -> int:
    port = int(value)
    if not 1 <= port <= 0xFFFF:
        raise ValueError("must be 1 to 65535")
    return port


def _interval(value: str) -> int:
    v = int(value)
    if v < 1:
        raise ValueError("must be 1 or more seconds")
    return v


_SETTERS: dict[str, tuple[str, Callable[[str], object]]] = {
    "isns": ("enabled", _on_off), "isns_addr": ("address", str), "isns_port": ("port", _port),
    "isns_ac": ("access_control", _on_off), "isns_esi_interval": ("esi_interval", _interval),
}


def split_isns_options(values: list[str]) -> tuple[IsnsSettings, list[str]]:
    """Take the iSNS keys out of ``--iscsi`` values; the rest is left for the portals.

    Raises ValueError with a one-line message for a bad value or isns=On without an address.
    """
    settings = IsnsSettings()
    rest: list[str] = []
    for value in values:
        kept = []
        for item in filter(None, value.split(",")):
            key, _sep, val = item.partition("=")
            if key not in _SETTERS:
                kept.append(item)
                continue
            attr, parse = _SETTERS[key]
            try:
                setattr(settings, attr, parse(val))
            except ValueError as exc:
                raise ValueError(f"bad --iscsi option {item}: {exc}") from None
        rest.append(",".join(kept))
    if settings.enabled and not settings.address:
        raise ValueError("bad --iscsi options: isns=On needs isns_addr=HOST")
    return settings, rest


class _Listener(asyncio.Protocol):
    """A connection the server opened to our ESI/SCN port: answer, report, go on."""

    def __init__(self, client: IsnsClient) -> None:
        self.client = client
        self.conn = ClientConnection()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        try:
            self.conn.receive_data(data)
        except IsnsFormatError as exc:
            log.warning("isns: bad message on the ESI/SCN port: %s", exc)
            self.transport.close()
            return
        while (ev := self.conn.next_event()) is not None:
            self.client.server_event(ev)
        self.transport.writelines(self.conn.data_to_send())


@dataclass
class _Link:
    """The connection to the server: our requests, its responses."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    conn: ClientConnection = field(default_factory=ClientConnection)

    async def call(self, build: Callable[[int], Message], timeout: float) -> Response:
        xid = self.conn.send(build)
        self.writer.writelines(self.conn.data_to_send())
        async with asyncio.timeout(timeout):
            await self.writer.drain()
            while True:
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionResetError("iSNS server closed the connection")
                self.conn.receive_data(data)
                self.writer.writelines(self.conn.data_to_send())
                while (ev := self.conn.next_event()) is not None:
                    if isinstance(ev, Response) and ev.message.xid == xid:
                        return ev


class IsnsClient:
    """Keeps the iSNS server's view of this daemon current. :meth:`start`, then
    :meth:`stop` (deregisters everything). Failures are logged and retried."""

    def __init__(self, daemon: Daemon, settings: IsnsSettings) -> None:
        self.daemon = daemon
        self.settings = settings
        self.entity_id = ""
        self.registered: dict[str, str] = {}  # name -> alias, as the server has them
        self.visible: dict[str, set[str]] = {}  # isns_ac: target -> initiators it may see
        self.esi_count = 0
        self.scn_count = 0
        self._link: _Link | None = None
        self._local = ""
        self._listener: asyncio.AbstractServer | None = None
        self._listen_port = 0
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._period: float | None = None
        self._sent: messages.EntityRegistration | None = None

    async def start(self) -> None:
        """Open the ESI/SCN port, watch management changes and register in the background."""
        mgmt = self.daemon.management
        assert mgmt is not None, "start the daemon first"
        previous = mgmt.on_change

        async def on_change() -> None:
            if previous is not None:
                await previous()
            self._dirty.set()

        mgmt.on_change = on_change
        if self.settings.access_control:
            self.daemon.policy.isns_allows = self.allows
        self._dirty.set()
        self._task = asyncio.create_task(self._run(), name="pytgt-isns")

    async def stop(self) -> None:
        """Deregister the entity (bounded by the timeout) and close everything."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.registered:
            source = next(iter(self.registered))
            try:
                await self._call(functools.partial(messages.dev_dereg_entity, source,
                                                   self.entity_id))
                log.info("isns: deregistered entity %s", self.entity_id)
            except (OSError, TimeoutError, IsnsFormatError) as exc:
                log.warning("isns: deregistration failed: %s", exc)
        self.registered.clear()
        self._close_link()
        if self._listener is not None:
            self._listener.close()

    def allows(self, target_name: str, initiator_name: str) -> bool:
        """isns_ac: may this initiator log in to this target? (Always, without isns_ac.)"""
        if not self.settings.access_control:
            return True
        return initiator_name in self.visible.get(target_name, set())

    # -- the background task ---------------------------------------------------------
    async def _run(self) -> None:
        retry = 1.0
        while True:
            refresh = False
            try:
                async with asyncio.timeout(self._period):
                    await self._dirty.wait()
            except TimeoutError:  # the registration period is half over: refresh
                refresh = True
            self._dirty.clear()
            try:
                await self._sync(refresh)
                retry = 1.0
            except (OSError, TimeoutError, IsnsFormatError, IsnsRefused) as exc:
                log.warning("isns: %s:%d: %s", self.settings.address, self.settings.port, exc)
                self._close_link()
                self._sent = None
                self._dirty.set()
                await asyncio.sleep(retry)  # back off before the next attempt
                retry = min(retry * 2, RETRY_MAX)

    async def _sync(self, refresh: bool = False) -> None:
        """Bring the server's registration up to the registry's targets."""
        await self._connect()
        wanted = {t.name: t.alias for t in sorted(self.daemon.registry.targets.values(),
                                                  key=lambda t: t.tid)}
        reg = self._registration(wanted)
        if reg == self._sent and not refresh:
            await self._after_sync()
            return
        gone = [n for n in self.registered if n not in wanted]
        if gone and wanted:  # already gone from the server (NoSuchEntry) is as good
            await self._expect(functools.partial(messages.dev_dereg_nodes, gone[0], gone),
                               IsnsStatus.NoSuchEntry)
            log.info("isns: deregistered %s", ", ".join(gone))
        if wanted:
            rsp = await self._expect(functools.partial(messages.dev_attr_reg, reg))
            self._note_period(rsp.message)
            for name in wanted:  # a replacing registration drops SCN registrations
                await self._expect(functools.partial(messages.scn_reg, name))
            log.info("isns: registered %s", ", ".join(wanted))
        elif self.registered:
            source = next(iter(self.registered))
            await self._expect(functools.partial(messages.dev_dereg_entity, source,
                                                 self.entity_id), IsnsStatus.NoSuchEntry)
            log.info("isns: deregistered entity %s", self.entity_id)
        self.registered, self._sent = wanted, reg
        await self._after_sync()

    async def _after_sync(self) -> None:
        if self.settings.access_control:
            await self._query_visible()

    def _registration(self, nodes: dict[str, str]) -> messages.EntityRegistration:
        portals = tuple(messages.Portal(self._address(h), p) for h, p in self.daemon.portals)
        return messages.EntityRegistration(
            self.entity_id, portals, tuple(messages.Node(n, a) for n, a in nodes.items()),
            tpgt=self.daemon.service.portal_group_tag, esi_port=self._listen_port,
            esi_interval=self.settings.esi_interval, scn_port=self._listen_port)

    def _address(self, host: str) -> str:
        """A wildcard portal is announced with the address we reach the server from."""
        return self._local if host in ("0.0.0.0", "::", "") else host

    def _note_period(self, rsp: Message) -> None:
        """Refresh the registration at half the period the server granted (5.6.5.1)."""
        attr = rsp.first(Tag.RegistrationPeriod)
        if attr is not None and len(attr.value) == 4 and attr.as_u32() > 0:
            self._period = attr.as_u32() / 2

    async def _query_visible(self) -> None:
        for name in self.registered:
            rsp = await self._expect(functools.partial(messages.dev_attr_qry_initiators, name))
            self.visible[name] = set(messages.initiator_names(rsp.message))

    # -- the connection -------------------------------------------------------------
    async def _connect(self) -> None:
        if self._link is not None:
            return
        async with asyncio.timeout(self.settings.timeout):
            reader, writer = await asyncio.open_connection(self.settings.address,
                                                           self.settings.port)
        self._link = _Link(reader, writer)
        self._local = str(writer.get_extra_info("sockname")[0])
        if self._listener is None:
            loop = asyncio.get_running_loop()
            self._listener = await loop.create_server(lambda: _Listener(self), self._local, 0)
            self._listen_port = int(self._listener.sockets[0].getsockname()[1])
        if not self.entity_id:
            first = self.daemon.portals[0] if self.daemon.portals else ("", 0)
            self.entity_id = f"{socket.gethostname()}:{self._address(first[0])}:{first[1]}"

    def _close_link(self) -> None:
        if self._link is not None:
            self._link.writer.close()
            self._link = None

    async def _call(self, build: Callable[[int], Message]) -> Response:
        await self._connect()
        assert self._link is not None
        try:
            return await self._link.call(build, self.settings.timeout)
        except BaseException:
            self._close_link()
            raise

    async def _expect(self, build: Callable[[int], Message], *also_ok: int) -> Response:
        """The response; raises IsnsRefused unless Successful (or one of ``also_ok``)."""
        rsp = await self._call(build)
        if rsp.status != IsnsStatus.Successful and rsp.status not in also_ok:
            raise IsnsRefused(rsp)
        return rsp

    def server_event(self, ev: EsiReceived | ScnReceived | Response) -> None:
        """An ESI or SCN from the server (already answered)."""
        if isinstance(ev, EsiReceived):
            self.esi_count += 1
            (log.info if self.esi_count == 1 else log.debug)("isns: ESI answered")
        elif isinstance(ev, ScnReceived):
            self.scn_count += 1
            log.info("isns: SCN for %s about %s", ev.destination, ", ".join(ev.names))
            if self.settings.access_control:
                self._dirty.set()


class IsnsRefused(Exception):
    """The server answered a request with a status other than Successful."""

    def __init__(self, rsp: Response) -> None:
        try:
            name = IsnsFunction(rsp.request).name
        except ValueError:
            name = hex(rsp.request)
        try:
            status = IsnsStatus(rsp.status).name
        except ValueError:
            status = str(rsp.status)
        super().__init__(f"{name}: {status}")


class IsnsControl:
    """pytgtd's iSNS: the settings, the client once enabled, and tgt's run-time switches
    (``tgtadm --op update --mode sys --name iSNSServerIP|iSNSServerPort|
    iSNSAccessControl|iSNS --value ...``). Enabled, it cannot be disabled (as in tgt)."""

    def __init__(self, daemon: Daemon, settings: IsnsSettings) -> None:
        self.daemon = daemon
        self.settings = settings
        self.client: IsnsClient | None = None

    async def start(self) -> None:
        """Offer the switches to management; start the client if ``isns=On``."""
        mgmt = self.daemon.management
        assert mgmt is not None, "start the daemon first"
        mgmt.isns = self.settings
        mgmt.isns_admin = self.update
        if self.settings.enabled:
            await self._enable()

    async def update(self, name: str, value: str) -> None:
        """One tgt switch; raises ValueError for a bad name or value, or once enabled."""
        if self.client is not None:
            raise ValueError("iSNS is on: its settings cannot change")
        if name == "iSNSServerIP" and value:
            self.settings.address = value
        elif name == "iSNSServerPort":
            self.settings.port = _port(value)
        elif name == "iSNSAccessControl":
            self.settings.access_control = _on_off(value)
        elif name == "iSNS" and _on_off(value):
            if not self.settings.address:
                raise ValueError("iSNS=On needs iSNSServerIP")
            self.settings.enabled = True
            await self._enable()
        elif name != "iSNS":
            raise ValueError(f"unknown iSNS setting {name}")

    async def _enable(self) -> None:
        self.client = IsnsClient(self.daemon, self.settings)
        await self.client.start()

    async def stop(self) -> None:
        """Deregister everything (if enabled)."""
        if self.client is not None:
            await self.client.stop()
