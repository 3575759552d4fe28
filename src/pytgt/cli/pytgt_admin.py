"""``pytgt-admin``: tgt-admin for pytgtd (targets.conf in, management requests out).

Reads a targets.conf (default ``/etc/pytgt/targets.conf``), checks all of it, asks
the daemon for its running configuration, plans the requests (see
:mod:`pytgt.config.plan`) and sends them in batches. ``-p`` prints the pytgtadm
command lines instead; ``--dump`` prints the running configuration as targets.conf.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from typing import Any

from pytgt.config.plan import (
    Plan,
    Request,
    Running,
    plan_delete,
    plan_execute,
    plan_state,
    plan_update,
)
from pytgt.config.spec import ConfigSpec
from pytgt.config.targets_conf import ConfigError, parse_file, render
from pytgt.daemon.errors import EXIT_ENOTCONN, NOT_CONNECTED

PROG = "pytgt-admin"
DEFAULT_CONF = "/etc/pytgt/targets.conf"
BATCH_BYTES = 48 * 1024  # below the control socket's 64 KiB request limit
EXIT_CONFIG = 1


class AdminError(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="pytgt target configuration tool "
                                "(tgt-admin's options; see docs/targets.conf.md)")
    p.add_argument("-e", "--execute", action="store_true",
                   help="add the targets of the configuration file that do not exist and "
                        "remove running targets that are not in it")
    p.add_argument("-d", "--delete", metavar="tid=N|IQN|ALL", help="delete targets")
    p.add_argument("--offline", metavar="tid=N|IQN|ALL", help="put targets offline")
    p.add_argument("--ready", metavar="tid=N|IQN|ALL", help="put targets in ready state")
    p.add_argument("--update", metavar="tid=N|IQN|ALL",
                   help="apply the configuration file's changes to these targets")
    p.add_argument("-s", "--show", action="store_true", help="show all the targets")
    p.add_argument("-C", "--control-port", type=int, default=None, metavar="N",
                   help="the daemon's control port (default 0)")
    p.add_argument("-c", "--conf", default=DEFAULT_CONF, metavar="FILE",
                   help=f"configuration file (default {DEFAULT_CONF})")
    p.add_argument("--ignore-errors", action="store_true",
                   help="continue when a request fails")
    p.add_argument("-f", "--force", action="store_true",
                   help="also change or delete targets that are in use")
    p.add_argument("-p", "--pretend", action="store_true",
                   help="print the pytgtadm commands, do nothing (implies -v)")
    p.add_argument("--dump", action="store_true",
                   help="print the running configuration as targets.conf")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print the pytgtadm commands as they run")
    return p


# -- talking to the daemon -----------------------------------------------------------------
def send(port: int, request: Request) -> tuple[int, str]:
    from pytgt.daemon.control import ControlRequestError, request_sync
    from pytgt.daemon.paths import control_socket_path

    try:
        return request_sync(control_socket_path(port), request)
    except (OSError, ControlRequestError):
        return EXIT_ENOTCONN, NOT_CONNECTED


def fetch_running(port: int, required: bool) -> Running:
    rc, out = send(port, {"mode": "system", "op": "dump"})
    if rc == 0:
        return Running.from_dict(json.loads(out))
    if required:
        raise AdminError(f"{PROG}: {out}", rc)
    return Running()


# -- printing ------------------------------------------------------------------------------
_FLAGS = (("tid", "--tid"), ("lun", "--lun"), ("targetname", "-T"), ("backing_store", "-b"),
          ("bstype", "--bstype"), ("bsopts", "--bsopts"), ("bsoflags", "--bsoflags"),
          ("blocksize", "--blocksize"), ("device_type", "--device-type"),
          ("initiator_address", "-I"), ("initiator_name", "-Q"), ("user", "--user"),
          ("password", "--password"), ("name", "--name"), ("value", "--value"))


def command_line(req: Request, port: int) -> str:
    """The pytgtadm command line that sends ``req``."""
    words = ["pytgtadm", "-C", str(port), "--lld", "iscsi", "--op", str(req["op"]),
             "--mode", str(req["mode"])]
    for key, flag in _FLAGS:
        if req.get(key) not in (None, ""):
            words += [flag, str(req[key])]
    params = req.get("params")
    if params:
        words += ["--params", ",".join(f"{k}={v}" for k, v in params.items())]
    words += [flag for key, flag in (("outgoing", "--outgoing"), ("force", "--force"))
              if req.get(key)]
    return " ".join(shlex.quote(w) for w in words)


# -- running a plan ------------------------------------------------------------------------
Item = tuple[list[str], Request | None]  # comment lines, then the request (if any)


def run_plan(plan: Plan, port: int, args: argparse.Namespace, ignore: bool) -> int:
    """Print (``-p``) or send the plan: all its requests in as few batches as fit."""
    for line in plan.warnings:
        print(f"{PROG}: {line}", file=sys.stderr)
    verbose = args.verbose or args.pretend
    items: list[tuple[list[str], Request | None]] = []
    for step in plan.steps:
        reqs: list[Request | None] = list(step.requests) or [None]
        items += [(step.comments if i == 0 else [], r) for i, r in enumerate(reqs)]
    if args.pretend:
        for comments, req in items:
            _print_item(comments, req, port)
        return 0
    status = 0
    for chunk in batches(items):
        status = _send_batch(chunk, port, ignore, verbose) or status
        if status and not ignore:
            return status
    return 0 if ignore else status


def batches(items: list[Item]) -> list[list[Item]]:
    """Items cut into runs whose requests fit one control message."""
    out: list[list[Item]] = [[]]
    size = 0
    for item in items:
        n = len(json.dumps(item[1])) + 2
        if out[-1] and size + n > BATCH_BYTES:
            out.append([])
            size = 0
        out[-1].append(item)
        size += n
    return [b for b in out if b]


def _print_item(comments: list[str], req: Request | None, port: int) -> None:
    for line in comments:
        print(line)
    if req is not None:
        print(command_line(req, port))


def _send_batch(chunk: list[Item], port: int, ignore: bool, verbose: bool) -> int:
    requests = [req for _c, req in chunk if req is not None]
    results: list[list[Any]] = []
    if requests:
        rc, out = send(port, {"mode": "system", "op": "batch", "requests": requests,
                              "ignore_errors": ignore})
        if rc:
            print(f"{PROG}: {out}", file=sys.stderr)
            return rc
        results = json.loads(out)
    status = 0
    done = iter(results)
    for comments, req in chunk:
        if req is None:
            if verbose:
                _print_item(comments, None, port)
            continue
        result = next(done, None)
        if result is None:  # the daemon stopped at an earlier failure
            break
        if verbose:
            _print_item(comments, req, port)
        if result[0]:
            print(f"pytgtadm: {result[1]}", file=sys.stderr)
            print(f"Command:\n\t{command_line(req, port)}\nexited with code: {result[0]}.",
                  file=sys.stderr)
            status = int(result[0])
    sys.stdout.flush()
    return status


def read_conf(path: str) -> ConfigSpec:
    try:
        config, warnings = parse_file(path)
    except ConfigError as exc:
        raise AdminError("\n".join(exc.errors), EXIT_CONFIG) from None
    except OSError as exc:
        raise AdminError(f"{PROG}: cannot read {path}: {exc.strerror or exc}",
                         EXIT_CONFIG) from None
    for line in warnings:
        print(f"{PROG}: {line}", file=sys.stderr)
    return config


def check_supported(config: ConfigSpec) -> None:
    """What only the daemon's side knows: store types, device types, parameter values."""
    from pytgt.config.spec import TGT_DEVICE_TYPES
    from pytgt.daemon.errors import MgmtError
    from pytgt.daemon.mgmt import check_target_param
    from pytgt.scsi.lu import PERIPHERAL_DEVICE_TYPE
    from pytgt.stores import available

    errors = []
    stores = available()
    supported = ", ".join(k for k, v in TGT_DEVICE_TYPES.items()
                          if v in PERIPHERAL_DEVICE_TYPE)
    for t in config.targets:
        for key, value in t.iscsi_params.items():
            try:
                check_target_param(key, value)
            except MgmtError:
                errors.append(f"{t.where}: bad value for {key}: {value!r}")
        for lu in t.luns:
            if lu.bstype not in stores:
                errors.append(f"{lu.where}: unknown bs-type {lu.bstype} "
                              f"(available: {', '.join(stores)})")
            if TGT_DEVICE_TYPES.get(lu.device_type) not in PERIPHERAL_DEVICE_TYPE:
                errors.append(f"{lu.where}: device-type {lu.device_type} is not supported "
                              f"by pytgt (supported: {supported})")
    if errors:
        raise AdminError("\n".join(errors), EXIT_CONFIG)


