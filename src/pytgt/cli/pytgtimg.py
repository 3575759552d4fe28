"""``pytgtimg``: make, show and convert tape and CD/DVD image files (tgtimg's command line).

``--op new --device-type tape`` writes an empty pytgt tape (docs/tape.md: the header
with the barcode, media type and creation time, then END OF DATA) of ``--size``
megabytes; ``--op show`` prints its label and records laid out as tgtimg prints its
own, and a tgt (tgtimg) image exactly as tgtimg does; ``--op convert`` copies a tape to
the other format (``--output``). ``--device-type cd`` makes a zero-filled image of the
size, and shows its size.
Errors are one line on stderr, ``pytgtimg: ...``; a bad command line exits 22 (as
tgtimg), a file that cannot be made or read exits 1.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import time
from collections.abc import Sequence

from pytgt.cli.argparse_style import OneLineErrorParser
from pytgt.scsi.tape_media import (
    HEADER_SIZE,
    LABEL,
    RECORD,
    TGT_DATA,
    TGT_HEADER,
    TGT_KIND,
    TGT_SERIAL,
    TGT_TYPE,
    Kind,
    Label,
    MediaType,
    MediumFormatError,
    TgtBlock,
    TgtType,
    check_header,
    format_header,
    is_tgt_image,
    parse_label,
    parse_tgt_block,
    parse_tgt_mam,
    tgt_header,
    tgt_image_head,
)

PROG = "pytgtimg"
VERSION = "0.1.0"
EXIT_OK = 0
EXIT_FAILED = 1  # the file could not be made or read
EXIT_EINVAL = errno.EINVAL  # 22: bad command line
MB = 1 << 20
MEDIA_TYPES = {"data": MediaType.DATA, "clean": MediaType.CLEAN, "worm": MediaType.WORM}
TYPE_NAMES = {MediaType.DATA: "Data", MediaType.CLEAN: "Cleaning", MediaType.WORM: "WORM"}
RECORD_NAMES = {Kind.DATA: "Data block", Kind.FILEMARK: "Filemark",
                Kind.SETMARK: "Setmark", Kind.EOD: "End of Data"}
TGT_MAX_BARCODE = 31  # the MAM's barcode field
TGT_NAMES = {TgtType.DATA: "Uncompressed data", TgtType.FILEMARK: "Filemark",
             TgtType.EOD: "End of Data"}
MAX_BARCODE = LABEL.size - 9  # the 32-byte barcode field


class ImgError(Exception):
    """A one-line error and the exit status."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status



def build_parser() -> argparse.ArgumentParser:
    p = OneLineErrorParser(
        prog=PROG, description="create (--op new) or show (--op show) a tape or "
                "CD/DVD image file for pytgtd's -Y tape and -Y cd logical units, with "
                "tgtimg's command line; convert (--op convert) a tape image between "
                "tgt's format and pytgt's",
                epilog="exit status: 0 success; 1 the file could not be made or read; "
                "22 bad command line")
    p.add_argument("-o", "--op", required=True, choices=["new", "show", "convert"],
                   help="new: create the image file; show: print its details; convert: "
                   "copy a tape image (--file) to a new one (--output) in the other format "
                   "(tgt's tgtimg format to pytgt's, pytgt's to tgt's)")
    p.add_argument("-m", "--device-type", required=True, choices=["tape", "cd"],
                   help="the kind of image")
    p.add_argument("-b", "--barcode", metavar="CODE",
                   help=f"the tape's barcode (new, tape; up to {MAX_BARCODE} characters)")
    p.add_argument("-s", "--size", type=int, metavar="MB",
                   help="the medium's size in megabytes (new)")
    p.add_argument("-t", "--type", metavar="TYPE",
                   help="media type: data, clean or worm for tapes; dvd+r for cd (new)")
    p.add_argument("-f", "--file", required=True, metavar="PATH",
                   help="the image file (new: it must not exist)")
    p.add_argument("-O", "--output", metavar="PATH",
                   help="the converted image (convert: it must not exist)")
    p.add_argument("-T", "--thin-provisioning", "--thin", action="store_true",
                   dest="thin", help="create a sparse file (new)")
    p.add_argument("-V", "--version", action="version", version=f"{PROG} {VERSION}")
    return p


def _bad(message: str) -> ImgError:
    return ImgError(f"{message}\nTry `{PROG} --help' for more information.", EXIT_EINVAL)


def _create(path: str, size: int, head: bytes, thin: bool) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    except OSError as exc:
        raise ImgError(f"can't create {path}, {exc.strerror}") from None
    try:
        if thin:
            os.ftruncate(fd, size)
        else:
            chunk = bytes(MB)
            for off in range(0, size, MB):
                os.write(fd, chunk[:min(MB, size - off)])
        if head:
            os.pwrite(fd, head, 0)
        os.fsync(fd)
    except OSError as exc:
        os.unlink(path)
        raise ImgError(f"can't write {path}, {exc.strerror}") from None
    finally:
        os.close(fd)


