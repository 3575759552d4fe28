"""The tape device type (SSC-3, scsi/ssc.py) with byte-level CDBs through a ScsiTarget."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytgt.scsi import ItNexus, ScsiResult, ScsiTarget, create_lu
from pytgt.scsi.sense import decode_sense
from pytgt.scsi.task import Status
from pytgt.stores.memory import MemoryStore
from tests.scsi.conftest import Harness

SIZE = 4 << 20

NO_SENSE, NOT_READY, MEDIUM_ERROR, ILLEGAL, DATA_PROTECT, BLANK, OVERFLOW = (
    0x0, 0x2, 0x3, 0x5, 0x7, 0x8, 0xD)


def make_tape(loop: asyncio.AbstractEventLoop, store: MemoryStore) -> Harness:
    target = ScsiTarget("iqn.2024-01.test:tape", tid=1)
    lu = create_lu("tape", 1, store, tid=1, path="mem", bstype="memory")
    target.add_lu(lu)
    h = Harness(target, lu, store, ItNexus("n1", "iqn.2024-01.test:n1"), loop)
    h.nexus = h.new_nexus("n1")
    return h


@pytest.fixture
def t() -> Iterator[Harness]:
    loop = asyncio.new_event_loop()
    yield make_tape(loop, MemoryStore(SIZE))
    loop.close()


def c24(n: int) -> list[int]:
    return list((n & 0xFFFFFF).to_bytes(3, "big"))


def write(t: Harness, data: bytes, fixed: bool = False, count: int | None = None) -> ScsiResult:
    n = count if count is not None else len(data)
    return t.run([0x0A, int(fixed), *c24(n), 0], data)


def read(t: Harness, n: int, fixed: bool = False, sili: bool = False) -> ScsiResult:
    return t.run([0x08, int(fixed) | (2 if sili else 0), *c24(n), 0])


def weof(t: Harness, n: int = 1, setmark: bool = False) -> ScsiResult:
    return t.run([0x10, 2 if setmark else 0, *c24(n), 0])


def space(t: Harness, code: int, n: int) -> ScsiResult:
    return t.run([0x11, code, *c24(n), 0])


def rewind(t: Harness) -> None:
    assert t.run([0x01, 0, 0, 0, 0, 0]).status == Status.GOOD


def position(t: Harness) -> tuple[int, int]:
    r = t.run([0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    assert r.status == Status.GOOD and len(r.data) == 20
    flags, _, first = struct.unpack_from(">BB2xI", bytes(r.data))
    return flags, first


def info(r: ScsiResult) -> tuple[int, int, int, int, int]:
    """(key, asc, ascq, flags FILEMARK|EOM|ILI, signed INFORMATION) of fixed sense."""
    s = r.sense
    assert r.status == Status.CHECK_CONDITION and s[0] & 0x80  # VALID
    key, asc, ascq = decode_sense(s)
    return key, asc, ascq, s[2] & 0xE0, struct.unpack_from(">i", s, 3)[0]


def test_inquiry_and_block_limits(t: Harness) -> None:
    r = t.run([0x12, 0, 0, 0, 96, 0])
    assert r.data[0] == 0x01 and r.data[1] == 0x80  # sequential access, RMB
    assert bytes(r.data[16:28]) == b"VIRTUAL-TAPE"
    assert bytes(r.data[58:66]) == bytes.fromhex("00a0096004600400")  # SAM-5 iSCSI SPC-4 SSC-3
    assert t.run([0x12, 1, 0x80, 0, 255, 0]).data[1] == 0x80  # VPD unit serial number
    r = t.run([0x1A, 0, 0x00, 0, 255, 0])  # page 0: header and block descriptor only
    assert bytes(r.data) == bytes((11, 0x58, 0x10, 8, 0x58, 0, 0, 0, 0, 0, 0, 0))  # LTO-5
    r = t.run([0x05, 0, 0, 0, 0, 0])
    assert bytes(r.data) == bytes((0, 0xFF, 0xFF, 0xFF, 0, 1))
    assert t.sense([0x00, 0, 0, 0, 0, 0]) is None


def test_variable_write_read_across_filemark(t: Harness) -> None:
    assert write(t, b"a" * 100).status == Status.GOOD
    assert write(t, b"b" * 300).status == Status.GOOD
    assert weof(t).status == Status.GOOD
    assert write(t, b"c" * 10).status == Status.GOOD
    assert position(t) == (0, 4)
    rewind(t)
    assert position(t) == (0x80, 0)  # BOP
    assert bytes(read(t, 100).data) == b"a" * 100
    assert bytes(read(t, 300).data) == b"b" * 300
    r = read(t, 512)
    assert info(r) == (NO_SENSE, 0, 1, 0x80, 512)  # FILEMARK DETECTED, whole residue
    assert bytes(read(t, 10).data) == b"c" * 10
    assert info(read(t, 10)) == (BLANK, 0, 5, 0, 10)  # END-OF-DATA DETECTED


def test_incorrect_length(t: Harness) -> None:
    write(t, b"x" * 100)
    write(t, b"y" * 100)
    write(t, b"z" * 100)
    rewind(t)
    r = read(t, 60)  # overlength block: ILI, residue negative
    assert info(r) == (NO_SENSE, 0, 0, 0x20, -40) and bytes(r.data) == b"x" * 60
    r = read(t, 150)  # underlength block: ILI, positive residue, the block's data
    assert info(r) == (NO_SENSE, 0, 0, 0x20, 50) and bytes(r.data) == b"y" * 100
    r = read(t, 150, sili=True)  # SILI suppresses the underlength report
    assert r.status == Status.GOOD and bytes(r.data) == b"z" * 100


def mode_select_block_length(t: Harness, length: int) -> ScsiResult:
    param = bytes((0, 0, 0x10, 8, 0, 0, 0, 0, 0, *length.to_bytes(3, "big")))
    return t.run([0x15, 0x10, 0, 0, len(param), 0], param)


def test_fixed_mode(t: Harness) -> None:
    assert write(t, b"q" * 1024, fixed=True, count=2).status == Status.CHECK_CONDITION
    assert mode_select_block_length(t, 512).status == Status.GOOD
    r = t.run([0x1A, 0, 0x3F, 0, 255, 0])
    assert r.data[3] == 8 and bytes(r.data[9:12]) == b"\x00\x02\x00"  # block length 512
    data = bytes(range(256)) * 6
    assert write(t, data, fixed=True, count=3).status == Status.GOOD
    weof(t)
    write(t, b"s" * 512, fixed=True, count=1)
    rewind(t)
    assert bytes(read(t, 2, fixed=True).data) == data[:1024]
    r = read(t, 3, fixed=True)  # one block, then the filemark: residue 2 blocks
    assert info(r) == (NO_SENSE, 0, 1, 0x80, 2) and bytes(r.data) == data[1024:]
    assert bytes(read(t, 1, fixed=True).data) == b"s" * 512
    assert decode_sense(read(t, 1, fixed=True, sili=True).sense) == (ILLEGAL, 0x24, 0)
    assert mode_select_block_length(t, 0).status == Status.GOOD  # back to variable
    assert t.run([0x1A, 0, 0x3F, 0, 255, 0]).data[9:12] == b"\0\0\0"


def test_space_blocks_and_filemarks(t: Harness) -> None:
    for i in range(3):  # 0:a0 1:a1 2:FM 3:b0 4:b1 5:FM 6:c0 7:c1 8:FM  (EOD at 9)
        write(t, bytes([i]) * 10)
        write(t, bytes([i]) * 20)
        weof(t)
    rewind(t)
    assert space(t, 1, 2).status == Status.GOOD  # forward two filemarks
    assert position(t)[1] == 6
    assert space(t, 1, -1).status == Status.GOOD  # back over one: BOP side of it
    assert position(t)[1] == 5
    assert space(t, 0, -1).status == Status.GOOD
    assert bytes(read(t, 20).data) == b"\1" * 20
    r = space(t, 0, 5)  # forward blocks: the filemark stops it, past the mark
    assert info(r) == (NO_SENSE, 0, 1, 0x80, 5) and position(t)[1] == 6
    r = space(t, 0, -3)  # backward blocks: the mark at 5 comes first, crossed
    assert info(r) == (NO_SENSE, 0, 1, 0x80, 3) and position(t)[1] == 5
    r = space(t, 1, 10)  # too many filemarks: EOD
    assert info(r) == (BLANK, 0, 5, 0, 8) and position(t)[1] == 9
    r = space(t, 1, -4)  # back past BOP: EOM, BEGINNING-OF-PARTITION/MEDIUM DETECTED
    assert info(r) == (NO_SENSE, 0, 4, 0x40, 1) and position(t) == (0x80, 0)
    assert space(t, 3, 0).status == Status.GOOD and position(t)[1] == 9  # EOD
    assert decode_sense(space(t, 2, 1).sense) == (ILLEGAL, 0x24, 0)


def test_setmarks(t: Harness) -> None:
    write(t, b"a")
    weof(t, setmark=True)
    write(t, b"b")
    rewind(t)
    assert space(t, 4, 1).status == Status.GOOD and position(t)[1] == 2
    rewind(t)
    read(t, 1)
    assert info(read(t, 1))[:4] == (NO_SENSE, 0, 3, 0x80)  # SETMARK DETECTED


def test_locate_and_overwrite(t: Harness) -> None:
    for i in range(5):
        write(t, bytes([i]) * 8)
    locate = [0x2B, 0, 0, 0, 0, 0, 2, 0, 0, 0]
    assert t.run(locate).status == Status.GOOD and position(t)[1] == 2
    assert bytes(read(t, 8).data) == b"\2" * 8
    locate[6] = 9
    assert info(t.run(locate))[:3] == (BLANK, 0, 5) and position(t)[1] == 5
    locate[6] = 1
    t.run(locate)
    write(t, b"new")  # writing ends the data here
    rewind(t)
    assert space(t, 3, 0).status == Status.GOOD and position(t)[1] == 2
    t.run(locate)
    assert bytes(read(t, 3).data) == b"new"
    assert info(read(t, 8))[:3] == (BLANK, 0, 5)


def test_erase_and_blank_tape(t: Harness) -> None:
    assert info(read(t, 10))[:3] == (BLANK, 0, 5)  # a blank (zeroed) medium
    write(t, b"data")
    rewind(t)
    assert t.run([0x19, 1, 0, 0, 0, 0]).status == Status.GOOD
    assert info(read(t, 10))[:3] == (BLANK, 0, 5)


def test_medium_persists(t: Harness) -> None:
    write(t, b"kept" * 10)
    weof(t, 2)
    t2 = make_tape(t.loop, t.store)  # the same medium in a new LU
    assert bytes(read(t2, 40).data) == b"kept" * 10
    assert space(t2, 1, 2).status == Status.GOOD and position(t2)[1] == 3
    assert t.store._buf[:8] == b"PYTGTAPE"


def test_corrupt_medium(t: Harness) -> None:
    t.store._buf[:8] = b"garbage!"
    assert decode_sense(read(t, 1).sense) == (MEDIUM_ERROR, 0x31, 0)


def test_tgtimg_medium_refused_pytgtimg_label_kept(t: Harness) -> None:
    """A tgt tgtimg image (BOT block header type 10h at bytes 12..15) is a format error;
    a pytgtimg-made header keeps its label through writes (docs/tape.md)."""
    from pytgt.scsi.tape_media import Label, MediaType, format_header, parse_label

    t.store._buf[:16] = bytes.fromhex("4f20100c000000000000000a00000010")
    assert decode_sense(read(t, 1).sense) == (MEDIUM_ERROR, 0x31, 0)
    loop = asyncio.new_event_loop()
    store = MemoryStore(SIZE)
    label = Label("T0001", MediaType.WORM, 1796603189)
    store._buf[:528] = format_header(label)
    t2 = make_tape(loop, store)
    write(t2, b"data")
    assert read(t2, 4).status == Status.CHECK_CONDITION  # at EOD after the write
    assert parse_label(bytes(store._buf[:512])) == label
    loop.close()


def test_write_protect(t: Harness) -> None:
    write(t, b"a")
    t.lu.update_params({"readonly": "1"})
    assert decode_sense(write(t, b"b").sense) == (DATA_PROTECT, 0x27, 0)
    assert decode_sense(weof(t).sense) == (DATA_PROTECT, 0x27, 0)
    assert decode_sense(t.run([0x19, 0, 0, 0, 0, 0]).sense) == (DATA_PROTECT, 0x27, 0)
    assert t.run([0x1A, 0, 0x3F, 0, 255, 0]).data[2] & 0x80  # WP
    rewind(t)
    assert bytes(read(t, 1).data) == b"a"


def test_load_unload(t: Harness) -> None:
    write(t, b"a")
    assert t.run([0x1B, 0, 0, 0, 0, 0]).status == Status.GOOD  # unload
    assert decode_sense(t.run([0, 0, 0, 0, 0, 0]).sense) == (NOT_READY, 0x3A, 0)
    assert decode_sense(read(t, 1).sense) == (NOT_READY, 0x3A, 0)
    assert t.run([0x1B, 0, 0, 0, 1, 0]).status == Status.GOOD  # load: at BOP
    assert position(t) == (0x80, 0)


def test_early_warning_and_overflow() -> None:
    loop = asyncio.new_event_loop()
    try:
        t = make_tape(loop, MemoryStore((1 << 20) + 8192))  # early warning from 8 KiB
        r = write(t, b"a" * 4096)
        assert r.status == Status.GOOD
        r = write(t, b"b" * 4096)  # ends inside the early-warning zone: written, EOM
        assert info(r) == (NO_SENSE, 0, 2, 0x40, 0)
        assert position(t)[0] & 0x01  # BPEW
        r = write(t, b"c" * (1 << 20))  # does not fit: VOLUME OVERFLOW, nothing written
        assert info(r) == (OVERFLOW, 0, 2, 0x40, 1 << 20)
        assert position(t)[1] == 2
    finally:
        loop.close()


def test_bad_fields(t: Harness) -> None:
    invalid = (ILLEGAL, 0x24, 0)
    assert decode_sense(t.run([0x34, 7, 0, 0, 0, 0, 0, 0, 0, 0]).sense) == invalid
    assert decode_sense(t.run([0x0A, 0x02, 0, 0, 1, 0], b"x").sense) == invalid
    assert decode_sense(t.run([0x2B, 2, 0, 0, 0, 0, 0, 0, 1, 0]).sense) == invalid
    assert decode_sense(t.run([0x1B, 0, 0, 0, 5, 0]).sense) == invalid
    bad_density = bytes((0, 0, 0x10, 8, 0x42, 0, 0, 0, 0, 0, 2, 0))
    assert decode_sense(t.run([0x15, 0x10, 0, 0, 12, 0], bad_density).sense) == \
        (ILLEGAL, 0x26, 0)
    assert decode_sense(t.run([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]).sense) == \
        (ILLEGAL, 0x20, 0)  # READ(10) is a disk command


def test_descriptor_sense_stream_bits(t: Harness) -> None:
    control = bytes.fromhex("0a0a04100040 0000ffff0000")  # the control page with D_SENSE
    assert t.run([0x15, 0x10, 0, 0, 16, 0], bytes((0, 0, 0x10, 0)) + control).status == 0
    r = read(t, 5)
    assert r.sense[0] == 0x72 and decode_sense(r.sense) == (BLANK, 0, 5)
    assert r.sense[8:12] == b"\x00\x0a\x80\x00" and len(r.sense) == 20
    write(t, b"a")
    weof(t)
    rewind(t)
    read(t, 1)
    r = read(t, 5)
    assert r.sense[-4:] == b"\x04\x02\x00\x80"  # FILEMARK in the stream descriptor


def pointer(r: ScsiResult) -> tuple[bool, int]:
    """(C/D, FIELD POINTER) of fixed sense's sense-key specific bytes."""
    s = r.sense
    assert s[15] & 0x80  # SKSV
    return bool(s[15] & 0x40), struct.unpack_from(">H", s, 16)[0]


