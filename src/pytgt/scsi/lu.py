"""A logical unit: its settings, unit attentions, preflight checks and dispatch.

``execute`` runs SAM-5's order for one command: look up the opcode in the device
type's command table, report a pending unit attention (except INQUIRY, REPORT LUNS,
REQUEST SENSE), check readiness and reservations, then await the handler. Every
``CheckCondition`` and store error is turned into sense bytes here, in one place.
"""

from __future__ import annotations

import asyncio
import errno
import struct

from pytgt.scsi.alua import TargetPortGroups
from pytgt.scsi.cdb import Command
from pytgt.scsi.lu_stats import Latency
from pytgt.scsi.modepages import ModePages
from pytgt.scsi.pr import PersistentReservations
from pytgt.scsi.qos import LIMITED_OPS, QosLimits, make_limits, parse_limit
from pytgt.scsi.sanitize import SanitizeOperation
from pytgt.scsi.sense import (
    Asc,
    CheckCondition,
    SenseKey,
    build_sense,
    invalid_field,
    invalid_opcode,
    sense_bytes,
)
from pytgt.scsi.shared import SharedState
from pytgt.scsi.task import ItNexus, ScsiResult, ScsiTask, Status, TaskAttribute
from pytgt.scsi.taskset import TaskSet
from pytgt.scsi.xcopy import CopyManager
from pytgt.stores.base import BackingStore, StoreCapability, StoreIOError, store_identity

# INQUIRY byte 0 (SPC-4 6.6.2)
PERIPHERAL_DEVICE_TYPE = {"disk": 0x00, "tape": 0x01, "cd": 0x05, "changer": 0x08,
                          "controller": 0x0C,
                          "pt": 0x1F}  # pt: the device's own (scsi/passthrough.py)
BLOCK_SIZES = (512, 1024, 2048, 4096)

# Unit attentions that replace every other pending one (SAM-5 5.14: a reset or power on
# clears what was pending before).
_RESET_UAS = frozenset({0x29})

_TEXT_LIMITS = {"vendor_id": 8, "product_id": 16, "product_rev": 4, "scsi_id": 40,
                "scsi_sn": 40}
_BOOL_PARAMS = ("readonly", "removable", "online", "thin_provisioning", "swp")
_TRUE = {"1", "yes", "on", "true"}
_FALSE = {"0", "no", "off", "false"}

_MEDIUM_ERRNOS = frozenset({errno.EIO, errno.ENXIO, errno.ENODATA, errno.EBADMSG,
                            errno.EILSEQ})
_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def _parse_bool(key: str, value: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"bad value for {key}: {value!r} (expected 0 or 1)")


