"""A pytgt daemon in its own process for robustness tests (knobs pytgtd lacks).

``python -m tests.robustness.daemon_proc --login-timeout 1 --bstype memory --size 64M``
prints ``READY <port> <control socket>`` once it serves target 1 (``IQN``, LUN 1, open
to all), and stops on SIGTERM. The control socket lives under ``$PYTGT_RUN_DIR``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from pytgt.daemon.server import Daemon
from pytgt.net.portal import PortalOptions

IQN = "iqn.2026-11.org.pytgt:robust"


async def serve(args: argparse.Namespace) -> None:
    opts = PortalOptions(login_timeout=args.login_timeout, nop_interval=args.nop_interval,
                         nop_count=args.nop_count)
    daemon = Daemon([("127.0.0.1", args.port)], control_port=args.control_port, options=opts)
    await daemon.start()
    lu = {"mode": "logicalunit", "op": "new", "tid": 1, "lun": 1, "bstype": args.bstype,
          "backing_store": args.backing or f"{args.size}",
          "bsopts": args.bsopts or (f"size={args.size}" if not args.backing else "")}
    for req in ({"mode": "target", "op": "new", "tid": 1, "targetname": IQN}, lu,
                {"mode": "target", "op": "bind", "tid": 1, "initiator_address": "ALL"}):
        rc, out = await daemon.management.handle(req)
        if rc:
            raise SystemExit(f"setup failed: {req} -> {out}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {daemon.portals[0][1]} {daemon.control_path}", flush=True)
    await stop.wait()
    await daemon.stop()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--control-port", type=int, default=1)
    p.add_argument("--login-timeout", type=float, default=15.0)
    p.add_argument("--nop-interval", type=float, default=0.0)
    p.add_argument("--nop-count", type=int, default=0)
    p.add_argument("--bstype", default="memory")
    p.add_argument("--backing", default="")
    p.add_argument("--bsopts", default="")
    p.add_argument("--size", default="64M")
    p.add_argument("--uvloop", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s daemon_proc %(name)s: %(message)s")
    runner = asyncio.run
    if args.uvloop:
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            pass
    runner(serve(args))


if __name__ == "__main__":
    main()