def mode_page(t: Harness, code: int, pc: int = 0) -> bytes:
    """One page from MODE SENSE(6) with DBD."""
    r = t.run([0x1A, 0x08, pc << 6 | code, 0, 255, 0])
    assert r.status == Status.GOOD and r.data[3] == 0
    return bytes(r.data[4:])


def mode_select_page(t: Harness, page: bytes) -> ScsiResult:
    """MODE SELECT(6), PF=1, as Linux st sends it: the header's buffered mode kept."""
    param = bytes((0, 0, 0x10, 0)) + page
    return t.run([0x15, 0x10, 0, 0, len(param), 0], param)


def test_mode_pages_tgt_set(t: Harness) -> None:
    """MODE SENSE 3Fh: tgt's tape pages 01h 02h 0Ah 0Fh 10h 1Ch 1Dh (SSC-3 8.3)."""
    r = t.run([0x5A, 0x08, 0x3F, 0, 0, 0, 0, 0x10, 0, 0])
    data, pos, codes = bytes(r.data), 8, []
    while pos < len(data):
        codes.append((data[pos], data[pos + 1]))
        pos += 2 + data[pos + 1]
    assert codes == [(0x01, 10), (0x02, 14), (0x0A, 10), (0x0F, 14), (0x10, 14),
                     (0x1C, 10), (0x1D, 30)]
    assert mode_page(t, 0x01) == bytes((0x01, 10)) + bytes(10)  # no retries, no flags
    # data compression: DCC=1, DCE=0, DDE=1, the default algorithm; DCE changeable
    assert mode_page(t, 0x0F) == bytes.fromhex("0f0e 4080 00000001 00000000 00000000")
    assert mode_page(t, 0x0F, pc=1) == bytes.fromhex("0f0e 80") + bytes(13)
    # device configuration: LOIS, RSMK; EOD format-defined, EEG, SEW; SWP changeable
    dc = mode_page(t, 0x10)
    assert dc == bytes.fromhex("100e 00 00 00 00 0000 60 00 38 000000 00 00")
    assert mode_page(t, 0x10, pc=1)[10::4] == b"\x04\x01"  # bytes 10 (SWP) and 14
    assert mode_page(t, 0x1D) == bytes((0x1D, 30)) + bytes(30)  # WORMM=0: a data tape