class LogicalUnit:
    """One LU of a target: a device type, a backing store (None for the controller), settings."""

    def __init__(self, device_type: str, lun: int, store: BackingStore | None, *, tid: int,
                 path: str = "", bstype: str = "rdwr", bsoflags: str = "",
                 block_size: int = 512) -> None:
        from pytgt.scsi import sbc, spc  # command tables import this module's names

        self.device_type = device_type
        self.peripheral_type = PERIPHERAL_DEVICE_TYPE[device_type]
        self.lun = lun
        self.tid = tid
        self.store = store
        self.path = path if store is not None else "None"
        self.bstype = bstype if store is not None else "null"
        self.bsoflags = bsoflags
        self.block_size = block_size
        disk = device_type == "disk"
        self.vendor_id = "IET"
        self.product_id = "VIRTUAL-DISK" if disk else "Controller"
        self.product_rev = "0001"
        # the store's own identity (an RBD image id) names the LU on every gateway
        ident = store_identity(store)
        self.scsi_id = ident or f"IET     {tid:04x}{lun:04x}"
        self.scsi_sn = ident or f"beaf{tid}{lun}"
        self.online = True
        self.removable = False
        self.readonly = bool(getattr(store, "readonly", False))
        self.thin_provisioning = self.thin_default  # "auto": thin where the store is sparse
        self.loaded = True  # medium present (removable media may be ejected)
        self.nexuses: dict[str, ItNexus] = {}  # I_T nexuses of the target, kept by ScsiTarget
        self.mode = ModePages()
        self.commands: dict[int, Command] = {}
        self.service_actions: dict[int, dict[int, Command]] = {}
        self._prevent: set[str] = set()  # nexus keys holding PREVENT MEDIUM REMOVAL
        self.ua: dict[str, list[tuple[int, int]]] = {}  # nexus key -> pending (asc, ascq)
        self.reservation: str | None = None  # SPC-2 RESERVE holder (nexus key)
        self.pr = PersistentReservations()
        self.shared: SharedState | None = None  # reservations shared with other gateways
        self.caw_lock = asyncio.Lock()
        self.task_set = TaskSet(self.mode)
        self.sanitizing: SanitizeOperation | None = None  # running or failed (sanitize.py)
        self.alua = TargetPortGroups()  # replaced by the target's own (ScsiTarget.add_lu)
        self.peers: dict[int, LogicalUnit] = {lun: self}  # the target's LUN map (add_lu)
        self.copy_manager = CopyManager()  # EXTENDED COPY state (xcopy.py)
        # --op stat counters (lu_stats.py); fastpath.py bumps them too
        self.stat_other_cmds = self.stat_errors = 0
        self.stat_read_cmds = self.stat_read_bytes = 0
        self.stat_write_cmds = self.stat_write_bytes = 0
        self.stat_error_kinds: dict[tuple[str, str], int] = {}  # (status, sense key) -> n
        self.stat_latency: Latency | None = None  # on a timed target, from the first command
        self.qos: QosLimits | None = None  # max_iops/max_bps (qos.py); None: unlimited
        self._install(sbc.DISK_COMMANDS if disk else spc.CONTROLLER_COMMANDS)

    def _install(self, rows: list[Command]) -> None:
        for row in rows:
            if row.service_action is None:
                self.commands[row.opcode] = row
            else:
                self.service_actions.setdefault(row.opcode, {})[row.service_action] = row

    # Settings (tgtadm --op show / update).
    @property
    def size(self) -> int:
        """Capacity in bytes (0 for the controller LU)."""
        return self.store.size if self.store is not None else 0

    @property
    def num_blocks(self) -> int:
        return self.size // self.block_size

    @property
    def sense_format(self) -> int:
        """0: fixed format sense, 1: descriptor format (control mode page D_SENSE)."""
        return 1 if self.mode.d_sense else 0

    @sense_format.setter
    def sense_format(self, value: int) -> None:
        self.mode.d_sense = bool(value)

    @property
    def prevent_removal(self) -> bool:
        return bool(self._prevent)

    @property
    def swp(self) -> bool:
        """Software write protect: the control mode page's SWP bit (SPC-4 7.5.8)."""
        return self.mode.swp

    @swp.setter
    def swp(self, value: bool) -> None:  # pytgtadm swp=1 also makes it the reset value
        self.mode.swp = self.mode.default_swp = value

    @property
    def write_protected(self) -> bool:
        return self.readonly or self.swp

    @property
    def max_iops(self) -> int:
        """READ/WRITE commands per second (0: unlimited; scsi/qos.py)."""
        return self.qos.max_iops if self.qos is not None else 0

    @max_iops.setter
    def max_iops(self, value: int) -> None:
        self.qos = make_limits(value, self.max_bps)

    @property
    def max_bps(self) -> int:
        """READ/WRITE bytes per second (0: unlimited; scsi/qos.py)."""
        return self.qos.max_bps if self.qos is not None else 0

    @max_bps.setter
    def max_bps(self, value: int) -> None:
        self.qos = make_limits(self.max_iops, value)

    def update_params(self, params: dict[str, str]) -> None:
        """Apply ``tgtadm --op update --params k=v,...``; raises ValueError, applying nothing."""
        staged: dict[str, object] = {}
        own: frozenset[str] = getattr(self.store, "store_params", frozenset())  # faulty store
        for key, text in params.items():
            if key not in own:
                staged[key] = self._check_param(key, text)
        to_store = {k: v for k, v in params.items() if k in own}
        if to_store:
            self.store.update_params(to_store)  # type: ignore[union-attr]  # ValueError
        for key, value in staged.items():
            setattr(self, key, value)

    def _check_param(self, key: str, value: str) -> object:
        if key in _TEXT_LIMITS:
            if len(value) > _TEXT_LIMITS[key] or not value.isprintable():
                raise ValueError(f"{key} too long or not printable: {value!r}")
            return value
        if key == "thin_provisioning" and value.strip().lower() == "auto":
            return self.thin_default
        if key in _BOOL_PARAMS:
            flag = _parse_bool(key, value)
            if key == "thin_provisioning" and flag and not self._can_unmap():
                raise ValueError("thin_provisioning needs a backing store that can unmap")
            return flag
        if key == "sense_format":
            if value.strip() not in ("0", "1"):
                raise ValueError(f"bad value for sense_format: {value!r} (0 or 1)")
            return int(value)
        if key in ("max_iops", "max_bps"):
            return parse_limit(key, value)
        if key == "block_size":
            raise ValueError("block_size can only be set when the logical unit is created")
        raise ValueError(f"unknown logical unit parameter: {key}")

    def _can_unmap(self) -> bool:
        return self.store is not None and StoreCapability.UNMAP in self.store.capabilities

    @property
    def thin_default(self) -> bool:
        """Thin provisioning a new LU starts with (``thin_provisioning=auto``).

        On where the store allocates on write and deallocates to zeroes (a regular or
        sparse file, the null store): LBPME=1, LBPRZ=1 and UNMAP reclaim space (SBC-4
        4.7.3). Off for block devices, whose discard need not read back zeroes; tgt's
        default (off) is ``thin_provisioning=0``.
        """
        caps = self.store.capabilities if self.store is not None else StoreCapability(0)
        return StoreCapability.THIN in caps and StoreCapability.UNMAP in caps

    # Unit attentions (SAM-5 5.14).
    def ua_add(self, nexus_key: str, asc: Asc | tuple[int, int]) -> None:
        """Queue a unit attention for one I_T nexus."""
        code = (asc[0], asc[1])
        pending = self.ua.setdefault(nexus_key, [])
        if code[0] in _RESET_UAS:
            pending.clear()
        if code not in pending:
            pending.append(code)

    def ua_add_all(self, nexus_keys: list[str], asc: Asc | tuple[int, int],
                   except_key: str | None = None) -> None:
        for key in nexus_keys:
            if key != except_key:
                self.ua_add(key, asc)

    def ua_clear(self, nexus_key: str, asc: Asc | tuple[int, int] | None = None) -> None:
        """Drop one kind of pending UA (or all) for a nexus."""
        if asc is None:
            self.ua.pop(nexus_key, None)
            return
        pending = self.ua.get(nexus_key)
        if pending and (asc[0], asc[1]) in pending:
            pending.remove((asc[0], asc[1]))

    def ua_take(self, nexus_key: str) -> tuple[int, int] | None:
        """Pop the oldest pending UA for a nexus."""
        pending = self.ua.get(nexus_key)
        if not pending:
            return None
        code = pending.pop(0)
        if not pending:
            del self.ua[nexus_key]
        return code

    @property
    def nexus_keys(self) -> list[str]:
        return list(self.nexuses)

    def nexus_lost(self, nexus: ItNexus) -> None:
        """The nexus ended: its UAs, PREVENT state and SPC-2 reservation go (SAM-5 6.3.4)."""
        self.ua.pop(nexus.key, None)
        self._prevent.discard(nexus.key)
        if self.reservation == nexus.key:
            self.reservation = None
            if self.shared is not None:
                self.shared.forget(lambda: self._release_spc2(nexus.key))

    def _release_spc2(self, holder: str | None) -> None:
        """Drop the SPC-2 reservation if ``holder`` (None: anyone) has it."""
        if holder is None or self.reservation == holder:
            self.reservation = None

    def set_prevent(self, nexus_key: str, prevent: bool) -> None:
        if prevent:
            self._prevent.add(nexus_key)
        else:
            self._prevent.discard(nexus_key)

    def reset(self) -> None:
        """LOGICAL UNIT RESET effects on LU state (SAM-5 6.3.3): PREVENT, reservation, modes."""
        self._prevent.clear()
        self.reservation = None
        if self.shared is not None:
            self.shared.forget(lambda: self._release_spc2(None))
        self.mode.reset()

    async def reset_device(self) -> None:
        """A reset reaching what is behind the LU (a passthrough LU's device); the
        target's own LU state is reset by :meth:`reset`."""

    # Command execution.
    def lookup(self, cdb: bytes) -> Command:
        """The command-table row for a CDB; raises CheckCondition for unknown opcodes."""
        row = self.commands.get(cdb[0])
        if row is not None:
            return row
        sas = self.service_actions.get(cdb[0])
        if sas is None:
            raise invalid_opcode()
        row = sas.get(cdb[1] & 0x1F) if len(cdb) > 1 else None
        if row is None:
            raise invalid_field(1, 4)
        return row

    async def execute(self, task: ScsiTask) -> ScsiResult:
        """Run one command through the task set (SAM-5 8.6): wait while dormant, then
        preflight and the handler. Always returns a result (never raises CheckCondition).
        """
        if task.attribute > TaskAttribute.HEAD_OF_QUEUE:
            # ACA: NormACA=0 (standard INQUIRY), so no ACA condition can exist to use it
            return self.check_condition(CheckCondition(SenseKey.ILLEGAL_REQUEST,
                                                       Asc.INVALID_FIELD_IN_CDB))
        ts = self.task_set
        waiter = ts.enter(task)
        try:
            if waiter is not None:
                await waiter
            if task.aborted:
                return ScsiResult(Status.TASK_ABORTED)
            result = await self.run(task)
        finally:
            ts.leave(task)
        if task.aborted:
            return ScsiResult(Status.TASK_ABORTED)
        return result

    async def run(self, task: ScsiTask, row: Command | None = None) -> ScsiResult:
        """An enabled task: preflight (unless ``row`` says it was done) and handler;
        CheckCondition and store errors become sense data here, in one place."""
        try:
            if row is None:
                if not task.cdb:
                    raise invalid_opcode()
                row = self.commands.get(task.cdb[0]) or self.lookup(task.cdb)
                refused = self.preflight(task, row)
                if refused is not None:
                    return refused
            qos = self.qos
            if qos is not None and row.opcode in LIMITED_OPS:
                wait = qos.reserve(max(task.expected_in, len(task.data_out)))
                if wait:  # a timer on the loop: other LUs and commands carry on
                    await asyncio.sleep(wait)
            return await row.handler(self, task)
        except CheckCondition as exc:
            return self.check_condition(exc)
        except StoreIOError as exc:
            # A failed flush lost written data: WRITE ERROR, as for a write (SBC-3 5.22).
            writing = row is not None and (row.writes or row.opcode in (0x35, 0x91))
            return self.check_condition(store_error(exc, writing))
        except (struct.error, IndexError):  # a CDB shorter than its operation code needs
            return self.check_condition(invalid_field(len(task.cdb)))

    def preflight(self, task: ScsiTask, row: Command) -> ScsiResult | None:
        """SAM-5's checks before a command runs, in order: availability, a pending unit
        attention (taken), sanitize, ALUA state, medium, SPC-2 and persistent
        reservations, write protection. None: it may run; else the answer (RESERVATION
        CONFLICT); raises CheckCondition. The fast path asks this too."""
        if row.available is not None and not row.available(self):
            raise invalid_opcode() if row.service_action is None else invalid_field(1, 4)
        if self.ua and not row.skip_ua:
            code = self.ua_take(task.nexus.key)
            if code is not None:
                raise CheckCondition(SenseKey.UNIT_ATTENTION, code)
        if self.sanitizing is not None:  # NOT READY or failure mode (SBC-4 4.11)
            self.sanitizing.check(row)
        if self.alua.restricted:  # a target port group in standby, unavailable, ...
            self.alua.check(task.nexus, task.cdb)
        if row.medium and not (self.online and self.loaded):
            raise self._not_ready()
        if self.reservation is not None and row.conflicts \
                and self.reservation != task.nexus.key:
            return ScsiResult(Status.RESERVATION_CONFLICT)
        if self.pr.type and row.pr_access and self.pr.conflicts(task.nexus, row.pr_access):
            return ScsiResult(Status.RESERVATION_CONFLICT)
        if row.writes and (self.readonly or self.mode.swp):
            raise CheckCondition(SenseKey.DATA_PROTECT, Asc.WRITE_PROTECTED)
        return None

    def _not_ready(self) -> CheckCondition:
        return CheckCondition(SenseKey.NOT_READY, Asc.MEDIUM_NOT_PRESENT)

    def check_condition(self, exc: CheckCondition) -> ScsiResult:
        """CHECK CONDITION with sense in this LU's format (D_SENSE)."""
        return ScsiResult(Status.CHECK_CONDITION, b"", sense_bytes(exc, self.mode.d_sense))

    def sense_data(self, key: int, asc: tuple[int, int], descriptor: bool) -> bytes:
        return build_sense(key, asc[0], asc[1], descriptor=descriptor)