def new_image(args: argparse.Namespace) -> str:
    if args.size is None:
        raise _bad("Missing the size param")
    if args.size <= 0:
        raise _bad(f"bad size: {args.size}")
    if args.device_type == "cd":
        if args.type is not None and args.type.lower() != "dvd+r":
            raise _bad("Media type must be DVD+R for cd devices")
        _create(args.file, args.size * MB, b"", args.thin)
        return f"Created blank DVD+R image file : {args.file}"
    if args.barcode is None:  # "" is a tape without a barcode (tgt's "notape")
        raise _bad("Missing the barcode param")
    if len(args.barcode) > MAX_BARCODE or not args.barcode.isascii():
        raise _bad(f"bad barcode: {args.barcode!r} (up to {MAX_BARCODE} ASCII characters)")
    if args.type is None:
        raise _bad("Missing the media type param")
    mtype = MEDIA_TYPES.get(args.type.lower())
    if mtype is None:
        raise _bad("Media type must be WORM, CLEAN or DATA for tape devices")
    size = args.size * MB
    if size < HEADER_SIZE + RECORD.size:
        raise _bad(f"bad size: {args.size}")
    head = format_header(Label(args.barcode, mtype, int(time.time())))
    _create(args.file, size, head, args.thin)
    return f"Created tape image file : {args.file}"


def _read_tape(path: str) -> tuple[int, Label, list[tuple[Kind, int, int, int]]]:
    """Capacity, label and records (kind, offset, length, previous offset) of a tape."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(HEADER_SIZE)
            if len(head) < HEADER_SIZE:
                raise MediumFormatError(f"medium too small ({size} bytes)")
            if not check_header(head):
                return size, Label(), [(Kind.EOD, HEADER_SIZE, 0, 0)]
            label = parse_label(head)
            recs: list[tuple[Kind, int, int, int]] = []
            off = HEADER_SIZE
            while off + RECORD.size <= size:
                f.seek(off)
                kind, length, prev = RECORD.unpack(f.read(RECORD.size))
                if kind not in RECORD_NAMES or off + RECORD.size + length > size:
                    raise MediumFormatError(f"bad record header at offset {off}")
                recs.append((Kind(kind), off, length, prev))
                if kind == Kind.EOD:
                    break
                off += RECORD.size + length
            return size, label, recs
    except OSError as exc:
        raise ImgError(f"can't open {path}, {exc.strerror}") from None
    except MediumFormatError as exc:
        raise ImgError(f"{path}: {exc}") from None


def _read_tgt_tape(path: str) -> tuple[int, Label, str, list[TgtBlock]]:
    """Capacity, label, serial number and block headers (EOD last) of a tgt image."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(TGT_DATA)
            capacity, label = parse_tgt_mam(head)
            serial = head[TGT_SERIAL].split(b"\0")[0].decode("ascii", "replace")
            blocks: list[TgtBlock] = []
            off, prev = TGT_DATA, 0
            while True:
                f.seek(off)
                block = parse_tgt_block(f.read(TGT_HEADER.size), off)
                if block.number != len(blocks) + 1 or block.prev != prev \
                        or block.type == TgtType.BOT or block.next > size:
                    raise MediumFormatError(f"bad block header at offset {off}")
                blocks.append(block)
                if block.type == TgtType.EOD:
                    return capacity, label, serial, blocks
                off, prev = block.next, off
    except OSError as exc:
        raise ImgError(f"can't open {path}, {exc.strerror}") from None
    except MediumFormatError as exc:
        raise ImgError(f"{path}: {exc}") from None


def _created(label: Label) -> str:
    try:
        return time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(label.created)) \
            if label.created else "unknown"
    except (OverflowError, ValueError, OSError):  # a time beyond the platform's
        return "unknown"


def show_tgt_tape(path: str) -> str:
    """A tgt image as tgtimg shows it (block types named with their numbers)."""
    capacity, label, serial, blocks = _read_tgt_tape(path)
    out = [f"Media     : {label.barcode:<31}",
           f" type     : {TYPE_NAMES[label.media_type]}",
           f"Media serial number : {serial}, created {_created(label)}",
           "",
           f"Beginning of Tape({TgtType.BOT:d}): Capacity {capacity // MB} MB, Blk No.: 0, "
           f"prev 0, curr 0, next {TGT_DATA}"]
    out += [f"{TGT_NAMES[b.type] + f'({b.type:d})':>21}: Blk No. {b.number}, prev {b.prev}, "
            f"curr {b.curr},  next {b.next}, sz {b.size}" for b in blocks]
    return "\n".join(out)


