"""The tape device type (SSC-3, scsi/ssc.py) with byte-level CDBs through a ScsiTarget."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator

import pytest

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
    assert bytes(r.data) == bytes((11, 0, 0x10, 8, 0, 0, 0, 0, 0, 0, 0, 0))
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
    assert decode_sense(t.run([0x34, 6, 0, 0, 0, 0, 0, 0, 0, 0]).sense) == invalid
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
