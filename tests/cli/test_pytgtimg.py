"""``pytgtimg``: tape and cd images, their display, errors, and tgt's own tgtimg images."""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import subprocess
from pathlib import Path

import pytest

from pytgt.cli.pytgtimg import EXIT_EINVAL, EXIT_FAILED, MB, main
from pytgt.scsi.tape_media import Kind, MediaType, TapeMedium, parse_label
from pytgt.stores.memory import MemoryStore


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(list(args))
        except SystemExit as exc:  # argparse
            status = int(exc.code or 0)
    return status, out.getvalue(), err.getvalue()


def new_tape(path: Path, *extra: str, barcode: str = "A1", size: str = "2",
             mtype: str = "data") -> tuple[int, str, str]:
    return run("--op", "new", "--device-type", "tape", "--barcode", barcode,
               "--size", size, "--type", mtype, "--file", str(path), *extra)


def test_new_tape_is_an_empty_pytgt_tape(tmp_path: Path) -> None:
    img = tmp_path / "t.img"
    assert new_tape(img, mtype="worm") == (0, f"Created tape image file : {img}\n", "")
    data = img.read_bytes()
    assert len(data) == 2 * MB
    label = parse_label(data[:512])
    assert (label.barcode, label.media_type) == ("A1", MediaType.WORM)
    assert label.created > 0

    async def use() -> list[int]:
        store = MemoryStore(len(data))
        await store.write(0, data)
        medium = TapeMedium(store)
        assert await medium.records() == []
        await medium.write([(Kind.DATA, b"x" * 100), (Kind.FILEMARK, b"")])
        head = bytes(await store.read(0, 512))
        assert parse_label(head) == label  # writing keeps the label
        img.write_bytes(bytes(await store.read(0, store.size)))
        return [r.length for r in await medium.records()]

    assert asyncio.run(use()) == [100, 0]
    status, out, _ = run("--op", "show", "--device-type", "tape", "--file", str(img))
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "Media     : A1" + " " * 29
    assert lines[1] == " type     : WORM"
    assert lines[2].startswith(f"Media serial number : A1_{label.created}, created ")
    assert lines[4] == "Beginning of Tape: Capacity 2 MB, Blk No.: 0, prev 0, curr 0, next 512"
    assert lines[5:] == [
        "       Data block: Blk No. 1, prev 0, curr 512,  next 628, sz 100",
        "         Filemark: Blk No. 2, prev 512, curr 628,  next 644, sz 0",
        "      End of Data: Blk No. 3, prev 628, curr 644,  next 644, sz 0",
    ]


def test_thin_tape_is_sparse(tmp_path: Path) -> None:
    img = tmp_path / "t.img"
    assert new_tape(img, "-T", size="64")[0] == 0
    assert img.stat().st_size == 64 * MB
    assert img.stat().st_blocks * 512 < 64 * MB


def test_show_blank_file(tmp_path: Path) -> None:
    img = tmp_path / "blank.img"
    img.write_bytes(bytes(MB))
    status, out, _ = run("--op", "show", "--device-type", "tape", "--file", str(img))
    assert status == 0 and " type     : Data" in out and "End of Data: Blk No. 1" in out


def test_cd_new_and_show(tmp_path: Path) -> None:
    img = tmp_path / "cd.img"
    assert run("--op", "new", "--device-type", "cd", "--type", "dvd+r", "--size", "3",
               "--file", str(img))[0] == 0
    assert img.read_bytes() == bytes(3 * MB)
    assert run("--op", "show", "--device-type", "cd", "--file", str(img)) == (
        0, f"Media     : DVD+R\nSize      : 3 MB ({3 * MB} bytes)\n", "")