def test_data_compression_enable(t: Harness) -> None:
    """st's MTCOMPRESSION: DCE set through page 0Fh, mirrored in page 10h byte 14."""
    page = bytearray(mode_page(t, 0x0F))
    page[2] |= 0x80
    assert mode_select_page(t, bytes(page)).status == Status.GOOD
    assert mode_page(t, 0x0F)[2] == 0xC0 and mode_page(t, 0x10)[14] == 1
    assert mode_page(t, 0x0F, pc=2)[2] == 0x40  # the default: off
    write(t, b"stored as written")
    rewind(t)
    assert bytes(read(t, 17).data) == b"stored as written"
    page[4:8] = b"\0\0\0\x10"  # another algorithm: not changeable
    r = mode_select_page(t, bytes(page))
    assert decode_sense(r.sense) == (ILLEGAL, 0x26, 0) and pointer(r) == (False, 4 + 7)
    dc = bytearray(mode_page(t, 0x10))
    dc[14] = 0
    assert mode_select_page(t, bytes(dc)).status == Status.GOOD
    assert mode_page(t, 0x0F)[2] == 0x40
    dc[14] = 2
    r = mode_select_page(t, bytes(dc))
    assert decode_sense(r.sense) == (ILLEGAL, 0x26, 0) and pointer(r) == (False, 4 + 14)