def _is_tgt(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return is_tgt_image(f.read(TGT_HEADER.size))
    except OSError as exc:
        raise ImgError(f"can't open {path}, {exc.strerror}") from None


def show_tape(path: str) -> str:
    if _is_tgt(path):
        return show_tgt_tape(path)
    size, label, recs = _read_tape(path)
    out = [f"Media     : {label.barcode:<31}",
           f" type     : {TYPE_NAMES[label.media_type]}",
           f"Media serial number : {label.barcode}_{label.created}, created {_created(label)}",
           "",
           f"Beginning of Tape: Capacity {size // MB} MB, Blk No.: 0, prev 0, curr 0, "
           f"next {recs[0][1] if recs else HEADER_SIZE}"]
    for n, (kind, off, length, prev) in enumerate(recs, 1):
        nxt = off if kind == Kind.EOD else off + RECORD.size + length
        out.append(f"{RECORD_NAMES[kind]:>17}: Blk No. {n}, prev {prev}, curr {off},  "
                   f"next {nxt}, sz {length}")
    return "\n".join(out)


def show_cd(path: str) -> str:
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise ImgError(f"can't open {path}, {exc.strerror}") from None
    return f"Media     : DVD+R\nSize      : {size // MB} MB ({size} bytes)"


def _records(path: str) -> tuple[bool, int, Label, list[tuple[Kind, int, int]]]:
    """(tgt's format?, capacity, label, records as (kind, payload offset, length))."""
    if _is_tgt(path):
        capacity, label, _, blocks = _read_tgt_tape(path)
        return True, capacity, label, [(TGT_KIND[b.type], b.curr + TGT_HEADER.size, b.size)
                                       for b in blocks[:-1]]
    size, label, recs = _read_tape(path)
    return False, size, label, [(kind, off + RECORD.size, length)
                                for kind, off, length, _ in recs if kind != Kind.EOD]


def _pytgt_image(label: Label, capacity: int,
                 recs: list[tuple[Kind, int, int]]) -> tuple[int, bytes, list[bytes]]:
    """(size, header, record headers with the EOD's last) of a pytgt image."""
    heads, prev, at = [], 0, HEADER_SIZE
    for kind, _, length in recs:
        heads.append(RECORD.pack(kind, length, prev))
        prev, at = at, at + RECORD.size + length
    heads.append(RECORD.pack(Kind.EOD, 0, prev))
    size = max(capacity, -(-(at + RECORD.size) // MB) * MB)
    return size, format_header(label)[:HEADER_SIZE], heads


def _tgt_image(label: Label, capacity: int,
               recs: list[tuple[Kind, int, int]]) -> tuple[int, bytes, list[bytes]]:
    """(capacity in MiB, head, block headers with the EOD's last) of a tgt image;
    setmarks become filemarks (tgt's format has none)."""
    heads, prev, at = [], 0, TGT_DATA
    for n, (kind, _, length) in enumerate(recs, 1):
        nxt = at + TGT_HEADER.size + length
        heads.append(tgt_header(TGT_TYPE[kind], length, n, prev, at, nxt))
        prev, at = at, nxt
    heads.append(tgt_header(TgtType.EOD, 0, len(recs) + 1, prev, at, at))
    mb = max(-(-capacity // MB), -(-(at + TGT_HEADER.size) // MB))
    return mb, tgt_image_head(mb, label), heads


def convert_tape(src: str, dst: str | None, thin: bool) -> str:
    """Copy a tape image to ``dst`` in the other format: the same blocks and marks,
    barcode, media type, creation time and capacity."""
    if dst is None:
        raise _bad("Missing the output param")
    from_tgt, capacity, label, recs = _records(src)
    if not from_tgt and len(label.barcode) > TGT_MAX_BARCODE:
        raise ImgError(f"{src}: the barcode {label.barcode!r} is too long for tgt's format "
                       f"(up to {TGT_MAX_BARCODE} characters)")
    if from_tgt:  # the file size is the capacity
        size, head, heads = _pytgt_image(label, capacity, recs)
        _create(dst, size, head, thin)
    else:  # the file holds what was written
        _, head, heads = _tgt_image(label, capacity, recs)
        _create(dst, 0, head, True)
    try:
        with open(src, "rb") as fin, open(dst, "r+b") as fout:
            fout.seek(len(head))
            for n, (_, off, length) in enumerate(recs):
                fin.seek(off)
                payload = fin.read(length)
                if len(payload) != length:
                    raise ImgError(f"{src}: short read at offset {off}")
                fout.write(heads[n] + payload)
            fout.write(heads[-1])  # END OF DATA
            fout.flush()
            os.fsync(fout.fileno())
    except OSError as exc:
        os.unlink(dst)
        raise ImgError(f"can't convert {src} to {dst}, {exc.strerror}") from None
    except ImgError:
        os.unlink(dst)
        raise
    marks = sum(kind == Kind.SETMARK for kind, _, _ in recs)
    kind = "pytgt" if from_tgt else "tgt"
    note = f" ({marks} setmarks written as filemarks)" if marks and not from_tgt else ""
    return f"Converted {src} to {kind} tape image file : {dst}{note}"


def run(args: argparse.Namespace) -> str:
    if args.op == "new":
        return new_image(args)
    if args.op == "convert":
        if args.device_type != "tape":
            raise _bad("convert is for tape images")
        return convert_tape(args.file, args.output, args.thin)
    return show_tape(args.file) if args.device_type == "tape" else show_cd(args.file)


def main(argv: Sequence[str] | None = None) -> int:
    """Run pytgtimg; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        print(run(args), flush=True)
    except ImgError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.status
    except BrokenPipeError:  # `pytgtimg --op show ... | head`: the reader has enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
