"""tgt's tape images (tgtimg's format) served in place by the tape LU (scsi/tape_media.py).

``tests/vectors/tgt_tape.img`` was made by ``tgtimg --op new --device-type tape --barcode
T1 --size 10 --type data`` and written by tgtd 1.0.85 through pytgt's initiator: variable
blocks "0123456789" and "abc", a filemark, fixed 4-byte blocks "WXYZ" and "wxyz", WRITE
FILEMARKS with WSMK (tgtd writes a filemark), two filemarks, the variable block "Q".
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytgt.cli.pytgtimg import main as pytgtimg_main
from pytgt.scsi.sense import decode_sense
from pytgt.scsi.tape_media import (
    TGT_DATA,
    CleaningCartridge,
    Kind,
    MediaType,
    MediumFormatError,
    TapeMedium,
    TgtType,
    tgt_header,
)
from pytgt.scsi.task import Status
from pytgt.stores.base import StoreIOError
from pytgt.stores.memory import MemoryStore
from tests.scsi.conftest import Harness
from tests.scsi.test_ssc import (
    BLANK,
    DATA_PROTECT,
    MEDIUM_ERROR,
    NO_SENSE,
    NOT_READY,
    OVERFLOW,
    info,
    make_tape,
    position,
    read,
    rewind,
    space,
    weof,
    write,
)

VECTOR = (Path(__file__).parent.parent / "vectors" / "tgt_tape.img").read_bytes()
# tgtimg's END OF DATA header of an empty tape (block 1 at 1152, next 1152)
EMPTY_EOD = bytes.fromhex("72951469000000000000000000000020000000000000000100000000"
                          "0000000000000000000004800000000000000480")
CONTENT = [(Kind.DATA, b"0123456789"), (Kind.DATA, b"abc"), (Kind.FILEMARK, b""),
           (Kind.DATA, b"WXYZ"), (Kind.DATA, b"wxyz"), (Kind.FILEMARK, b""),
           (Kind.FILEMARK, b""), (Kind.FILEMARK, b""), (Kind.DATA, b"Q")]
MB = 1 << 20


def store_of(image: bytes) -> MemoryStore:
    store = MemoryStore(len(image))
    store._buf[:] = image  # noqa: SLF001 - a test fills the store directly
    return store


def _bot(mb: int) -> bytes:
    return tgt_header(TgtType.BOT, mb, 0, 0, 0, TGT_DATA)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


def tape(loop: asyncio.AbstractEventLoop, image: bytes) -> Harness:
    t = make_tape(loop, store_of(image))
    while t.run([0x00] * 6).status:  # TEST UNIT READY past the power-on UA
        pass
    return t


def test_vector_header_and_label(loop: asyncio.AbstractEventLoop) -> None:
    assert _bot(10) == VECTOR[:48]  # the header pytgt computes is tgtimg's
    medium = TapeMedium(store_of(VECTOR))
    recs = loop.run_until_complete(medium.records())
    assert medium.tgt and medium.capacity == 10 * MB
    assert (medium.label.barcode, medium.label.media_type) == ("T1", MediaType.DATA)
    assert medium.label.created == 1796607835
    got = [(r.kind, bytes(loop.run_until_complete(medium.payload(r)))) for r in recs]
    assert got == CONTENT


def test_writes_are_byte_identical_to_tgtd(loop: asyncio.AbstractEventLoop) -> None:
    """The same writes on tgtimg's empty tape give tgtd's file, byte for byte."""
    store = store_of(VECTOR[:TGT_DATA] + EMPTY_EOD)
    medium = TapeMedium(store)
    for kind, payload in CONTENT:
        loop.run_until_complete(medium.write([(kind, payload)]))
    assert store.size == len(VECTOR)
    assert bytes(loop.run_until_complete(store.read(0, store.size))) == VECTOR


def test_read_space_and_position(loop: asyncio.AbstractEventLoop) -> None:
    t = tape(loop, VECTOR)
    r = read(t, 10)
    assert (r.status, bytes(r.data)) == (Status.GOOD, b"0123456789")
    assert info(read(t, 20)) == (NO_SENSE, 0, 0, 0x20, 17)  # "abc": ILI, residue 17
    assert info(read(t, 5)) == (NO_SENSE, 0, 1, 0x80, 5)  # the filemark
    assert t.run([0x15, 0x10, 0, 0, 12, 0], bytes((0, 0, 0x10, 8, 0, 0, 0, 0, 0, 0, 0, 4)),
                 ).status == Status.GOOD  # fixed 4-byte blocks
    r = read(t, 2, fixed=True)
    assert (r.status, bytes(r.data)) == (Status.GOOD, b"WXYZwxyz")
    assert space(t, 1, 3).status == Status.GOOD  # the setmark tgtd wrote is a filemark
    assert position(t) == (0, 8)
    assert info(space(t, 0, 2)) == (BLANK, 0, 5, 0, 1)  # "Q", then END OF DATA
    rewind(t)
    assert position(t) == (0x80, 0)


def test_write_mid_tape_shrinks_the_file(loop: asyncio.AbstractEventLoop) -> None:
    t = tape(loop, VECTOR)
    assert space(t, 1, 1).status == Status.GOOD  # after the first filemark
    assert write(t, b"pytgt").status == Status.GOOD
    assert weof(t, 1, setmark=True).status == Status.GOOD  # a filemark in tgt's format
    store = t.store
    assert store.size == 1309 + 53 + 48 + 48  # ends with the EOD header
    medium = TapeMedium(store)
    recs = loop.run_until_complete(medium.records())
    assert [r.kind for r in recs] == [Kind.DATA, Kind.DATA, Kind.FILEMARK, Kind.DATA,
                                      Kind.FILEMARK]
    assert bytes(loop.run_until_complete(medium.payload(recs[3]))) == b"pytgt"


def test_capacity_is_the_header_field(loop: asyncio.AbstractEventLoop) -> None:
    t = tape(loop, _bot(2) + VECTOR[48:TGT_DATA] + EMPTY_EOD)
    assert write(t, b"x" * (MB // 2)).status == Status.GOOD
    assert info(write(t, b"y" * (MB // 2 + 4096))) == (NO_SENSE, 0, 2, 0x40, 0)  # EW
    size = t.store.size
    assert info(write(t, b"z" * MB)) == (OVERFLOW, 0, 2, 0x40, MB)  # nothing written
    assert t.store.size == size


def test_worm_and_cleaning_media(loop: asyncio.AbstractEventLoop) -> None:
    worm = bytearray(VECTOR)
    worm[0x180] = 4  # tgtimg --type worm (the MAM has no checksum)
    t = tape(loop, bytes(worm))
    assert decode_sense(write(t, b"no").sense) == (DATA_PROTECT, 0x30, 0x0C)
    assert space(t, 3, 0).status == Status.GOOD
    assert write(t, b"appended").status == Status.GOOD
    clean = bytearray(VECTOR)
    clean[0x180] = 2
    t = tape(loop, bytes(clean))
    assert decode_sense(read(t, 1).sense) == (NOT_READY, 0x30, 0x03)


@pytest.mark.parametrize(("image", "message"), [
    (VECTOR[:1000], "truncated tgt tape image (1000 bytes)"),
    (VECTOR[:1200], "truncated tgt tape image: block 1 at offset 1152 ends past the end "
     "of the file"),
    (VECTOR[:1360], "truncated tgt tape image: block 4 at offset 1309 ends past the end "
     "of the file"),
    (VECTOR[:1400], "truncated tgt tape image: no block header at offset 1361"),
    (VECTOR[:-1], "truncated tgt tape image: no block header at offset 1606"),  # no EOD
    (VECTOR[:1210] + b"\xff" + VECTOR[1211:], "bad block header checksum at offset 1210"),
    (VECTOR[:1261] + tgt_header(TgtType.FILEMARK, 0, 7, 1210, 1261, 1309) + VECTOR[1309:],
     "bad block header at offset 1261"),  # block 3 numbered 7, its checksum right
    (VECTOR[:1261] + tgt_header(TgtType.FILEMARK, 0, 3, 1152, 1261, 1309) + VECTOR[1309:],
     "bad block header at offset 1261"),  # a wrong previous offset
    (VECTOR[:0x180] + b"\x09" + VECTOR[0x181:], "unknown tgt media type 9"),
])
def test_damaged_images(loop: asyncio.AbstractEventLoop, image: bytes, message: str,
                        caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(MediumFormatError) as exc:
        loop.run_until_complete(TapeMedium(store_of(image)).records())
    assert str(exc.value) == message
    t = tape(loop, image)
    with caplog.at_level(logging.WARNING, logger="pytgt.scsi"):
        assert decode_sense(read(t, 1).sense) == (MEDIUM_ERROR, 0x31, 0x00)
        assert decode_sense(write(t, b"x").sense) == (MEDIUM_ERROR, 0x31, 0x00)
    assert t.store.size == len(image)  # nothing written, nothing lost
    assert [r.getMessage() for r in caplog.records] == [  # once, with the reason
        f"LUN 1 of target 1: mem: {message}; the medium is refused (MEDIUM FORMAT "
        "CORRUPTED; pytgtimg --op show names the damage)"]


@pytest.mark.parametrize("sizes", [(0, 1, 2, 3, 4, 5, 6), (20000, 3, 70000, 5, 16383, 1)])
def test_many_blocks_index_across_reads(loop: asyncio.AbstractEventLoop,
                                        sizes: tuple[int, ...]) -> None:
    store = store_of(VECTOR[:TGT_DATA] + EMPTY_EOD)
    medium = TapeMedium(store)
    items = [(Kind.DATA, bytes((n % 251,)) * sizes[n % len(sizes)]) if n % 5
             else (Kind.FILEMARK, b"") for n in range(3000 if sizes[0] == 0 else 300)]
    # small blocks: ~150 KB of headers, several read-ahead chunks; big ones: single reads
    loop.run_until_complete(medium.write(items))
    again = TapeMedium(store)
    recs = loop.run_until_complete(again.records())
    assert [(r.kind, bytes(loop.run_until_complete(again.payload(r)))) for r in recs] == items


class FailingStore(MemoryStore):
    """Writes of more than ``limit`` bytes fail (a full disk, say)."""

    limit = 100

    async def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        if len(data) > self.limit:
            raise StoreIOError(28, "No space left on device")
        await super().write(offset, data)


def test_a_failed_write_leaves_the_tape_as_it_was(loop: asyncio.AbstractEventLoop) -> None:
    store = FailingStore(len(VECTOR))
    store._buf[:] = VECTOR  # noqa: SLF001
    t = make_tape(loop, store)
    while t.run([0x00] * 6).status:
        pass
    assert space(t, 3, 0).status == Status.GOOD  # to EOD
    r = write(t, b"x" * 1000)
    assert r.status == Status.CHECK_CONDITION
    recs = loop.run_until_complete(TapeMedium(store).records())
    assert len(recs) == len(CONTENT)  # the old END OF DATA header is still there
    assert store.size == len(VECTOR)  # grown for the write, shrunk back
    assert bytes(loop.run_until_complete(store.read(0, len(VECTOR)))) == VECTOR


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_damage_anywhere_is_a_format_error_or_a_sound_tape(data: st.DataObject) -> None:
    """Flipped bytes or a cut anywhere: the tape indexes, or MediumFormatError; pytgtimg
    shows it or says why in one line; never another exception."""
    image = bytearray(VECTOR)
    for _ in range(data.draw(st.integers(0, 3))):
        image[data.draw(st.integers(0, len(image) - 1))] ^= data.draw(st.integers(1, 255))
    image = image[:data.draw(st.integers(0, len(image)))]
    lp = asyncio.new_event_loop()
    try:
        with contextlib.suppress(MediumFormatError, CleaningCartridge):
            lp.run_until_complete(TapeMedium(store_of(bytes(image))).records())
    finally:
        lp.close()
    with tempfile.NamedTemporaryFile() as f:
        f.write(image)
        f.flush()
        with contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()) as err:
            status = pytgtimg_main(["--op", "show", "--device-type", "tape", "--file", f.name])
        assert status == 0 or (status == 1 and len(err.getvalue().splitlines()) == 1)