def test_device_configuration_swp(t: Harness) -> None:
    """SWP of the device configuration page write-protects the LU, as the control page's."""
    write(t, b"a")
    dc = bytearray(mode_page(t, 0x10))
    dc[10] |= 0x04
    assert mode_select_page(t, bytes(dc)).status == Status.GOOD
    assert t.run([0x1A, 0, 0x10, 0, 255, 0]).data[2] & 0x80  # WP in the header
    assert mode_page(t, 0x0A)[4] & 0x08  # the control page's SWP too
    assert decode_sense(write(t, b"b").sense) == (DATA_PROTECT, 0x27, 0)
    dc[10] &= ~0x04
    assert mode_select_page(t, bytes(dc)).status == Status.GOOD
    assert write(t, b"b").status == Status.GOOD
    dc[8] = 0  # LOIS is not changeable
    r = mode_select_page(t, bytes(dc))
    assert decode_sense(r.sense) == (ILLEGAL, 0x26, 0) and pointer(r) == (False, 4 + 8)


def read_position(t: Harness, sa: int, alloc: int = 0) -> ScsiResult:
    return t.run([0x34, sa, 0, 0, 0, 0, 0, *alloc.to_bytes(2, "big"), 0])


def test_read_position_long_and_extended(t: Harness) -> None:
    write(t, b"a")
    weof(t)
    write(t, b"b")
    weof(t, setmark=True)
    write(t, b"c")
    weof(t)  # 0:a 1:FM 2:b 3:SM 4:c 5:FM, EOD at 6
    rewind(t)
    long = bytes(read_position(t, 6).data)
    assert long == bytes((0x80, 0, 0, 0)) + bytes(28)  # BOP, partition 0, all at 0
    space(t, 1, 2)  # past both filemarks (the setmark is not one)
    long = bytes(read_position(t, 6).data)
    assert len(long) == 32 and long[0] == 0
    assert struct.unpack(">IQQQ", long[4:]) == (0, 6, 2, 1)  # object 6, 2 files, 1 set
    ext = bytes(read_position(t, 8, 32).data)
    assert ext[:4] == bytes((0, 0, 0, 0x1C)) and ext[4:8] == bytes(4)
    assert struct.unpack(">QQQ", ext[8:]) == (6, 6, 0)  # first, last, bytes buffered
    assert bytes(read_position(t, 8, 10).data) == ext[:10]  # ALLOCATION LENGTH
    rewind(t)
    assert read_position(t, 8, 32).data[0] == 0x80  # BOP
    r = read_position(t, 0, 20)  # the short form takes no allocation length
    assert decode_sense(r.sense) == (ILLEGAL, 0x24, 0) and pointer(r) == (True, 7)
    r = read_position(t, 6, 32)
    assert decode_sense(r.sense) == (ILLEGAL, 0x24, 0) and pointer(r) == (True, 7)