@pytest.mark.parametrize(("args", "message"), [
    (("--barcode", "A1", "--size", "2", "--type", "data"), None),
    (("--size", "2", "--type", "data"), "pytgtimg: Missing the barcode param"),
    (("--barcode", "A1", "--type", "data"), "pytgtimg: Missing the size param"),
    (("--barcode", "A1", "--size", "2", "--type", "foo"),
     "pytgtimg: Media type must be WORM, CLEAN or DATA for tape devices"),
    (("--barcode", "A1", "--size", "0", "--type", "data"), "pytgtimg: bad size: 0"),
    (("--barcode", "A" * 40, "--size", "2", "--type", "data"), None),
])
def test_bad_command_lines(tmp_path: Path, args: tuple[str, ...],
                           message: str | None) -> None:
    img = tmp_path / "t.img"
    if message is None and args[1] == "A1":  # a good one, to make the file exist
        assert run("--op", "new", "--device-type", "tape", *args, "--file", str(img))[0] == 0
        status, _, err = run("--op", "new", "--device-type", "tape", *args,
                             "--file", str(img))
        assert (status, err) == (EXIT_FAILED,
                                 f"pytgtimg: can't create {img}, File exists\n")
        return
    status, _, err = run("--op", "new", "--device-type", "tape", *args, "--file", str(img))
    assert status == EXIT_EINVAL
    if message:
        assert err.splitlines()[0] == message
    assert err.splitlines()[-1] == "Try `pytgtimg --help' for more information."
    assert not img.exists()


def test_bad_op_and_missing_file(tmp_path: Path) -> None:
    assert run("--op", "del", "--device-type", "tape", "--file", "x")[0] == EXIT_EINVAL
    status, _, err = run("--op", "show", "--device-type", "tape",
                         "--file", str(tmp_path / "none"))
    assert status == EXIT_FAILED
    assert err == f"pytgtimg: can't open {tmp_path / 'none'}, No such file or directory\n"


def tgtimg(*args: str) -> str:
    return subprocess.run(["tgtimg", *args], check=True, capture_output=True,
                          text=True).stdout


@pytest.mark.skipif(shutil.which("tgtimg") is None, reason="tgt's tgtimg not installed")
@pytest.mark.parametrize("mtype", ["data", "clean", "worm"])
def test_tgtimg_images_show_as_tgtimg_shows_them(tmp_path: Path, mtype: str) -> None:
    """pytgt reads tgt's format (docs/tape.md): ``--op show`` prints what tgtimg prints."""
    img = tmp_path / "tgt.img"
    tgtimg("--op", "new", "--device-type", "tape", "--barcode", "A1", "--size", "10",
           "--type", mtype, "--file", str(img))
    theirs = tgtimg("--op", "show", "--device-type", "tape", "--file", str(img))
    assert run("--op", "show", "--device-type", "tape", "--file", str(img)) == (0, theirs, "")
    ours = tmp_path / "ours.img"
    assert new_tape(ours, size="10", mtype=mtype)[0] == 0
    mine = run("--op", "show", "--device-type", "tape", "--file", str(ours))[1].splitlines()
    tgt_show = theirs.splitlines()
    assert mine[:2] == tgt_show[:2]  # the same label layout
    assert mine[2].split(",")[0].split("_")[0] == tgt_show[2].split(",")[0].split("_")[0]


def test_tgt_vector_shows_and_damage_is_one_line(tmp_path: Path) -> None:
    vector = (Path(__file__).parent.parent / "vectors" / "tgt_tape.img").read_bytes()
    img = tmp_path / "tgt.img"
    img.write_bytes(vector)
    status, out, _ = run("--op", "show", "--device-type", "tape", "--file", str(img))
    assert status == 0
    assert out.splitlines()[4:7] == [
        "Beginning of Tape(16): Capacity 10 MB, Blk No.: 0, prev 0, curr 0, next 1152",
        " Uncompressed data(2): Blk No. 1, prev 0, curr 1152,  next 1210, sz 10",
        " Uncompressed data(2): Blk No. 2, prev 1152, curr 1210,  next 1261, sz 3"]
    assert out.splitlines()[-1] == \
        "      End of Data(32): Blk No. 10, prev 1557, curr 1606,  next 1606, sz 0"
    img.write_bytes(vector[:1400])
    assert run("--op", "show", "--device-type", "tape", "--file", str(img)) == (
        EXIT_FAILED, "", f"pytgtimg: {img}: truncated tgt tape image: no block header at "
        "offset 1361\n")


VECTOR = Path(__file__).parent.parent / "vectors" / "tgt_tape.img"  # tgtd wrote it


def convert(src: Path, dst: Path) -> tuple[int, str, str]:
    return run("--op", "convert", "--device-type", "tape", "--file", str(src),
               "--output", str(dst))


