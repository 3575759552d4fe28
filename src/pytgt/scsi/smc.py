"""Media changer commands (SMC-3) for the "changer" device type, on top of the SPC-4 table.

A :class:`MediumChanger` (peripheral type 08h, RMB=1) holds elements configured as tgt
configures them (``--params element_type=T,start_address=A,quantity=N``): medium
transport (1), storage (2), import/export (3) and data transfer (4) elements. A storage
element is filled with ``element_type=2,address=A,barcode=B``; a data transfer element
is bound to a tape (or cd) LU with ``element_type=4,address=A,tid=T,lun=L``. MOVE MEDIUM
into a bound drive loads ``media_home/BARCODE`` into that LU and moving it out unloads
it: the file I/O belongs to the daemon, reached through the :class:`MediaHandler` the
changer is given (``handler``). READ ELEMENT STATUS reports the elements with their
primary volume tag (the barcode, or ``volume_tag``) and, with DVCID, the drive's T10
vendor identifier (SMC-3 6.12).
"""

from __future__ import annotations

import contextlib
import enum
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pytgt.scsi import modepages as mp
from pytgt.scsi import spc
from pytgt.scsi.cdb import Command, OperationCode
from pytgt.scsi.lu import LogicalUnit
from pytgt.scsi.pr import PR_ALLOWED, PR_READ
from pytgt.scsi.sense import Asc, CheckCondition, SenseKey, invalid_field
from pytgt.scsi.task import ScsiResult, ScsiTask

if TYPE_CHECKING:
    from pytgt.stores.base import BackingStore

# SMC-3 operation codes (SMC-3 table 3).
INITIALIZE_ELEMENT_STATUS = 0x07
POSITION_TO_ELEMENT = 0x2B
INITIALIZE_ELEMENT_STATUS_WITH_RANGE = 0x37
MOVE_MEDIUM = 0xA5
EXCHANGE_MEDIUM = 0xA6
READ_ELEMENT_STATUS = 0xB8

# Additional sense codes of SMC-3 (SPC-4 annex D).
INVALID_ELEMENT_ADDRESS = (0x21, 0x01)
INCOMPATIBLE_MEDIUM_INSTALLED = (0x30, 0x00)
MEDIUM_DESTINATION_ELEMENT_FULL = (0x3B, 0x0D)
MEDIUM_SOURCE_ELEMENT_EMPTY = (0x3B, 0x0E)
NOT_READY_TO_READY_CHANGE = (0x28, 0x00)  # MEDIUM MAY HAVE CHANGED
IMPORT_OR_EXPORT_ELEMENT_ACCESSED = (0x28, 0x01)

# Mode pages of SMC-3 7.3.
ELEMENT_ADDRESS_ASSIGNMENT = 0x1D
TRANSPORT_GEOMETRY = 0x1E
DEVICE_CAPABILITIES = 0x1F

SMC3_VERSION = 0x0480  # version descriptor: SMC-3 (no version claimed)
VOLUME_TAG_LENGTH = 32  # PRIMARY VOLUME TAG: the volume identifier field (SMC-3 6.12.5)
MAX_ADDRESS = 0xFFFF
_U16 = struct.Struct(">H")
_TAG = re.compile(r"[\x20-\x7e]*")


class ElementType(enum.IntEnum):
    """ELEMENT TYPE CODE (SMC-3 table 15)."""

    MEDIUM_TRANSPORT = 1
    STORAGE = 2
    IMPORT_EXPORT = 3
    DATA_TRANSFER = 4


@dataclass
class Medium:
    """A cartridge: its barcode names ``media_home/BARCODE``; ``volume_tag`` overrides
    the barcode in the primary volume tag (tgt's volume_tag parameter)."""

    barcode: str
    volume_tag: str = ""
    sides: int = 1

    @property
    def tag(self) -> str:
        return self.volume_tag or self.barcode


@dataclass
class Element:
    """One element; ``source`` is the storage element the medium was last moved from
    (SVALID, SMC-3 6.12.3); ``drive`` the (tid, lun) a data transfer element names."""

    type: ElementType
    address: int
    medium: Medium | None = None
    source: int | None = None
    drive: tuple[int, int] | None = None