def store_error(exc: StoreIOError, writing: bool) -> CheckCondition:
    """SBC-3 mapping of a failed store I/O to sense for that command only."""
    if exc.errno in _SPACE_ERRNOS:
        return CheckCondition(SenseKey.DATA_PROTECT, Asc.SPACE_ALLOCATION_FAILED_WRITE_PROTECT)
    if exc.errno == errno.EROFS:
        return CheckCondition(SenseKey.DATA_PROTECT, Asc.WRITE_PROTECTED)
    if exc.errno in _MEDIUM_ERRNOS:
        asc = Asc.WRITE_ERROR if writing else Asc.UNRECOVERED_READ_ERROR
        return CheckCondition(SenseKey.MEDIUM_ERROR, asc)
    return CheckCondition(SenseKey.HARDWARE_ERROR, Asc.INTERNAL_TARGET_FAILURE)


def create_lu(device_type: str, lun: int, store: BackingStore | None, *, tid: int,
              path: str = "", bstype: str = "rdwr", bsoflags: str = "", block_size: int = 512,
              params: dict[str, str] | None = None) -> LogicalUnit:
    """Build a logical unit ("disk" and "tape" need a store; "controller" is LUN 0's SPC-only LU).

    Raises ValueError for an unknown device type, a bad block size or bad params.
    """
    if device_type not in PERIPHERAL_DEVICE_TYPE:
        raise ValueError(f"unsupported device type: {device_type} "
                         f"(supported: {', '.join(PERIPHERAL_DEVICE_TYPE)})")
    if device_type in ("disk", "tape", "pt") and store is None:
        raise ValueError(f"a {device_type} logical unit needs a backing store")
    if block_size not in BLOCK_SIZES and device_type != "tape":  # tape: MODE SELECT's
        raise ValueError(f"bad block size {block_size} (one of {BLOCK_SIZES})")
    if not 0 <= lun < 16384:
        raise ValueError(f"bad LUN {lun} (0..16383)")
    lu: LogicalUnit
    if device_type == "tape" and store is not None:
        from pytgt.scsi.ssc import TapeUnit  # SSC-3 (ssc.py); block_size: MODE SELECT's
        lu = TapeUnit(lun, store, tid=tid, path=path, bstype=bstype, bsoflags=bsoflags)
    elif device_type == "pt" and store is not None:  # a host SCSI device (sg store)
        from pytgt.scsi.passthrough import PassthroughUnit
        lu = PassthroughUnit(lun, store, tid=tid, path=path, bstype=bstype, bsoflags=bsoflags)
    elif device_type == "cd":  # MMC-6: 2048-byte blocks, the medium may be absent
        from pytgt.scsi.mmc import CdLogicalUnit
        lu = CdLogicalUnit(lun, store, tid=tid, path=path, bstype=bstype, bsoflags=bsoflags)
    elif device_type == "changer":  # SMC-3: elements configured by --params
        from pytgt.scsi.smc import MediumChanger
        lu = MediumChanger(lun, store, tid=tid, path=path, bstype=bstype, bsoflags=bsoflags)
    else:
        lu = LogicalUnit(device_type, lun, store, tid=tid, path=path, bstype=bstype,
                         bsoflags=bsoflags, block_size=block_size)
    if params:
        lu.update_params(params)
    return lu