def space16(t: Harness, code: int, n: int, plen: int = 0) -> ScsiResult:
    return t.run([0x91, code, 0, 0, *n.to_bytes(8, "big", signed=True),
                  *plen.to_bytes(2, "big"), 0, 0])


def locate16(t: Harness, ident: int, dest: int = 0, cp: bool = False,
             partition: int = 0) -> ScsiResult:
    return t.run([0x92, dest << 3 | (2 if cp else 0), 0, partition,
                  *ident.to_bytes(8, "big"), 0, 0, 0, 0])


def test_space_16_and_locate_16(t: Harness) -> None:
    for i in range(3):  # 0:a0 1:FM 2:a1 3:FM 4:a2 5:FM  (EOD at 6)
        write(t, bytes([i]) * 4)
        weof(t)
    rewind(t)
    assert space16(t, 1, 2).status == Status.GOOD and position(t)[1] == 4
    assert space16(t, 1, -1).status == Status.GOOD and position(t)[1] == 3
    assert space16(t, 0, -1).status == Status.GOOD and position(t)[1] == 2
    r = space16(t, 1, 1 << 40)  # to EOD: BLANK CHECK, residue (low 32 bits)
    assert info(r)[:3] == (BLANK, 0, 5) and position(t)[1] == 6
    assert space16(t, 3, 0).status == Status.GOOD
    r = space16(t, 1, 1, plen=8)
    assert decode_sense(r.sense) == (ILLEGAL, 0x24, 0) and pointer(r) == (True, 12)
    assert locate16(t, 2).status == Status.GOOD and position(t)[1] == 2
    assert bytes(read(t, 4).data) == b"\1" * 4
    assert locate16(t, 2, dest=1).status == Status.GOOD and position(t)[1] == 4  # file 2
    assert bytes(read(t, 4).data) == b"\2" * 4
    assert locate16(t, 0, dest=1).status == Status.GOOD and position(t) == (0x80, 0)
    assert locate16(t, 0, dest=3).status == Status.GOOD and position(t)[1] == 6  # EOD
    r = locate16(t, 4, dest=1)  # only 3 filemarks: EOD
    assert info(r)[:3] == (BLANK, 0, 5) and position(t)[1] == 6
    r = locate16(t, 9)
    assert info(r)[:3] == (BLANK, 0, 5) and position(t)[1] == 6
    r = locate16(t, 0, dest=2)
    assert decode_sense(r.sense) == (ILLEGAL, 0x24, 0) and pointer(r) == (True, 1)
    r = locate16(t, 0, cp=True, partition=1)
    assert decode_sense(r.sense) == (ILLEGAL, 0x24, 0) and pointer(r) == (True, 3)
    assert locate16(t, 1, cp=True).status == Status.GOOD  # partition 0 is fine


