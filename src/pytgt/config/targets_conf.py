"""tgt's targets.conf: parse it into a :class:`~pytgt.config.spec.ConfigSpec`, write one back.

The syntax is tgt-admin's (Config::General style): ``<target IQN>`` ... ``</target>``
blocks, LUNs as ``backing-store PATH``/``direct-store PATH`` lines or as
``<backing-store PATH>`` ... ``</backing-store>`` blocks with per-LUN directives,
``key value`` (or ``key = value``) lines, ``#`` comments (``\\#`` for a literal ``#``),
``\\`` at the end of a line to continue it, ``include GLOB``. Directives outside any
block are defaults for every target (the innermost setting wins).

:func:`parse_file` (or :func:`parse_text`) checks everything and raises
:class:`ConfigError` with every ``file:line: reason`` found; nothing is returned
half-read. :func:`render` writes a file that parses back to the same configuration.
See docs/targets.conf.md.
"""

from __future__ import annotations

import glob
import ipaddress
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from pytgt.config.spec import (
    BOOL_LU_PARAMS,
    CHANGER_MODE_PAGES,
    LU_PARAMS,
    QOS_LU_PARAMS,
    TGT_DEVICE_TYPES,
    AccountSpec,
    ConfigSpec,
    LunSpec,
    TargetSpec,
    medium_bstype,
)
from pytgt.scsi.qos import parse_limit
from pytgt.scsi.smc import ELEMENT_KEYS

T = TypeVar("T")