def test_convert_tgt_to_pytgt_and_back_is_identical(tmp_path: Path) -> None:
    ours, back = tmp_path / "ours.img", tmp_path / "back.img"
    assert convert(VECTOR, ours) == (
        0, f"Converted {VECTOR} to pytgt tape image file : {ours}\n", "")
    assert ours.read_bytes()[:8] == b"PYTGTAPE" and ours.stat().st_size == 10 * MB
    data = ours.read_bytes()
    label = parse_label(data[:512])
    assert (label.barcode, label.media_type, label.created) == ("T1", MediaType.DATA,
                                                                 1796607835)

    async def contents() -> list[tuple[Kind, bytes]]:
        store = MemoryStore(len(data))
        await store.write(0, data)
        medium = TapeMedium(store)
        return [(r.kind, bytes(await medium.payload(r))) for r in await medium.records()]

    assert asyncio.run(contents()) == [
        (Kind.DATA, b"0123456789"), (Kind.DATA, b"abc"), (Kind.FILEMARK, b""),
        (Kind.DATA, b"WXYZ"), (Kind.DATA, b"wxyz"), (Kind.FILEMARK, b""),
        (Kind.FILEMARK, b""), (Kind.FILEMARK, b""), (Kind.DATA, b"Q")]
    assert convert(ours, back) == (0, f"Converted {ours} to tgt tape image file : {back}\n",
                                   "")
    assert back.read_bytes() == VECTOR.read_bytes()  # tgtimg's MAM, tgtd's block headers


def test_convert_pytgt_setmarks_and_worm_to_tgt(tmp_path: Path) -> None:
    img, out = tmp_path / "w.img", tmp_path / "w.tgt"
    assert new_tape(img, barcode="W1", mtype="worm")[0] == 0

    async def fill() -> None:
        data = img.read_bytes()
        store = MemoryStore(len(data))
        await store.write(0, data)
        await TapeMedium(store).write([(Kind.DATA, b"d" * 700), (Kind.SETMARK, b""),
                                       (Kind.DATA, b"e")])
        img.write_bytes(bytes(await store.read(0, store.size)))

    asyncio.run(fill())
    status, text, _ = convert(img, out)
    assert (status, text) == (
        0, f"Converted {img} to tgt tape image file : {out} (1 setmarks written as "
        "filemarks)\n")
    lines = run("--op", "show", "--device-type", "tape", "--file", str(out))[1].splitlines()
    assert lines[1] == " type     : WORM"
    assert lines[4:] == [
        "Beginning of Tape(16): Capacity 2 MB, Blk No.: 0, prev 0, curr 0, next 1152",
        " Uncompressed data(2): Blk No. 1, prev 0, curr 1152,  next 1900, sz 700",
        "         Filemark(64): Blk No. 2, prev 1152, curr 1900,  next 1948, sz 0",
        " Uncompressed data(2): Blk No. 3, prev 1900, curr 1948,  next 1997, sz 1",
        "      End of Data(32): Blk No. 4, prev 1948, curr 1997,  next 1997, sz 0"]
    assert out.stat().st_size == 1997 + 48
    if shutil.which("tgtimg"):
        assert tgtimg("--op", "show", "--device-type", "tape", "--file", str(out)) == \
            run("--op", "show", "--device-type", "tape", "--file", str(out))[1]


def test_convert_errors_are_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out.img"
    status, _, err = run("--op", "convert", "--device-type", "tape", "--file", str(VECTOR))
    assert status == EXIT_EINVAL and err.splitlines()[0] == "pytgtimg: Missing the output param"
    status, _, err = run("--op", "convert", "--device-type", "cd", "--file", str(VECTOR),
                         "--output", str(out))
    assert status == EXIT_EINVAL and err.splitlines()[0] == "pytgtimg: convert is for tape images"
    damaged = tmp_path / "damaged.img"
    damaged.write_bytes(VECTOR.read_bytes()[:1400])
    assert convert(damaged, out) == (EXIT_FAILED, "", f"pytgtimg: {damaged}: truncated tgt "
                                     "tape image: no block header at offset 1361\n")
    assert not out.exists()
    out.write_bytes(b"mine")
    assert convert(VECTOR, out) == (EXIT_FAILED, "", f"pytgtimg: can't create {out}, "
                                    "File exists\n")
    assert out.read_bytes() == b"mine"
