"""``pytgtadm``: tgtadm's command line for pytgtd (argument parsing and printing only).

The command line is checked the way tgtadm checks it (the same messages and exit
statuses), turned into one request dict, sent over the control socket, and the
daemon's answer printed: show text on stdout, a one-line error on stderr.
"""

from __future__ import annotations

import argparse
import getopt
import re
import sys
from collections.abc import Sequence
from typing import Any

from pytgt.config.spec import TGT_DEVICE_TYPES
from pytgt.daemon.errors import EXIT_EINVAL, EXIT_ENOTCONN, EXIT_USAGE, NOT_CONNECTED

PROG = "pytgtadm"
VERSION = "0.1.0"

OPS = ("new", "delete", "show", "bind", "unbind", "update", "stat", "start", "stop")
MODES = {"system": "system", "sys": "system", "target": "target", "tgt": "target",
         "logicalunit": "logicalunit", "lu": "logicalunit", "account": "account",
         "lld": "lld", "conn": "conn", "connection": "conn", "session": "session",
         "sess": "session"}

SHORT = "dhVL:o:m:t:s:c:l:n:v:b:E:f:y:Y:T:I:Q:u:p:H:B:P:S:C:FOJ"
# long option -> (short letter, request key); a trailing "=" takes an argument
LONG = {
    "lld=": ("L", "lld"), "op=": ("o", "op"), "mode=": ("m", "mode"), "tid=": ("t", "tid"),
    "sid=": ("s", "sid"), "cid=": ("c", "cid"), "lun=": ("l", "lun"),
    "name=": ("n", "name"), "value=": ("v", "value"), "backing-store=": ("b", "backing_store"),
    "bstype=": ("E", "bstype"), "bsopts=": ("S", "bsopts"), "bsoflags=": ("f", "bsoflags"),
    "blocksize=": ("y", "blocksize"), "device-type=": ("Y", "device_type"),
    "targetname=": ("T", "targetname"), "initiator-address=": ("I", "initiator_address"),
    "initiator-name=": ("Q", "initiator_name"), "user=": ("u", "user"),
    "password=": ("p", "password"), "host=": ("H", "host"), "bus=": ("B", "bus"),
    "params=": ("P", "params"), "control-port=": ("C", "control_port"),
    "force": ("F", "force"), "outgoing": ("O", "outgoing"), "debug": ("d", "debug"),
    "help": ("h", "help"), "version": ("V", "version"),
    "json": ("J", "json"),  # pytgt's: --op show as JSON (docs/json.md)
}
_BY_LETTER = {letter: key for letter, key in LONG.values()}
# numeric options: letter -> largest value
_NUMERIC = {"t": 0x7FFFFFFF, "C": 0xFFFF, "l": 0xFFFFFFFFFFFFFFFF, "s": 0xFFFFFFFFFFFFFFFF,
            "c": 0xFFFFFFFF, "y": 0xFFFFFFFF}
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")

USAGE = f"""\
pytgt administration utility (tgtadm command line), version {VERSION}

Usage: {PROG} [OPTION]
--lld <driver> --mode target --op new --tid <id> --targetname <name>
        add a new target with <id> (not zero) and <name>.
--lld <driver> --mode target --op delete [--force] --tid <id>
        delete the target with <id>; --force also ends its sessions.
--lld <driver> --mode target --op show [--tid <id>]
        show all targets, or the parameters of the target with <id>.
--lld <driver> --mode target --op update --tid <id> --name <param> --value <value>
--lld <driver> --mode target --op update --tid <id> --params <param=value,...>
        change parameters (state, iSCSI keys) of the target with <id>;
        alua_state=active|nonoptimized|standby|unavailable|offline sets its ALUA state.
--lld <driver> --mode target --op bind|unbind --tid <id> --initiator-address <address>
--lld <driver> --mode target --op bind|unbind --tid <id> --initiator-name <name>
        allow or disallow initiators (address, CIDR, ALL; or iSCSI name).
--lld <driver> --mode logicalunit --op new --tid <id> --lun <lun>
  --backing-store <path> [--bstype <type>] [--bsopts <opts>] [--bsoflags sync:direct]
  [--blocksize <size>] [--device-type <type>]
        add logical unit <lun> to the target with <id>.
--lld <driver> --mode logicalunit --op delete --tid <id> --lun <lun>
        delete logical unit <lun> of the target with <id>.
--lld <driver> --mode logicalunit --op update --tid <id> --lun <lun> --params <k=v,...>
        change logical unit parameters (vendor_id, product_id, readonly, online, ...);
        size=<bytes|64M|2G> or rescan=1 changes the exported capacity (live).
--lld <driver> --mode system|target|logicalunit --op stat [--tid <id> [--lun <lun>]]
        I/O counters per logical unit (and login counters per target).
--lld <driver> --mode account --op new --user <name> --password <pass>
--lld <driver> --mode account --op delete --user <name>
--lld <driver> --mode account --op show
--lld <driver> --mode account --op bind|unbind [--tid <id>] --user <name> [--outgoing]
        CHAP accounts; bound to a target, or (without --tid) to discovery.
--lld <driver> --mode conn --op show|delete --tid <id> [--sid <sid> --cid <cid>]
--lld <driver> --mode session --op show|delete --tid <id> [--sid <sid>]
--mode system --op show|update [--name State|debug --value <value>]
--lld <driver> --mode lld --op show|start
-J, --json  with --op show (every mode): print a pytgt.show/1 JSON document (docs/json.md)
--control-port <port> use control port <port>
--help  display this help and exit
"""