class MediumLoadError(Exception):
    """The handler could not load a cartridge into a drive (file missing, bad format)."""


class MediaHandler(Protocol):
    """What the changer asks its owner (the daemon): find a drive LU, put a cartridge
    file into it or take it out. Loading opens a file, so only the daemon does it."""

    def drive(self, tid: int, lun: int) -> LogicalUnit | None: ...

    async def load(self, drive: LogicalUnit, path: str) -> None: ...

    async def unload(self, drive: LogicalUnit) -> None: ...


ELEMENT_KEYS = frozenset({"element_type", "start_address", "quantity", "address", "barcode",
                          "volume_tag", "sides", "clear_slot", "tid", "lun", "media_home"})


def element_params(params: dict[str, str]) -> dict[str, str]:
    """The changer's own keys of a ``--params`` set (removed from ``params``)."""
    return {k: params.pop(k) for k in list(params) if k in ELEMENT_KEYS}


def _number(params: dict[str, str], key: str, lo: int, hi: int) -> int:
    text = params[key].strip()
    if not text.isdigit() or not lo <= int(text) <= hi:
        raise ValueError(f"bad {key}: {params[key]!r} ({lo}..{hi})")
    return int(text)


class MediumChanger(LogicalUnit):
    """An SMC-3 medium changer LU (docs/changer.md)."""

    def __init__(self, lun: int, store: BackingStore | None, *, tid: int, path: str = "",
                 bstype: str = "rdwr", bsoflags: str = "") -> None:
        super().__init__("changer", lun, store, tid=tid, path=path, bstype=bstype,
                         bsoflags=bsoflags)
        self.commands.clear()
        self.service_actions.clear()
        self._install(CHANGER_COMMANDS)
        self.product_id = "VIRTUAL-CHANGER"
        self.removable = True
        self.media_home = ""
        self.elements: dict[int, Element] = {}
        self.handler: MediaHandler | None = None

    @property
    def size(self) -> int:
        return 0  # the backing file holds nothing (tgt shows 0 MB)

    @property
    def thin_default(self) -> bool:
        return False  # no blocks to provision

    # Configuration (tgtadm --params element_type=..., SMC-3 elements).
    def of_type(self, etype: ElementType) -> list[Element]:
        return sorted((e for e in self.elements.values() if e.type == etype),
                      key=lambda e: e.address)

    def ordered(self) -> list[Element]:
        """Every element by type code, then address (READ ELEMENT STATUS order)."""
        return sorted(self.elements.values(), key=lambda e: (e.type, e.address))

    def element(self, address: int) -> Element:
        """The element at ``address``; INVALID ELEMENT ADDRESS if there is none."""
        found = self.elements.get(address)
        if found is None:
            raise CheckCondition(SenseKey.ILLEGAL_REQUEST, INVALID_ELEMENT_ADDRESS)
        return found

    def drive_lu(self, elem: Element) -> LogicalUnit | None:
        """The LU a data transfer element is bound to, if it exists."""
        if elem.drive is None:
            return None
        tid, lun = elem.drive
        if self.handler is not None:
            return self.handler.drive(tid, lun)
        return self.peers.get(lun) if tid == self.tid else None

    async def configure(self, params: dict[str, str]) -> None:
        """Apply one ``--params`` set of element keys; raises ValueError (nothing changed
        unless a drive load failed after the checks)."""
        params = dict(params)
        home = params.pop("media_home", None)
        if home is not None and not home.startswith("/"):
            raise ValueError(f"media_home must be an absolute path: {home!r}")
        if "element_type" not in params:
            if params:
                raise ValueError(f"{', '.join(sorted(params))} need element_type")
            if home is not None:
                self.media_home = home
            return
        etype = ElementType(_number(params, "element_type", 1, 4))
        if "start_address" in params or "quantity" in params:
            self._add_range(etype, params)
        elif "address" in params:
            await self._set_element(etype, params)
        else:
            raise ValueError("element_type needs start_address and quantity, or address")
        if home is not None:
            self.media_home = home

    def _add_range(self, etype: ElementType, params: dict[str, str]) -> None:
        if set(params) - {"element_type", "start_address", "quantity"} \
                or "start_address" not in params or "quantity" not in params:
            raise ValueError("a range takes element_type, start_address and quantity")
        start = _number(params, "start_address", 1, MAX_ADDRESS)
        count = _number(params, "quantity", 1, MAX_ADDRESS)
        if start + count - 1 > MAX_ADDRESS:
            raise ValueError(f"addresses {start}..{start + count - 1} exceed {MAX_ADDRESS}")
        for addr in range(start, start + count):
            have = self.elements.get(addr)
            if have is not None and have.type != etype:
                raise ValueError(f"address {addr} is already a type {int(have.type)} element")
        for addr in range(start, start + count):
            self.elements.setdefault(addr, Element(etype, addr))

    async def _set_element(self, etype: ElementType, params: dict[str, str]) -> None:
        addr = _number(params, "address", 1, MAX_ADDRESS)
        elem = self.elements.get(addr)
        if elem is None or elem.type != etype:
            raise ValueError(f"no type {int(etype)} element at address {addr}")
        keys = set(params) - {"element_type", "address"}
        if "tid" in keys or "lun" in keys:
            if etype != ElementType.DATA_TRANSFER or keys != {"tid", "lun"}:
                raise ValueError("tid and lun bind a data transfer element (element_type=4)")
            elem.drive = (_number(params, "tid", 1, 2**31), _number(params, "lun", 0, 16383))
            return
        if keys == {"clear_slot"}:
            if params["clear_slot"].strip() != "1":
                raise ValueError(f"bad clear_slot: {params['clear_slot']!r} (1)")
            if elem.medium is not None and etype == ElementType.DATA_TRANSFER:
                await self._unload(elem)
            elem.medium, elem.source = None, None
            self._inventory_changed(etype)
            return
        if not keys or not keys <= {"barcode", "volume_tag", "sides"} or "barcode" not in keys:
            raise ValueError("an element takes barcode (with volume_tag, sides), tid and lun, "
                             "or clear_slot=1")
        barcode, tag = params["barcode"], params.get("volume_tag", "")
        for name, text in (("barcode", barcode), ("volume_tag", tag)):
            if len(text) > VOLUME_TAG_LENGTH or not _TAG.fullmatch(text):
                raise ValueError(f"bad {name} {text!r} (up to {VOLUME_TAG_LENGTH} "
                                 "printable ASCII characters)")
        if not barcode or "/" in barcode or barcode in (".", ".."):
            raise ValueError(f"bad barcode {barcode!r}: it names a file in media_home")
        sides = _number(params, "sides", 1, 2) if "sides" in params else 1
        for other in self.elements.values():
            if other.medium is not None and other.medium.barcode == barcode \
                    and other is not elem:
                raise ValueError(f"barcode {barcode} is already in element {other.address}")
        medium = Medium(barcode, tag, sides)
        if etype == ElementType.DATA_TRANSFER:
            if elem.medium is not None:
                await self._unload(elem)
                elem.medium = None
            try:
                await self._load(elem, medium)
            except (MediumLoadError, OSError) as exc:
                raise ValueError(f"cartridge {barcode}: {exc}") from None
        elem.medium, elem.source = medium, None
        self._inventory_changed(etype)

    def _inventory_changed(self, etype: ElementType) -> None:
        """An operator changed the media (tgtadm): every nexus is told (SMC-3 5.3)."""
        asc = IMPORT_OR_EXPORT_ELEMENT_ACCESSED if etype == ElementType.IMPORT_EXPORT \
            else NOT_READY_TO_READY_CHANGE
        self.ua_add_all(self.nexus_keys, asc)

    # Moving media (MOVE MEDIUM and the drive link).
    def medium_path(self, medium: Medium) -> str:
        if not self.media_home:
            raise MediumLoadError("no media_home is set")
        return f"{self.media_home.rstrip('/')}/{medium.barcode}"

    async def _load(self, elem: Element, medium: Medium) -> None:
        drive = self.drive_lu(elem)
        if drive is None or self.handler is None:
            return  # an unbound element holds the cartridge without a drive to read it
        await self.handler.load(drive, self.medium_path(medium))

    async def _reload(self, elem: Element, medium: Medium) -> None:
        # it loaded a moment ago; if not now, the drive reports no medium
        with contextlib.suppress(MediumLoadError, OSError, ValueError):
            await self._load(elem, medium)

    async def _unload(self, elem: Element) -> None:
        drive = self.drive_lu(elem)
        if drive is not None and self.handler is not None:
            await self.handler.unload(drive)

    async def move(self, src: Element, dst: Element) -> None:
        """Move the cartridge of ``src`` to ``dst`` (checked by the caller)."""
        medium = src.medium
        assert medium is not None
        if src.type == ElementType.DATA_TRANSFER:
            await self._unload(src)
        if dst.type == ElementType.DATA_TRANSFER:
            try:
                await self._load(dst, medium)
            except (MediumLoadError, OSError, ValueError) as exc:
                if src.type == ElementType.DATA_TRANSFER:  # back where it was
                    await self._reload(src, medium)
                raise CheckCondition(SenseKey.MEDIUM_ERROR, INCOMPATIBLE_MEDIUM_INSTALLED) \
                    from exc
        dst.medium, dst.source = medium, _home(src)
        src.medium, src.source = None, None

    async def exchange(self, src: Element, first: Element, second: Element) -> None:
        """EXCHANGE MEDIUM: ``src``'s cartridge to ``first``, ``first``'s to ``second``
        (which may be ``src``); checked by the caller. A drive that cannot take its
        cartridge leaves every cartridge where it was."""
        a, b = src.medium, first.medium
        assert a is not None and b is not None
        drives = [e for e in (src, first) if e.type == ElementType.DATA_TRANSFER]
        for elem in drives:
            await self._unload(elem)
        loaded: list[Element] = []
        try:
            for elem, medium in ((first, a), (second, b)):
                if elem.type == ElementType.DATA_TRANSFER:
                    await self._load(elem, medium)
                    loaded.append(elem)
        except (MediumLoadError, OSError, ValueError) as exc:
            for elem in loaded:
                await self._unload(elem)
            for elem, medium in ((src, a), (first, b)):
                if elem in drives:
                    await self._reload(elem, medium)
            raise CheckCondition(SenseKey.MEDIUM_ERROR, INCOMPATIBLE_MEDIUM_INSTALLED) from exc
        homes = (_home(src), _home(first))
        src.medium, src.source = None, None
        first.medium, first.source = a, homes[0]
        second.medium, second.source = b, homes[1]

    def state(self) -> list[dict[str, str]]:
        """The element configuration as ``--params`` sets, in the order that rebuilds it:
        media_home, ranges, drive bindings, then the cartridges (pytgtd --persist, dump)."""
        out: list[dict[str, str]] = []
        if self.media_home:
            out.append({"media_home": self.media_home})
        for etype in ElementType:
            for start, count in _runs(e.address for e in self.of_type(etype)):
                out.append({"element_type": str(int(etype)), "start_address": str(start),
                            "quantity": str(count)})
        for elem in self.of_type(ElementType.DATA_TRANSFER):
            if elem.drive is not None:
                out.append({"element_type": "4", "address": str(elem.address),
                            "tid": str(elem.drive[0]), "lun": str(elem.drive[1])})
        for elem in self.ordered():
            if elem.medium is not None:
                item = {"element_type": str(int(elem.type)), "address": str(elem.address),
                        "barcode": elem.medium.barcode}
                if elem.medium.volume_tag:
                    item["volume_tag"] = elem.medium.volume_tag
                if elem.medium.sides != 1:
                    item["sides"] = str(elem.medium.sides)
                out.append(item)
        return out