def labelled(media_type: int) -> Iterator[Harness]:
    from pytgt.scsi.tape_media import Label, MediaType, format_header

    loop = asyncio.new_event_loop()
    store = MemoryStore(SIZE)
    store._buf[:528] = format_header(Label("L0001", MediaType(media_type)))
    yield make_tape(loop, store)
    loop.close()


def test_worm_medium() -> None:
    """WORM (pytgtimg --type worm): append only; filemarks just before EOD may be
    overwritten (SSC-3 WORM mode, medium configuration page 1Dh)."""
    for t in labelled(2):
        assert mode_page(t, 0x1D)[2:6] == bytes((0x01, 0, 0, 0x03))  # WORMM
        assert not t.run([0x1A, 0, 0, 0, 255, 0]).data[2] & 0x80  # not write-protected
        write(t, b"one")
        weof(t, 2)
        space(t, 1, -2)  # before both filemarks: they may be overwritten
        assert write(t, b"two").status == Status.GOOD
        weof(t)
        rewind(t)
        r = write(t, b"over")
        assert decode_sense(r.sense) == (DATA_PROTECT, 0x30, 0x0C)
        assert decode_sense(weof(t).sense) == (DATA_PROTECT, 0x30, 0x0C)
        assert decode_sense(t.run([0x19, 0, 0, 0, 0, 0]).sense) == (DATA_PROTECT, 0x30, 0x0C)
        assert bytes(read(t, 3).data) == b"one"
        assert bytes(read(t, 3).data) == b"two"
        assert space(t, 3, 0).status == Status.GOOD
        assert t.run([0x19, 0, 0, 0, 0, 0]).status == Status.GOOD  # nothing after EOD


