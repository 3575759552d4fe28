"""The daemon composed of objects (no globals): registry, portals, control socket.

Usable as a library: ``async with Daemon([("127.0.0.1", 0)]) as d: ...`` starts a
target on an ephemeral port (see ``d.portals`` for the bound addresses).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from pytgt.config.model import Registry
from pytgt.daemon.logfmt import fields
from pytgt.daemon.policy import RegistryPolicy
from pytgt.daemon.security import BackoffSettings, SecurityMonitor
from pytgt.daemon.shutdown import ShutdownSettings, graceful
from pytgt.net.portal import IscsiService, PortalOptions, listen
from pytgt.scsi.target import ScsiTarget
from pytgt.stores.base import BackingStore, quiesce

if TYPE_CHECKING:
    from pytgt.daemon.mgmt import Management

log = logging.getLogger("pytgt.daemon")


class Daemon:
    """pytgtd's state and servers. ``control_port=None`` runs without a control socket;
    ``timing`` N > 0 measures the latency of one command in N (``pytgtd --metrics``)."""

    def __init__(self, portals: list[tuple[str, int]], *, control_port: int | None = None,
                 options: PortalOptions | None = None, registry: Registry | None = None,
                 backoff: BackoffSettings | None = None,
                 shutdown: ShutdownSettings | None = None, timing: int = 0) -> None:
        self.registry = registry or Registry()
        self.requested_portals = portals
        self.portals: list[tuple[str, int]] = []
        self.control_port = control_port
        self.control_path: str | None = None
        self.security = SecurityMonitor(backoff)
        self.shutdown_settings = shutdown or ShutdownSettings()
        self.timing = timing
        options = options or PortalOptions()
        self.policy = RegistryPolicy(self.registry, self.portals,
                                     portal_group_tag=options.tpgt, security=self.security)
        self.service = IscsiService(self.policy, options=options,
                                    portal_group_tag=options.tpgt)
        self.management: Management | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._control: asyncio.AbstractServer | None = None
        self._stopped = asyncio.Event()

    async def start(self,
                    configure: Callable[[Management], Awaitable[None]] | None = None) -> None:
        """Run ``configure(management)`` (restore, --config) before anything is served,
        then listen on every portal (only those addresses) and on the control socket."""
        from pytgt.daemon.mgmt import Management

        management = Management(self.registry, portals=self.portals,
                                control_port=self.control_port or 0,
                                make_target=functools.partial(
                                    ScsiTarget, home_group=self.service.portal_group_tag,
                                    timing=self.timing))
        management.service = self.service
        management.security = self.security
        self.management = management
        if configure is not None:
            await configure(management)
        for host, port in self.requested_portals:
            server = await listen(self.service, host, port)
            self._servers.append(server)
            for sock in getattr(server, "sockets", ()):  # asyncio's and uvloop's servers
                addr = sock.getsockname()
                self.portals.append((str(addr[0]), int(addr[1])))
        if self.control_port is not None:
            from pytgt.daemon.control import serve_control
            from pytgt.daemon.paths import control_socket_path

            self.control_path = control_socket_path(self.control_port)
            os.makedirs(os.path.dirname(self.control_path), mode=0o700, exist_ok=True)
            self._control = await serve_control(self.control_path, management)
        shown = ", ".join(f"{h}:{p}" for h, p in self.portals)
        log.info("listening on %s", shown, extra=fields("listening", portal=shown))

    async def stop(self) -> None:
        """Stop accepting; let running commands finish and ask every session to log out
        (bounded, see :mod:`pytgt.daemon.shutdown`); close what is left; flush and close
        every store."""
        for server in self._servers:
            server.close()
        if self._control is not None:
            self._control.close()
        await graceful(self.service, self.shutdown_settings)
        stores = [(lu, lu.store) for target in self.registry.targets.values()
                  for lu in list(target.scsi.luns.values()) if lu.store is not None]
        # one drain period for all stores together, not one per store
        await _quiesce([store for _lu, store in stores], self.shutdown_settings.drain)
        for lu, store in stores:
            try:
                await store.flush()
                await store.close()
            except Exception:  # report, keep shutting down the rest
                log.exception("closing store of LUN %s", lu.lun)
        if self.control_path and os.path.exists(self.control_path):
            os.unlink(self.control_path)
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def __aenter__(self) -> Daemon:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def _quiesce(stores: list[BackingStore], timeout: float) -> None:
    """Let operations started by aborted commands end before the stores are closed."""
    try:
        await asyncio.wait_for(asyncio.gather(*(quiesce(s) for s in stores)), timeout)
    except TimeoutError:
        log.warning("backing stores: operations still running after %g s", timeout)