def main(argv: Sequence[str] | None = None) -> int:
    """Run pytgt-admin; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except AdminError as exc:
        print(exc.message, file=sys.stderr)
        return exc.status


def _main(args: argparse.Namespace) -> int:
    needs_conf = args.execute or args.update
    config = read_conf(args.conf) if needs_conf else None
    if config is not None:
        check_supported(config)
    port = args.control_port
    if port is None:
        port = config.control_port if config and config.control_port is not None else 0
    ignore = args.ignore_errors or bool(config and config.ignore_errors)
    if config is not None and (args.verbose or args.pretend):
        print(f"# Using {args.conf} as configuration file\n")
    if args.show:
        rc, out = send(port, {"mode": "target", "op": "show"})
        (sys.stdout if rc == 0 else sys.stderr).write(out if rc == 0 else f"{PROG}: {out}\n")
        return rc
    if args.dump:
        running = fetch_running(port, required=True)
        sys.stdout.write(render(running.config))
        return 0
    running = fetch_running(port, required=not args.pretend)
    plan = _plan(args, config, running)
    if plan is None:
        print("No action specified.")
        return 0
    return run_plan(plan, port, args, ignore)


def _plan(args: argparse.Namespace, config: ConfigSpec | None, running: Running) -> Plan | None:
    force = args.force
    if args.execute:
        assert config is not None
        return plan_execute(config, running, force)
    if args.update:
        assert config is not None
        return plan_update(config, running, args.update, force)
    if args.delete:
        return plan_delete(running, args.delete, force)
    for value, state in ((args.offline, "offline"), (args.ready, "ready")):
        if value:
            return plan_state(running, value, state)
    return None


if __name__ == "__main__":
    sys.exit(main())
