"""``pytgtd``: the daemon's command line (tgtd's flags)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from pytgt.daemon import logfmt
from pytgt.daemon.isns import IsnsControl, IsnsSettings, split_isns_options
from pytgt.daemon.sd_notify import notify
from pytgt.daemon.security import BackoffSettings
from pytgt.daemon.server import Daemon
from pytgt.net.portal import PortalOptions, parse_portal

if TYPE_CHECKING:
    from pytgt.daemon.mgmt import Management

DEFAULT_PORTAL = ("0.0.0.0", 3260)
QUICKSTART_IQN = "iqn.2026-11.org.pytgt:default"


class CliError(Exception):
    """A bad command line; printed as one line, exit status 1."""


def _seconds(val: str) -> float:
    v = float(val)
    if not math.isfinite(v) or v <= 0:
        raise ValueError("must be a positive number of seconds")
    return v


def _tpgt(val: str) -> int:
    v = int(val)
    if not 1 <= v <= 0xFFFF:
        raise ValueError("must be 1 to 65535")
    return v


def _count(val: str) -> int:
    v = int(val)
    if v < 0:
        raise ValueError("must be 0 or more")
    return v


# --iscsi KEY -> (portal options or back-off settings, field, parser). tgtd's keys, plus
# login_timeout, tmf_wait_timeout (scsi/tmf.py) and the CHAP back-off (daemon/security.py).
_OPTIONS: dict[str, tuple[str, str, Callable[[str], float]]] = {
    "nop_interval": ("portal", "nop_interval", lambda v: float(_count(v))),  # whole seconds
    "nop_count": ("portal", "nop_count", _count),
    "login_timeout": ("portal", "login_timeout", _seconds),
    "tmf_wait_timeout": ("portal", "tmf_wait_timeout", _seconds),
    "tpgt": ("portal", "tpgt", _tpgt),
    "auth_fail_limit": ("backoff", "limit", _count),
    "auth_fail_window": ("backoff", "window", _seconds),
    "auth_backoff_initial": ("backoff", "initial", _seconds),
    "auth_backoff_max": ("backoff", "max_delay", _seconds),
}


def parse_all_iscsi_options(
        values: list[str]) -> tuple[list[tuple[str, int]], PortalOptions, BackoffSettings]:
    """``--iscsi`` values -> portals, portal options and back-off settings; raises CliError."""
    portals: list[tuple[str, int]] = []
    opts = PortalOptions()
    backoff = BackoffSettings()
    for value in values:
        for item in filter(None, value.split(",")):
            key, sep, val = item.partition("=")
            if not sep:
                raise CliError(f"bad --iscsi option: {item}")
            if key != "portal" and key not in _OPTIONS:
                raise CliError(f"unknown --iscsi option: {key}")
            try:
                if key == "portal":
                    portals.append(parse_portal(val))
                else:
                    which, field, parse = _OPTIONS[key]
                    setattr(opts if which == "portal" else backoff, field, parse(val))
            except ValueError as exc:
                raise CliError(f"bad --iscsi option {item}: {exc}") from None
    try:
        backoff.check()
    except ValueError as exc:
        raise CliError(f"bad --iscsi options: {exc}") from None
    return portals or [DEFAULT_PORTAL], opts, backoff


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pytgtd", description="pytgt iSCSI target daemon")
    p.add_argument("-f", "--foreground", action="store_true", help="stay in the foreground")
    p.add_argument("-C", "--control-port", type=int, default=0, metavar="N",
                   help="control port: the socket $PYTGT_RUN_DIR/socket.N (default 0)")
    p.add_argument("--iscsi", action="append", default=[], metavar="OPTIONS",
                   help="portal=HOST:PORT[,portal=...][,nop_interval=S][,nop_count=N]"
                        "[,login_timeout=S][,tmf_wait_timeout=S][,tpgt=N]"
                        "[,auth_fail_limit=N][,auth_fail_window=S]"
                        "[,auth_backoff_initial=S][,auth_backoff_max=S]"
                        "[,isns=On,isns_addr=HOST[,isns_port=PORT][,isns_ac=On|Off]"
                        "[,isns_esi_interval=S]]")
    p.add_argument("-d", "--debug", type=int, default=0, metavar="LEVEL",
                   help="1: debug logging")
    p.add_argument("--quickstart", nargs="?", const="1G", metavar="SIZE",
                   help="create and export a sparse-file LUN (default 1G) in the state dir")
    p.add_argument("--persist", action="store_true",
                   help="restore $PYTGT_STATE_DIR/config.json at start and save every change")
    p.add_argument("--config", metavar="FILE", help="apply a targets.conf at start")
    p.add_argument("--allow-backing-symlinks", action="store_true",
                   help="accept any symbolic link as a backing-store path (by default only "
                        "/dev links to block devices, e.g. /dev/disk/by-id/...)")
    p.add_argument("--metrics", metavar="HOST:PORT",
                   help="serve Prometheus metrics on http://HOST:PORT/metrics ([::1]:PORT for "
                        "IPv6, port 0: any free port, logged)")
    p.add_argument("--log-format", choices=("text", "json"), default="text",
                   help="json: one JSON object per log event (docs/operations.md)")
    p.add_argument("-V", "--version", action="version", version="pytgtd 0.1.0")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.isns, iscsi = _split_isns(args.iscsi)
        portals, opts, backoff = parse_all_iscsi_options(iscsi)
        metrics = _metrics_address(args.metrics)
    except CliError as exc:
        print(f"pytgtd: {exc}", file=sys.stderr)
        return 1
    logfmt.setup(logging.DEBUG if args.debug else logging.INFO, args.log_format)
    if not args.foreground and os.fork() > 0:
        return 0
    try:
        import uvloop  # libuv event loop when installed (the Linux default)
        runner: Callable[[Coroutine[Any, Any, int]], int] = uvloop.run
    except ImportError:  # pragma: no cover - non-Linux
        runner = asyncio.run
    try:
        return runner(_run(portals, opts, backoff, args, metrics))
    except OSError as exc:
        print(f"pytgtd: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except CliError as exc:
        print(f"pytgtd: {exc}", file=sys.stderr)
        return 1


def _metrics_address(text: str | None) -> tuple[str, int] | None:
    """``--metrics HOST:PORT`` / ``[V6]:PORT`` -> (host, port); raises CliError."""
    if text is None:
        return None
    try:
        host, port = parse_portal(text, default_port=-1)
    except ValueError:
        raise CliError(f"bad --metrics address: {text} (HOST:PORT)") from None
    return host, port


async def _run(portals: list[tuple[str, int]], opts: PortalOptions,
               backoff: BackoffSettings, args: argparse.Namespace,
               metrics_at: tuple[str, int] | None = None) -> int:
    from pytgt.daemon import metrics as prometheus

    daemon = Daemon(portals, control_port=args.control_port, options=opts, backoff=backoff,
                    timing=prometheus.LATENCY_SAMPLE if metrics_at is not None else 0)
    metrics = None
    if metrics_at is not None:  # before the portals: scraped from the first login on
        metrics = await prometheus.serve_metrics(daemon, *metrics_at)

    async def configure(management: Management) -> None:
        """Restore/apply the configuration before the portals and control socket open."""
        from pytgt.daemon.aptpl import AptplStore

        management.aptpl = AptplStore.in_state_dir()  # before any LU is created
        management.allow_backing_symlinks = args.allow_backing_symlinks
        if args.persist or args.config:
            from pytgt.config.targets_conf import ConfigError
            from pytgt.daemon.startup_config import configure_at_start

            try:
                await configure_at_start(management, args.persist, args.config)
            except ConfigError as exc:
                raise CliError("\n".join(exc.errors)) from None

    try:
        await daemon.start(configure)
    except CliError:
        await daemon.stop()
        if metrics is not None:
            metrics.close()
        raise
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.config:  # SIGHUP applies the changed file (daemon/startup_config.py)
        loop.add_signal_handler(signal.SIGHUP, _reload, daemon, args.config)
    if args.quickstart:
        await _quickstart(daemon, args.quickstart)
    isns = IsnsControl(daemon, args.isns)
    await isns.start()
    notify("READY=1", "STATUS=serving on " + ", ".join(f"{h}:{p}" for h, p in daemon.portals))
    await stop.wait()
    logging.getLogger("pytgt.daemon").info("shutting down",
                                           extra=logfmt.fields("shutdown"))
    notify("STOPPING=1", "STATUS=stopping: draining commands, asking sessions to log out")
    await isns.stop()  # deregister while the portals still answer
    await daemon.stop()
    if metrics is not None:
        metrics.close()
    return 0


def _reload(daemon: Daemon, path: str) -> None:
    from pytgt.daemon.startup_config import reload_conf_file

    if daemon.management is not None:
        task = asyncio.ensure_future(reload_conf_file(daemon.management, path))
        _RELOADS.add(task)  # keep a reference until it ends
        task.add_done_callback(_RELOADS.discard)


_RELOADS: set[asyncio.Future[list[str]]] = set()


async def _quickstart(daemon: Daemon, size: str) -> None:
    """Create target 1 with LUN 1 on a sparse file in the state dir, open to all."""
    from pytgt.daemon.paths import state_dir

    path = os.path.join(state_dir(), "quickstart-lun1.img")
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)  # umask only narrows
    if not os.path.exists(path):  # sparse, and readable by its owner only
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, _parse_size(size))
        finally:
            os.close(fd)
    mgmt = daemon.management
    assert mgmt is not None  # set by Daemon.start
    for request in (
        {"mode": "target", "op": "new", "tid": 1, "targetname": QUICKSTART_IQN},
        {"mode": "logicalunit", "op": "new", "tid": 1, "lun": 1, "backing_store": path},
        {"mode": "target", "op": "bind", "tid": 1, "initiator_address": "ALL"},
    ):
        rc, out = await mgmt.handle(request)
        if rc:
            raise CliError(out.strip())
    for host, port in daemon.portals:
        shown = f"[{host}]" if ":" in host else host
        print(f"pytgtd: serving {path} as iscsi://{shown}:{port}/{QUICKSTART_IQN}/1", flush=True)
    print("pytgtd: connect with e.g. `iscsi-ls -s iscsi://HOST:PORT/` or "
          "`iscsiadm -m discovery -t sendtargets -p HOST:PORT`", flush=True)


def _split_isns(values: list[str]) -> tuple[IsnsSettings, list[str]]:
    try:
        return split_isns_options(values)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    text = text.strip().upper().rstrip("B")
    try:
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except ValueError:
        raise CliError(f"bad size: {text}") from None


if __name__ == "__main__":
    sys.exit(main())