def test_cleaning_cartridge() -> None:
    for t in labelled(1):
        assert decode_sense(read(t, 1).sense) == (NOT_READY, 0x30, 0x03)
        assert decode_sense(write(t, b"x").sense) == (NOT_READY, 0x30, 0x03)
        assert mode_page(t, 0x1D)[2] == 0  # MODE SENSE still answers


TAPE_OPCODES = [0x00, 0x01, 0x05, 0x08, 0x0A, 0x10, 0x11, 0x12, 0x15, 0x19, 0x1A, 0x1B,
                0x1E, 0x2B, 0x34, 0x44, 0x4C, 0x4D, 0x55, 0x5A, 0x8C, 0x8D, 0x91, 0x92]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.tuples(st.sampled_from(TAPE_OPCODES), st.binary(min_size=15,
                                                                          max_size=15),
                                st.integers(0, 15), st.binary(max_size=600)),
                      min_size=1, max_size=12),
       worm=st.booleans())
def test_any_tape_command_sequence_gets_an_answer(
        steps: list[tuple[int, bytes, int, bytes]], worm: bool) -> None:
    """Random stream commands in sequence on one (small) medium: a status and, with
    CHECK CONDITION, decodable sense; never an exception."""
    from pytgt.scsi.tape_media import Label, MediaType, format_header

    loop = asyncio.new_event_loop()
    try:
        store = MemoryStore((1 << 20) + 4096)  # early warning from the start
        if worm:
            store._buf[:528] = format_header(Label("F0001", MediaType.WORM))
        t = make_tape(loop, store)
        for op, rest, n, data in steps:
            cdb = bytes([op]) + rest[:n]
            if op in (0x0A, 0x15, 0x55) and n >= 5:  # keep transfers small
                cdb = cdb[:2] + bytes((0, 0, min(cdb[4], len(data)))) + cdb[5:]
            r = t.run(cdb, data)
            assert r.status in {s.value for s in Status}
            if r.status == Status.CHECK_CONDITION:
                assert 0 <= decode_sense(r.sense)[0] <= 0xE
            else:
                assert not r.sense
    finally:
        loop.close()