# what each option is for (the manual page, ``build_parser``)
_HELP = {
    "lld": "the low-level driver: iscsi", "op": "the operation: " + ", ".join(OPS),
    "mode": "what it acts on: system, target, logicalunit, account, lld, conn, session",
    "tid": "target id (not 0)", "sid": "session id (the TSIH)", "cid": "connection id",
    "lun": "logical unit number", "name": "the parameter to update",
    "value": "its new value", "backing-store": "the backing store: a file, a block device, "
    "POOL/IMAGE for rbd, a size for memory, /dev/sgN for sg, /dev/bsg/H:C:T:L for bsg",
    "bstype": "the backing-store type: rdwr, null, memory, rbd, sg or bsg (with device "
    "type pt), faulty or a plugin's",
    "bsopts": "backing-store options (key=value;...)", "bsoflags": "open flags: direct, sync",
    "blocksize": "logical block size in bytes", "device-type": "the SCSI device type (disk)",
    "targetname": "the target's iSCSI name", "initiator-address": "an initiator address, "
    "CIDR or ALL", "initiator-name": "an initiator's iSCSI name", "user": "CHAP user name",
    "password": "CHAP secret", "host": "host number (tgt compatibility; unused)",
    "bus": "bus address (tgt compatibility; unused)", "params": "parameters "
    "key=value,...", "control-port": "the daemon's control port N (socket.N)",
    "force": "delete a target even with sessions", "outgoing": "bind the account as "
    "the target's outgoing (mutual CHAP) account", "debug": "debug output",
    "help": "show the usage and exit", "version": "show the version and exit",
    "json": "with --op show (every mode): a pytgt.show/1 JSON document (docs/json.md)",
}


def build_parser() -> argparse.ArgumentParser:
    """tgtadm's options as an argparse parser, for the manual page (parsing is getopt's,
    in :func:`parse_args`, to keep tgtadm's messages)."""
    p = argparse.ArgumentParser(prog=PROG, add_help=False, description=(
        "pytgtadm administers a running pytgtd over its control socket with tgtadm's "
        "command lines, messages and exit statuses."))
    for name, (letter, _key) in LONG.items():
        flag = name.rstrip("=")
        kw: dict[str, Any] = {"help": _HELP.get(flag, "")}
        if name.endswith("="):
            kw["metavar"] = flag.upper().replace("-", "_")
        else:
            kw["action"] = "store_true"
        p.add_argument(f"-{letter}", f"--{flag}", **kw)
    return p


# (mode, op) -> the option letters that may be given (None: anything goes)
_ALLOWED: dict[tuple[str, str], str | None] = {
    ("target", "new"): "tT", ("target", "delete"): "tF", ("target", "show"): "t",
    ("target", "bind"): "tIQBH", ("target", "unbind"): "tIQBH",
    ("target", "update"): "tnvP", ("target", "stat"): None,
    ("logicalunit", "new"): "tlbESfyYP", ("logicalunit", "delete"): "tl",
    ("logicalunit", "update"): "tlfyP", ("logicalunit", "stat"): "tl",
    ("account", "new"): "upf", ("account", "delete"): "u", ("account", "show"): "",
    ("account", "bind"): "tuO", ("account", "unbind"): "tuO",
    ("system", "show"): None, ("system", "delete"): None, ("system", "update"): "nv",
    ("lld", "show"): "", ("lld", "start"): "", ("lld", "stop"): "",
}
_ALWAYS = set("LomCdhVJ")