def _home(elem: Element) -> int | None:
    """The source address a cartridge leaving ``elem`` carries (SVALID, SMC-3 6.12.3):
    ``elem`` itself if it is a storage or import/export element, else where it came from."""
    if elem.type in (ElementType.STORAGE, ElementType.IMPORT_EXPORT):
        return elem.address
    return elem.source


def _runs(addresses: Iterable[int]) -> list[tuple[int, int]]:
    """Consecutive addresses as (start, count) runs."""
    runs: list[list[int]] = []
    for addr in addresses:
        if runs and runs[-1][0] + runs[-1][1] == addr:
            runs[-1][1] += 1
        else:
            runs.append([addr, 1])
    return [(start, count) for start, count in runs]


def _changer(lu: LogicalUnit) -> MediumChanger:
    assert isinstance(lu, MediumChanger)
    return lu


# INQUIRY (SPC-4 6.6.2): the standard data names SMC-3 in the fourth version descriptor.
async def inquiry(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    evpd, _, alloc = spc.check_inquiry_cdb(task.cdb)
    if evpd:
        return await spc.inquiry(lu, task)
    data = bytearray(spc.standard_inquiry(lu))
    _U16.pack_into(data, 64, SMC3_VERSION)
    return spc.data_in(data, alloc)


# READ ELEMENT STATUS (SMC-3 6.12).
def _volume_tag(medium: Medium | None) -> bytes:
    """PRIMARY VOLUME TAG information (SMC-3 6.12.5): identifier, then sequence 0."""
    tag = medium.tag if medium is not None else ""
    return tag.encode("ascii").ljust(VOLUME_TAG_LENGTH) + bytes(4)


def _identifier(lu: LogicalUnit | None) -> bytes:
    """A drive's T10 vendor ID designator, as in its VPD page 83h (SPC-4 7.8.6.4)."""
    if lu is None:
        return b""
    return (lu.vendor_id.encode("ascii", "replace").ljust(8)[:8]
            + lu.scsi_id.encode("ascii", "replace"))


def _descriptor(ch: MediumChanger, elem: Element, voltag: bool, ident_len: int | None) -> bytes:
    """One element descriptor (SMC-3 6.12.4-6.12.8)."""
    full = elem.medium is not None
    flags = 0x01 if full else 0  # FULL
    drive = ch.drive_lu(elem) if elem.type == ElementType.DATA_TRANSFER else None
    if elem.type == ElementType.IMPORT_EXPORT:
        flags |= 0x30 | 0x08 | (0x02 if full and elem.source is None else 0)  # INENAB
        # EXENAB, ACCESS, IMPEXP (placed by an operator, not by the transport)
    elif elem.type == ElementType.STORAGE:
        flags |= 0x08  # ACCESS
    elif elem.type == ElementType.DATA_TRANSFER:
        if drive is None or not drive.prevent_removal:
            flags |= 0x08  # ACCESS: the cartridge may be moved out
        if elem.drive is not None and drive is None:
            flags |= 0x04  # EXCEPT: the drive it names does not exist
    asc = (0x3B, 0x11) if flags & 0x04 else (0, 0)  # MEDIUM MAGAZINE NOT ACCESSIBLE
    svalid = elem.source is not None and full
    out = (_U16.pack(elem.address) + bytes((flags, 0, *asc, 0, 0, 0, 0x80 if svalid else 0))
           + _U16.pack(elem.source if svalid and elem.source is not None else 0))
    if voltag:
        out += _volume_tag(elem.medium)
    if ident_len is None:
        return out + bytes(4)  # CODE SET, IDENTIFIER TYPE, reserved, IDENTIFIER LENGTH 0
    ident = _identifier(drive).ljust(ident_len)
    return out + bytes((0x02, 0x01, 0, ident_len)) + ident  # ASCII, T10 vendor ID


async def read_element_status(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    voltag, code = bool(cdb[1] & 0x10), cdb[1] & 0x0F
    if code > 4:  # bits 7-5: SCSI-2's LUN field, which mtx still fills; ignored
        raise invalid_field(1, 3)
    start, count = _U16.unpack_from(cdb, 2)[0], _U16.unpack_from(cdb, 4)[0]
    dvcid, alloc = bool(cdb[6] & 0x01), int.from_bytes(cdb[7:10], "big")
    ch = _changer(lu)
    chosen = [e for e in ch.ordered() if (not code or e.type == code) and e.address >= start]
    chosen = chosen[:count]
    pages: list[bytes] = []
    i = 0
    while i < len(chosen):
        etype = chosen[i].type
        j = i
        while j < len(chosen) and chosen[j].type == etype:
            j += 1
        group = chosen[i:j]
        ident_len: int | None = None
        if dvcid and etype == ElementType.DATA_TRANSFER:
            longest = max(len(_identifier(ch.drive_lu(e))) for e in group)
            ident_len = (longest + 3) // 4 * 4
        descs = [_descriptor(ch, e, voltag, ident_len) for e in group]
        body = b"".join(descs)
        head = bytes((etype, 0x80 if voltag else 0)) + _U16.pack(len(descs[0])) \
            + b"\0" + len(body).to_bytes(3, "big")
        pages.append(head + body)
        i = j
    report = b"".join(pages)
    first = chosen[0].address if chosen else 0
    header = _U16.pack(first) + _U16.pack(len(chosen)) + b"\0" + len(report).to_bytes(3, "big")
    return spc.data_in(header + report, alloc)


# MOVE MEDIUM (SMC-3 6.9), POSITION TO ELEMENT (6.10), the INITIALIZE ELEMENT STATUS
# commands (6.5, 6.6) and PREVENT ALLOW MEDIUM REMOVAL (6.11).
def _transport(ch: MediumChanger, address: int) -> None:
    """0 names the default transport; anything else must be a transport element."""
    if address and ch.element(address).type != ElementType.MEDIUM_TRANSPORT:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, INVALID_ELEMENT_ADDRESS)


def _removal_prevented(ch: MediumChanger, elem: Element) -> bool:
    if elem.type == ElementType.IMPORT_EXPORT:
        return ch.prevent_removal  # the changer's own PREVENT: no import, no export
    if elem.type == ElementType.DATA_TRANSFER:
        drive = ch.drive_lu(elem)
        return drive is not None and drive.prevent_removal  # the drive is in use
    return False


async def move_medium(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    ch = _changer(lu)
    if cdb[10] & 0x01:
        raise invalid_field(10, 0)  # INVERT: the transport cannot rotate media (page 1Eh)
    _transport(ch, _U16.unpack_from(cdb, 2)[0])
    src = ch.element(_U16.unpack_from(cdb, 4)[0])
    dst = ch.element(_U16.unpack_from(cdb, 6)[0])
    if src.medium is None:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, MEDIUM_SOURCE_ELEMENT_EMPTY)
    if src is dst:
        return spc.good()
    if dst.medium is not None:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, MEDIUM_DESTINATION_ELEMENT_FULL)
    if _removal_prevented(ch, src) or _removal_prevented(ch, dst):
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.MEDIUM_REMOVAL_PREVENTED)
    await ch.move(src, dst)
    return spc.good()