class ConfigError(Exception):
    """targets.conf problems; ``errors`` holds one ``file:line: reason`` per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


# tgt's target (iSCSI) parameters, spelled as tgtadm shows them; matched case-insensitively.
ISCSI_PARAMS = (
    "MaxRecvDataSegmentLength", "MaxXmitDataSegmentLength", "HeaderDigest", "DataDigest",
    "InitialR2T", "MaxOutstandingR2T", "ImmediateData", "FirstBurstLength", "MaxBurstLength",
    "DataPDUInOrder", "DataSequenceInOrder", "ErrorRecoveryLevel", "IFMarker", "OFMarker",
    "DefaultTime2Wait", "DefaultTime2Retain", "OFMarkInt", "IFMarkInt", "MaxConnections",
    "RDMAExtensions", "TargetRecvDataSegmentLength", "InitiatorRecvDataSegmentLength",
    "MaxOutstandingUnexpectedPDUs", "MaxQueueCmd", "nop_interval", "nop_count",
    "RedirectAddress", "RedirectPort", "RedirectReason",  # login redirection (tgt's names)
)
_ISCSI_BY_LOWER = {p.lower(): p for p in ISCSI_PARAMS}

GLOBAL_ONLY = frozenset({
    "default-driver", "include", "ignore-errors", "control-port", "isnsserverip",
    "isnsaccesscontrol", "isnsserverport", "isns", "incomingdiscoveryuser",
    "outgoingdiscoveryuser"})
TARGET_LEVEL = frozenset({"driver", "initiator-address", "initiator-name", "incominguser",
                          "outgoinguser", "controller_tid"})
LUN_LEVEL = frozenset({
    "write-cache", "scsi_id", "scsi_sn", "vendor_id", "product_id", "product_rev",
    "sense_format", "removable", "readonly", "online", "thin_provisioning", "mode_page",
    "device-type", "bs-type", "bsopts", "bsoflags", "allow-in-use", "block-size", "params",
    "lun", "max_iops", "max_bps"})
UNSUPPORTED = frozenset({"path", "lbppbe", "la_lba", "optimal_xfer_gran", "optimal_xfer_len"})
LUN_KINDS = ("backing-store", "direct-store")
_MULTI = frozenset({*LUN_KINDS, "initiator-address", "initiator-name", "incominguser",
                    "mode_page", "params", "include", "incomingdiscoveryuser"})
BLOCK_SIZES = (512, 1024, 2048, 4096)
TEXT_LIMITS = {"vendor_id": 8, "product_id": 16, "product_rev": 4, "scsi_id": 40,
               "scsi_sn": 40}
MAX_LUN = 16383
MAX_INCLUDE_DEPTH = 16
NO_ADDRESS = "NONE"  # pytgt extension: "initiator-address NONE" = no implicit ALL

_TRUE = {"1", "yes", "on", "true"}
_FALSE = {"0", "no", "off", "false"}
_OPEN = re.compile(r"<\s*([A-Za-z][\w-]*)\s+(.*?)\s*>")
_CLOSE = re.compile(r"<\s*/\s*([A-Za-z][\w-]*)\s*>")
_LINE = re.compile(r"([A-Za-z_][\w.-]*)\s*(?:=\s*|\s+|$)(.*)")


@dataclass
class Directive:
    key: str  # lower case
    value: str
    where: str


@dataclass
class Block:
    kind: str  # "root", "target", "backing-store", "direct-store"
    arg: str
    where: str
    items: list[Directive | Block] = field(default_factory=list)

    def directives(self) -> list[Directive]:
        return [d for d in self.items if isinstance(d, Directive)]


# -- reading -------------------------------------------------------------------------------
def parse_file(path: str) -> tuple[ConfigSpec, list[str]]:
    """Read and check ``path`` (and its includes); returns (config, warnings).

    Raises :class:`ConfigError` listing every problem, or OSError if ``path`` is unreadable.
    """
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        text = f.read()
    return parse_text(text, path)


def parse_text(text: str, name: str = "<string>") -> tuple[ConfigSpec, list[str]]:
    """Parse targets.conf ``text`` (``name`` appears in messages). See :func:`parse_file`."""
    errors: list[str] = []
    root = Block("root", "", f"{name}:1")
    _read_into(root, text, name, errors, depth=0, seen=(os.path.abspath(name),))
    warnings: list[str] = []
    config = _Builder(errors, warnings).build(root)
    if errors:
        raise ConfigError(list(dict.fromkeys(errors)))
    return config, list(dict.fromkeys(warnings))  # a target-level value warns once


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(line number, text) with comments removed and ``\\`` continuations joined."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw)
        if not pending:
            start = number
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending += line[:-1]
            continue
        out.append((start, (pending + line).strip()))
        pending = ""
    if pending:
        out.append((start, pending.strip()))
    return out


def _strip_comment(raw: str) -> str:
    out, i = [], 0
    while i < len(raw):
        c = raw[i]
        if c == "\\" and raw[i + 1:i + 2] == "#":
            out.append("#")
            i += 2
            continue
        if c == "#":
            break
        out.append(c)
        i += 1
    return "".join(out).rstrip()


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _read_into(root: Block, text: str, name: str, errors: list[str], depth: int,
               seen: tuple[str, ...]) -> None:
    stack = [root]
    for number, line in _logical_lines(text):
        if not line:
            continue
        where = f"{name}:{number}"
        if m := _CLOSE.fullmatch(line):
            _close(stack, m.group(1).lower(), where, errors)
        elif m := _OPEN.fullmatch(line):
            _open(stack, m.group(1).lower(), _unquote(m.group(2)), where, errors)
        elif line.startswith("<"):
            errors.append(f"{where}: malformed block tag: {line}")
        elif m := _LINE.fullmatch(line):
            d = Directive(m.group(1).lower(), _unquote(m.group(2)), where)
            if d.key == "include" and stack[-1] is root:
                _include(root, d, name, errors, depth, seen)
            else:
                stack[-1].items.append(d)
        else:
            errors.append(f"{where}: cannot parse: {line}")
    for block in stack[1:]:
        errors.append(f"{block.where}: <{block.kind}> has no </{block.kind}>")


def _open(stack: list[Block], kind: str, arg: str, where: str, errors: list[str]) -> None:
    parent = stack[-1].kind
    if kind == "target" and parent != "root":
        errors.append(f"{where}: <target> inside <{parent}>")
    elif kind in LUN_KINDS and parent != "target":
        errors.append(f"{where}: <{kind}> outside a <target> block")
    elif kind not in ("target", *LUN_KINDS):
        errors.append(f"{where}: unknown block <{kind}>")
    if not arg:
        errors.append(f"{where}: <{kind}> needs a name")
    block = Block(kind, arg, where)
    stack[-1].items.append(block)
    stack.append(block)


def _close(stack: list[Block], kind: str, where: str, errors: list[str]) -> None:
    if len(stack) == 1 or stack[-1].kind != kind:
        errors.append(f"{where}: </{kind}> without <{kind}>")
        return
    stack.pop()


def _include(root: Block, d: Directive, name: str, errors: list[str], depth: int,
             seen: tuple[str, ...]) -> None:
    if depth >= MAX_INCLUDE_DEPTH:
        errors.append(f"{d.where}: includes nested too deeply")
        return
    pattern = d.value if os.path.isabs(d.value) else \
        os.path.join(os.path.dirname(name) or ".", d.value)
    for path in sorted(glob.glob(pattern)):
        real = os.path.abspath(path)
        if real in seen:
            errors.append(f"{d.where}: include loop: {path}")
            continue
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
        except OSError as exc:
            errors.append(f"{d.where}: cannot read {path}: {exc.strerror or exc}")
            continue
        _read_into(root, text, path, errors, depth + 1, (*seen, real))


# -- checking and building -----------------------------------------------------------------
def _bool(value: str) -> bool | None:
    v = value.strip().lower()
    return True if v in _TRUE else False if v in _FALSE else None


def _int(value: str) -> int | None:
    try:
        return int(value.strip(), 0)
    except ValueError:
        return None


@dataclass
class _Scope:
    """The directives of one level (global, target or LUN), checked, by key."""

    values: dict[str, Directive] = field(default_factory=dict)
    multi: dict[str, list[Directive]] = field(default_factory=dict)


class _Builder:
    def __init__(self, errors: list[str], warnings: list[str]) -> None:
        self.errors = errors
        self.warnings = warnings

    def err(self, where: str, reason: str) -> None:
        self.errors.append(f"{where}: {reason}")

    def build(self, root: Block) -> ConfigSpec:
        config = ConfigSpec()
        glob_scope = self.scope(root.directives(), "global")
        self.globals(config, glob_scope)
        merged: dict[str, list[Block]] = {}
        for item in root.items:
            if isinstance(item, Block) and item.kind == "target":
                merged.setdefault(item.arg.lower(), []).append(item)
        for blocks in merged.values():
            config.targets.append(self.target(blocks, glob_scope))
        self.check_tids(config)
        return config

    def scope(self, directives: list[Directive], level: str) -> _Scope:
        scope = _Scope()
        for d in directives:
            if self.misplaced(d, level):
                continue
            if d.key in _MULTI:
                scope.multi.setdefault(d.key, []).append(d)
            elif d.key in scope.values:
                self.err(d.where, f"{d.key} given twice (first at {scope.values[d.key].where})")
            else:
                scope.values[d.key] = d
        return scope

    def misplaced(self, d: Directive, level: str) -> bool:
        """Record an error (and return True) if ``d`` may not appear at ``level``."""
        reason = _misplaced_reason(d.key, level)
        if reason:
            self.err(d.where, reason)
        return bool(reason)

    # -- global directives
    def globals(self, config: ConfigSpec, scope: _Scope) -> None:
        v = scope.values
        for key in ("default-driver", "driver"):
            if key in v and v[key].value.lower() != "iscsi":
                self.err(v[key].where, f"driver {v[key].value} is not supported (only iscsi)")
        if "ignore-errors" in v:
            flag = _bool(v["ignore-errors"].value)
            if flag is None:
                self.err(v["ignore-errors"].where, "ignore-errors takes yes or no")
            config.ignore_errors = bool(flag)
        if "control-port" in v:
            port = _int(v["control-port"].value)
            if port is None or not 0 <= port <= 65535:
                self.err(v["control-port"].where, "control-port takes a number 0..65535")
            config.control_port = port
        if "isns" in v and v["isns"].value.lower() != "off":
            self.err(v["isns"].where, "iSNS is not supported by pytgt")
        config.discovery_incoming = [a for d in scope.multi.get("incomingdiscoveryuser", [])
                                     if (a := self.account(d)) is not None]
        if "outgoingdiscoveryuser" in v:
            config.discovery_outgoing = self.account(v["outgoingdiscoveryuser"])

    def account(self, d: Directive) -> AccountSpec | None:
        parts = d.value.split()
        if len(parts) != 2:
            self.err(d.where, f"{d.key} takes a user name and a password")
            return None
        return parts[0], parts[1]

    # -- targets
    def target(self, blocks: list[Block], glob_scope: _Scope) -> TargetSpec:
        first = blocks[0]
        spec = TargetSpec(name=first.arg, where=first.where)
        if not _valid_iqn(first.arg):
            self.err(first.where, f"bad target name: {first.arg!r}")
        directives = [d for b in blocks for d in b.directives()]
        scope = self.scope(directives, "target")
        lun_blocks = [i for b in blocks for i in b.items
                      if isinstance(i, Block) and i.kind in LUN_KINDS]
        self.target_settings(spec, scope, glob_scope)
        self.luns(spec, directives, lun_blocks, [glob_scope, scope])
        return spec

    def target_settings(self, spec: TargetSpec, scope: _Scope, glob_scope: _Scope) -> None:
        def pick(key: str) -> list[Directive]:
            return scope.multi.get(key) or glob_scope.multi.get(key, [])

        if "driver" in scope.values and scope.values["driver"].value.lower() != "iscsi":
            self.err(scope.values["driver"].where, "only the iscsi driver is supported")
        for d in pick("initiator-address"):
            self.address(spec, d)
        if not pick("initiator-address"):  # tgt-admin binds ALL when no address is given
            spec.initiator_addresses = ["ALL"]
        elif NO_ADDRESS in spec.initiator_addresses:
            if len(spec.initiator_addresses) > 1:
                self.err(pick("initiator-address")[0].where,
                         f"initiator-address {NO_ADDRESS} cannot be combined with addresses")
            spec.initiator_addresses = []
        spec.initiator_names = _unique(d.value for d in pick("initiator-name"))
        spec.incoming = _unique(a for d in pick("incominguser")
                                if (a := self.account(d)) is not None)
        out = scope.values.get("outgoinguser") or glob_scope.values.get("outgoinguser")
        if out is not None:
            spec.outgoing = self.account(out)
        tid = scope.values.get("controller_tid")
        if tid is not None:
            spec.tid = _int(tid.value)
            if spec.tid is None or not 1 <= spec.tid <= 0x7FFFFFFF:
                self.err(tid.where, f"bad controller_tid: {tid.value}")
        for level in (glob_scope, scope):
            for key, d in level.values.items():
                if key in _ISCSI_BY_LOWER:
                    if not d.value:
                        self.err(d.where, f"{key} needs a value")
                    spec.iscsi_params[_ISCSI_BY_LOWER[key]] = d.value

    def address(self, spec: TargetSpec, d: Directive) -> None:
        value = d.value.strip()
        if value.upper() in ("ALL", NO_ADDRESS):
            value = value.upper()
        else:
            try:
                ipaddress.ip_network(value.strip("[]"), strict=False)
            except ValueError:
                self.err(d.where, f"bad initiator-address: {value!r}")
                return
        if value not in spec.initiator_addresses:
            spec.initiator_addresses.append(value)

    # -- LUNs
    def luns(self, spec: TargetSpec, directives: list[Directive], blocks: list[Block],
             scopes: list[_Scope]) -> None:
        decls: list[tuple[str, str, str, list[Directive]]] = []
        for d in directives:
            if d.key in LUN_KINDS:
                decls.append((d.key, _unquote(d.value), d.where, []))
        for b in blocks:
            decls.append((b.kind, b.arg, b.where, b.directives()))
        if any(not path for _k, path, _w, _d in decls):
            for _k, path, where, _d in decls:
                if not path:
                    self.err(where, "backing-store needs a path")
            return
        # tgt-admin's order: backing-stores, then direct-stores, each sorted by path.
        decls.sort(key=lambda x: (x[0] != "backing-store", x[1]))
        seen: dict[tuple[str, str], str] = {}
        for kind, path, where, items in decls:
            if (kind, path) in seen:  # tgt-admin keeps one of them, silently
                self.warnings.append(f"{where}: {kind} {path} is already declared at "
                                     f"{seen[kind, path]}; ignored")
                continue
            seen[kind, path] = where
            lun_scope = self.scope(items, "lun")
            spec.luns.append(self.lun(kind, path, where, [*scopes, lun_scope]))
        self.number_luns(spec)

    def lun(self, kind: str, path: str, where: str, scopes: list[_Scope]) -> LunSpec:
        def get(key: str) -> Directive | None:
            for scope in reversed(scopes):
                if key in scope.values:
                    return scope.values[key]
            return None

        spec = LunSpec(lun=0, path=path, direct=kind == "direct-store", where=where)
        if (d := get("lun")) is not None:
            number = _int(d.value)
            if number is None or not 1 <= number <= MAX_LUN:
                self.err(d.where, f"bad lun: {d.value} (1..{MAX_LUN})")
            else:
                spec.lun = number
        self.creation(spec, get)
        for scope in scopes:
            for d in scope.multi.get("params", []):
                self.params(spec, d)
            for key in (*LU_PARAMS,):
                if key in scope.values:
                    self.param(spec, key, scope.values[key].value, scope.values[key].where)
        if (d := get("write-cache")) is not None:
            flag = _bool(d.value)
            if flag is None:
                self.err(d.where, "write-cache takes on or off")
            spec.write_cache = flag is not False
        for scope in scopes:
            for d in scope.multi.get("mode_page", []):
                self.mode_page(spec, d)
        return spec

    def creation(self, spec: LunSpec, get: Callable[[str], Directive | None]) -> None:
        if (d := get("bs-type")) is not None:
            spec.bstype = d.value
            if not re.fullmatch(r"[\w.-]+", d.value):
                self.err(d.where, f"bad bs-type: {d.value!r}")
        if (d := get("bsopts")) is not None:
            spec.bsopts = d.value
        if (d := get("bsoflags")) is not None:
            spec.bsoflags = d.value
            if not set(re.split(r"[:,]", d.value)) <= {"sync", "direct"}:
                self.err(d.where, f"bad bsoflags: {d.value!r} (sync, direct or sync:direct)")
        if (d := get("block-size")) is not None:
            size = _int(d.value)
            if size not in BLOCK_SIZES:
                self.err(d.where, f"bad block-size: {d.value} (one of 512 1024 2048 4096)")
            spec.blocksize = size
        if (d := get("device-type")) is not None:
            spec.device_type = d.value
            if d.value not in TGT_DEVICE_TYPES:
                self.err(d.where, f"unknown device-type: {d.value}")
        spec.bstype = medium_bstype(spec.device_type, spec.bstype)  # tgt's ssc/mmc/smc
        if (d := get("allow-in-use")) is not None:
            flag = _bool(d.value)
            if flag is None:
                self.err(d.where, "allow-in-use takes yes or no")
            spec.allow_in_use = bool(flag)

    def params(self, spec: LunSpec, d: Directive) -> None:
        changer = TGT_DEVICE_TYPES.get(spec.device_type) == "changer"
        elements: dict[str, str] = {}
        for item in filter(None, (x.strip() for x in d.value.split(","))):
            key, sep, value = item.partition("=")
            if not sep:
                self.err(d.where, f"params: {item!r} is not key=value")
                continue
            if changer and key.strip() in ELEMENT_KEYS:  # checked by the changer
                elements[key.strip()] = _unquote(value)
                continue
            self.param(spec, key.strip(), _unquote(value), d.where)
        if elements:
            spec.elements.append(elements)

    def param(self, spec: LunSpec, key: str, value: str, where: str) -> None:
        if key not in LU_PARAMS:
            self.err(where, f"unknown logical unit parameter: {key}")
        elif key in BOOL_LU_PARAMS or key == "sense_format":
            flag = _bool(value) if key != "sense_format" else \
                {"0": False, "1": True}.get(value.strip())
            if flag is None:
                self.err(where, f"bad value for {key}: {value!r} (0 or 1)")
            spec.params[key] = "1" if flag else "0"
        elif key in QOS_LU_PARAMS:
            try:
                spec.params[key] = str(parse_limit(key, value))
            except ValueError as exc:
                self.err(where, str(exc))
        else:
            limit = TEXT_LIMITS[key]
            if not value.isprintable():
                self.err(where, f"{key} must be printable")
            if len(value) > limit:
                self.warnings.append(f"{where}: {key} {value!r} truncated to {limit} "
                                     f"characters (as tgt does)")
                value = value[:limit]
            spec.params[key] = value

    def mode_page(self, spec: LunSpec, d: Directive) -> None:
        fields = [_int(x) for x in d.value.split(":")]
        if TGT_DEVICE_TYPES.get(spec.device_type) == "changer" and len(fields) >= 3 \
                and fields[0] in CHANGER_MODE_PAGES \
                and all(f is not None and 0 <= f <= 255 for f in fields):
            return  # tgt's VTL examples' pages: a changer builds its own (scsi/smc.py)
        if len(fields) < 4 or any(f is None or not 0 <= f <= 255 for f in fields):
            self.err(d.where, f"bad mode_page: {d.value!r}")
            return
        page, first = fields[0], fields[3]
        assert first is not None
        if page == 0x08:
            spec.write_cache = bool(first & 0x04)
        elif page == 0x0A:
            spec.params["sense_format"] = "1" if first & 0x04 else "0"
        else:
            self.err(d.where, f"mode_page {page:#x} is not supported by pytgt "
                              "(only 8, caching, and 0xa, control)")

    def number_luns(self, spec: TargetSpec) -> None:
        used: dict[int, str] = {}
        for lu in spec.luns:
            if lu.lun:
                if lu.lun in used:
                    self.err(lu.where, f"lun {lu.lun} is already used (at {used[lu.lun]})")
                used.setdefault(lu.lun, lu.where)
        free = (n for n in range(1, MAX_LUN + 1) if n not in used)
        for lu in spec.luns:
            if not lu.lun:
                lu.lun = next(free, 0)

    def check_tids(self, config: ConfigSpec) -> None:
        seen: dict[int, str] = {}
        for t in config.targets:
            if t.tid is not None:
                if t.tid in seen:
                    self.err(t.where, f"controller_tid {t.tid} is already used (at {seen[t.tid]})")
                seen.setdefault(t.tid, t.where)


def _misplaced_reason(key: str, level: str) -> str:
    if key in UNSUPPORTED:
        return f"{key} is not supported by pytgt"
    if key in LUN_KINDS:
        return "" if level == "target" else f"{key} outside a <target> block"
    if key in GLOBAL_ONLY:
        return "" if level == "global" else f"{key} is only allowed outside <target> blocks"
    if key in TARGET_LEVEL or key in _ISCSI_BY_LOWER:
        if level == "lun":
            return f"{key} is not allowed in a LUN block"
        if key == "controller_tid" and level == "global":
            return "controller_tid is only allowed in a <target> block"
        return ""
    return "" if key in LUN_LEVEL else f"unknown directive: {key}"


def _unique(items: Iterable[T]) -> list[T]:
    out: list[T] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def _valid_iqn(name: str) -> bool:
    raw = name.encode("utf-8", "replace")
    return 0 < len(raw) <= 223 and all(c > 0x20 and c != 0x7F for c in raw)


# -- writing -------------------------------------------------------------------------------
def _quote(value: str) -> str:
    value = value.replace("#", "\\#")
    if not value or value != value.strip() or value[0] in '"=' or value.endswith("\\"):
        return f'"{value}"'
    return value


def _acct(account: AccountSpec) -> str:
    return " ".join(x.replace("#", "\\#") for x in account)


def render(config: ConfigSpec, header: str = "") -> str:
    """targets.conf text that :func:`parse_text` reads back as ``config`` (tids and LUNs
    explicit, passwords included)."""
    out = [f"# {line}" for line in header.splitlines()]
    out.append("default-driver iscsi")
    out += [f"incomingdiscoveryuser {_acct(a)}" for a in config.discovery_incoming]
    if config.discovery_outgoing:
        out.append(f"outgoingdiscoveryuser {_acct(config.discovery_outgoing)}")
    for t in config.targets:
        out += ["", f"<target {t.name}>"]
        if t.tid is not None:
            out.append(f"\tcontroller_tid {t.tid}")
        for lu in t.luns:
            out += _render_lun(lu)
        out += [f"\t{k} {_quote(v)}" for k, v in sorted(t.iscsi_params.items())]
        out += [f"\tinitiator-address {a}" for a in t.initiator_addresses or [NO_ADDRESS]]
        out += [f"\tinitiator-name {_quote(n)}" for n in t.initiator_names]
        out += [f"\tincominguser {_acct(a)}" for a in t.incoming]
        if t.outgoing:
            out.append(f"\toutgoinguser {_acct(t.outgoing)}")
        out.append("</target>")
    return "\n".join(out) + "\n"


def _render_lun(lu: LunSpec) -> list[str]:
    kind = "direct-store" if lu.direct else "backing-store"
    lines = [f"\t<{kind} {_quote(lu.path)}>", f"\t\tlun {lu.lun}"]
    if lu.bstype != "rdwr":
        lines.append(f"\t\tbs-type {lu.bstype}")
    if lu.bsopts:
        lines.append(f"\t\tbsopts {_quote(lu.bsopts)}")
    if lu.bsoflags:
        lines.append(f"\t\tbsoflags {lu.bsoflags}")
    if lu.blocksize:
        lines.append(f"\t\tblock-size {lu.blocksize}")
    if lu.device_type != "disk":
        lines.append(f"\t\tdevice-type {lu.device_type}")
    if not lu.write_cache:
        lines.append("\t\twrite-cache off")
    lines += [f"\t\t{k} {_quote(v)}" for k, v in lu.params.items()]
    lines += ["\t\tparams " + ",".join(f"{k}={_quote(v)}" for k, v in e.items())
              for e in lu.elements]  # a changer's elements, one update each
    lines.append(f"\t</{kind}>")
    return lines