class CommandLineError(Exception):
    """A bad command line: the message to print and the exit status."""

    def __init__(self, message: str, status: int = EXIT_EINVAL, try_help: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.try_help = try_help


def _getopt_message(exc: getopt.GetoptError) -> str:
    """GNU getopt_long's wording for Python's getopt errors."""
    msg, opt = exc.msg, exc.opt
    long_form = f"--{opt}" in msg
    if "not a unique prefix" in msg:
        names = " ".join(f"'--{n.rstrip('=')}'" for n in LONG if n.startswith(opt))
        return f"{PROG}: option '--{opt}' is ambiguous; possibilities: {names}"
    if "requires argument" in msg:
        return (f"{PROG}: option '--{opt}' requires an argument" if long_form
                else f"{PROG}: option requires an argument -- '{opt}'")
    if "must not have an argument" in msg:
        return f"{PROG}: option '--{opt}' doesn't allow an argument"
    return (f"{PROG}: unrecognized option '--{opt}'" if long_form
            else f"{PROG}: invalid option -- '{opt}'")


def _number(letter: str, text: str) -> int:
    """strtoul's base-0 reading (decimal, 0x hex, 0 octal), with tgtadm's messages."""
    digits = text.strip()
    if not _NUMBER.fullmatch(digits):
        raise CommandLineError(f"-{letter} argument value '{text}' invalid", try_help=True)
    value = int(digits, 8) if digits.startswith("0") and digits[1:2].isdigit() \
        else int(digits, 0)
    if value > _NUMERIC[letter]:
        raise CommandLineError(f"-{letter} argument value '{text}' out of range", try_help=True)
    return value


def parse_args(argv: Sequence[str]) -> tuple[dict[str, Any], int, set[str]]:
    """Parse a tgtadm command line; returns (request, control port, option letters given).

    Raises :class:`CommandLineError` for anything tgtadm would refuse before sending.
    """
    try:
        opts, rest = getopt.gnu_getopt(list(argv), SHORT, list(LONG))
    except getopt.GetoptError as exc:
        raise CommandLineError(_getopt_message(exc), try_help=True) from None
    if rest:
        raise CommandLineError(f"{PROG}: unrecognized option '{rest[0]}'", try_help=True)
    request: dict[str, Any] = {key: None for _letter, key in LONG.values()}
    request.update(force=False, outgoing=False, json=False)
    given: set[str] = set()
    port = 0
    for flag, value in opts:
        letter = flag[1] if len(flag) == 2 else _long_letter(flag[2:])
        given.add(letter)
        key = _BY_LETTER[letter]
        if letter in "FOdJ":
            request[key] = True
        elif letter == "C":
            port = _number(letter, value)
        elif letter in _NUMERIC:
            request[key] = _number(letter, value)
        elif letter == "o":
            request[key] = _word(value, OPS, "operation")
        elif letter == "m":
            request[key] = MODES.get(value) or _word(value, (), "mode")
        elif letter == "Y" and value not in TGT_DEVICE_TYPES:
            raise CommandLineError(f"{PROG}: unknown target type: {value}")
        else:
            request[key] = value
    for key in ("control_port", "debug", "help", "version"):
        request.pop(key, None)
    return request, port, given


def _long_letter(name: str) -> str:
    for long_name, (letter, _key) in LONG.items():
        if long_name.rstrip("=") == name:
            return letter
    raise CommandLineError(f"{PROG}: unrecognized option '--{name}'", try_help=True)


def _word(value: str, words: Sequence[str], what: str) -> str:
    if value not in words:
        raise CommandLineError(f"{PROG}: unknown {what}: {value}", status=EXIT_USAGE)
    return value


def check_request(req: dict[str, Any], given: set[str]) -> None:
    """tgtadm's client-side checks: required options, supported ops, allowed options."""
    mode, op = req.get("mode"), req.get("op")
    if op is None:
        raise CommandLineError(f"{PROG}: specify the operation type")
    if mode is None:
        raise CommandLineError(f"{PROG}: specify the mode")
    if "J" in given and op != "show":
        raise CommandLineError(f"{PROG}: --json applies to --op show only")
    check = _MODE_CHECKS.get(mode)
    if check is not None:
        check(req, given)


def _need(req: dict[str, Any], key: str, message: str | None = None) -> None:
    if req.get(key) is None:
        raise CommandLineError(f"{PROG}: {message or repr(key) + ' option is necessary'}")


def _unsupported(mode: str, op: str) -> CommandLineError:
    return CommandLineError(f"{PROG}: operation {op} not supported in {mode} mode")


def _allowed(req: dict[str, Any], given: set[str], lu_style: bool = False) -> None:
    mode, op = req["mode"], req["op"]
    allowed = _ALLOWED.get((mode, op))
    if allowed is None:
        return
    for letter in sorted(given - _ALWAYS - set(allowed), key="tTlbESfyYIQupOPnvFscBH".find):
        if lu_style:
            raise CommandLineError(f"{PROG}: option '-{letter}' not supported in {mode} mode")
        raise CommandLineError(f"{PROG}: {mode} mode: option '-{letter}' is not allowed/supported")


def _check_target(req: dict[str, Any], given: set[str]) -> None:
    op = req["op"]
    if op != "show":
        _need(req, "tid")
    if op in ("new", "delete") and req["tid"] == 0:
        raise CommandLineError(f"{PROG}: 'tid' cannot be 0")
    if op == "new":
        _need(req, "targetname", "creating new target requires a name, use --targetname")
    elif op in ("bind", "unbind") and not (req["initiator_address"] or req["initiator_name"]
                                           or req["bus"]):
        raise CommandLineError(f"{PROG}: {op} operation requires initiator-address, "
                         "initiator-nameor bus")
    elif op == "update" and not req["params"] and (req["name"] is None or req["value"] is None):
        raise CommandLineError(f"{PROG}: update operation requires 'name' and 'value' options")
    elif op in ("start", "stop"):
        raise _unsupported("target", op)
    _allowed(req, given)


def _check_lu(req: dict[str, Any], given: set[str]) -> None:
    _need(req, "tid")
    _need(req, "lun")
    if req["tid"] == 0:
        raise CommandLineError(f"{PROG}: 'tid' must not be 0")
    if req["op"] not in ("new", "delete", "update", "stat"):
        raise _unsupported("logicalunit", req["op"])
    _allowed(req, given, lu_style=req["op"] == "update")


def _check_account(req: dict[str, Any], given: set[str]) -> None:
    op = req["op"]
    if op == "new" and (not req["user"] or not req["password"]):
        raise CommandLineError(f"{PROG}: 'user' and 'password' options are required")
    if op in ("delete", "bind", "unbind"):
        _need(req, "user")
    if op not in ("new", "delete", "show", "bind", "unbind"):
        raise _unsupported("account", op)
    _allowed(req, given)


def _check_system(req: dict[str, Any], given: set[str]) -> None:
    op = req["op"]
    if op == "update" and (req["name"] is None or req["value"] is None):
        raise CommandLineError(f"{PROG}: update operation requires 'name' and 'value' options")
    if op not in ("show", "update", "delete", "stat"):
        raise _unsupported("system", op)
    _allowed(req, given)


def _check_lld(req: dict[str, Any], given: set[str]) -> None:
    if req["op"] not in ("show", "start", "stop"):
        raise CommandLineError(f"{PROG}: option {OPS.index(req['op'])} not supported in lld mode")
    _allowed(req, given)


_MODE_CHECKS = {"target": _check_target, "logicalunit": _check_lu, "account": _check_account,
                "system": _check_system, "lld": _check_lld}


def send(port: int, request: dict[str, Any]) -> tuple[int, str]:
    """Send a request to the daemon on control port ``port``; (rc, out) or not-connected."""
    from pytgt.daemon.control import ControlRequestError, request_sync
    from pytgt.daemon.paths import control_socket_path

    try:
        return request_sync(control_socket_path(port), request)
    except (OSError, ControlRequestError):
        return EXIT_ENOTCONN, NOT_CONNECTED


def main(argv: Sequence[str] | None = None) -> int:
    """Run pytgtadm; returns the exit status (tgtadm's)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        request, port, given = parse_args(args)
        if "h" in given:
            sys.stdout.write(USAGE)
            return 0
        if "V" in given:
            print(VERSION)
            return 0
        check_request(request, given)
    except CommandLineError as exc:
        print(exc.message, file=sys.stderr)
        if exc.try_help:
            print(f"Try `{PROG} --help' for more information.", file=sys.stderr)
        return exc.status
    rc, out = send(port, request)
    if rc:
        print(f"{PROG}: {out}", file=sys.stderr)
    else:
        sys.stdout.write(out)
    sys.stdout.flush()
    return rc


if __name__ == "__main__":
    sys.exit(main())