async def exchange_medium(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    """EXCHANGE MEDIUM (SMC-3 6.2): source to first destination, first destination to
    second destination (the source, for a swap)."""
    cdb = task.cdb
    ch = _changer(lu)
    if cdb[10] & 0x03:
        raise invalid_field(10, 1 if cdb[10] & 0x02 else 0)  # INV1, INV2: no rotation
    _transport(ch, _U16.unpack_from(cdb, 2)[0])
    src = ch.element(_U16.unpack_from(cdb, 4)[0])
    first = ch.element(_U16.unpack_from(cdb, 6)[0])
    second = ch.element(_U16.unpack_from(cdb, 8)[0])
    if first is src or second is first:
        raise invalid_field(6 if first is src else 8)  # three places, at most two the same
    if src.medium is None or first.medium is None:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, MEDIUM_SOURCE_ELEMENT_EMPTY)
    if second is not src and second.medium is not None:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, MEDIUM_DESTINATION_ELEMENT_FULL)
    if any(_removal_prevented(ch, e) for e in (src, first, second)):
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.MEDIUM_REMOVAL_PREVENTED)
    await ch.exchange(src, first, second)
    return spc.good()


async def position_to_element(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    ch = _changer(lu)
    if cdb[8] & 0x01:
        raise invalid_field(8, 0)  # INVERT
    _transport(ch, _U16.unpack_from(cdb, 2)[0])
    ch.element(_U16.unpack_from(cdb, 4)[0])
    return spc.good()


async def initialize_element_status(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    """The inventory is always known: nothing to scan."""
    return spc.good()


async def initialize_element_status_with_range(lu: LogicalUnit, task: ScsiTask) -> ScsiResult:
    cdb = task.cdb
    if cdb[1] & 0x1C:  # bits 7-5: SCSI-2's LUN field, ignored
        raise invalid_field(1, 2)
    if cdb[1] & 0x01:  # RANGE: the starting address must name an element
        _changer(lu).element(_U16.unpack_from(cdb, 2)[0])
    return spc.good()


# MODE SENSE (SPC-4 6.11-6.12) with the SMC-3 7.3 pages; no block descriptors.
def _element_address_assignment(ch: MediumChanger) -> bytes:
    body = b""
    for etype in ElementType:
        elems = ch.of_type(etype)
        body += _U16.pack(elems[0].address if elems else 0) + _U16.pack(len(elems))
    return bytes((ELEMENT_ADDRESS_ASSIGNMENT, 0x12)) + body + bytes(2)


def _changer_pages(lu: LogicalUnit, page: int, subpage: int, pc: int) -> bytes:
    if pc == mp.PC_SAVED:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, Asc.SAVING_PARAMETERS_NOT_SUPPORTED,
                             field=2, bit=7)
    if subpage not in (0x00, 0xFF):
        raise invalid_field(3)
    changeable = pc == mp.PC_CHANGEABLE
    ch = _changer(lu)
    # device capabilities: every element type stores media, and the transport moves and
    # exchanges between every pair of types
    caps = bytes((0x0F, 0, 0x0F, 0x0F, 0x0F, 0x0F)) + bytes(4) + bytes((0x0F,) * 4) + bytes(4)
    pages = {
        mp.CONTROL: lu.mode.page(mp.CONTROL, pc),
        ELEMENT_ADDRESS_ASSIGNMENT: bytes((ELEMENT_ADDRESS_ASSIGNMENT, 0x12)) + bytes(18)
        if changeable else _element_address_assignment(ch),
        TRANSPORT_GEOMETRY: bytes((TRANSPORT_GEOMETRY, 2, 0, 0)),  # no ROTATE, member 0
        DEVICE_CAPABILITIES: bytes((DEVICE_CAPABILITIES, 0x12))
        + (bytes(18) if changeable else caps),
    }
    if page == mp.ALL_PAGES:
        return b"".join(pages.values())
    if page not in pages:
        raise invalid_field(2, 5)
    return pages[page]


mode_sense_6, mode_sense_10 = spc.mode_sense_without_descriptors(_changer_pages)


def _rows() -> list[Command]:
    O, R, A = OperationCode, PR_READ, PR_ALLOWED  # noqa: N806, E741
    keep = {O.TEST_UNIT_READY, O.REQUEST_SENSE, O.REPORT_LUNS, O.MODE_SELECT_6,
            O.MODE_SELECT_10, O.RESERVE_6, O.RESERVE_10, O.RELEASE_6, O.RELEASE_10,
            O.PERSISTENT_RESERVE_IN, O.PERSISTENT_RESERVE_OUT, O.MAINTENANCE_IN}
    return [
        *(row for row in spc.SPC_COMMANDS if row.opcode in keep),
        Command(O.INQUIRY, "INQUIRY", inquiry, skip_ua=True, medium=False, conflicts=False,
                pr_access=A),
        Command(O.MODE_SENSE_6, "MODE SENSE(6)", mode_sense_6, medium=False, pr_access=R),
        Command(O.MODE_SENSE_10, "MODE SENSE(10)", mode_sense_10, medium=False, pr_access=R),
        Command(O.PREVENT_ALLOW_MEDIUM_REMOVAL, "PREVENT ALLOW MEDIUM REMOVAL",
                spc.prevent_allow_medium_removal, medium=False, pr_access=R),
        Command(INITIALIZE_ELEMENT_STATUS, "INITIALIZE ELEMENT STATUS",
                initialize_element_status, pr_access=R),
        Command(INITIALIZE_ELEMENT_STATUS_WITH_RANGE, "INITIALIZE ELEMENT STATUS WITH RANGE",
                initialize_element_status_with_range, pr_access=R),
        Command(POSITION_TO_ELEMENT, "POSITION TO ELEMENT", position_to_element, pr_access=R),
        Command(MOVE_MEDIUM, "MOVE MEDIUM", move_medium),
        Command(EXCHANGE_MEDIUM, "EXCHANGE MEDIUM", exchange_medium),
        Command(READ_ELEMENT_STATUS, "READ ELEMENT STATUS", read_element_status, pr_access=R),
    ]


CHANGER_COMMANDS: list[Command] = _rows()
