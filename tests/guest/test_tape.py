"""The Linux kernel's SCSI tape driver (st) on a pytgt tape LU (``-Y tape``), in a QEMU
guest: mt (status, rewind, weof, fsf, bsf, fsr, bsr, eod, tell, seek, setblk,
compression), busybox tar archives as tape files, dd in fixed- and variable-block mode
with block-length mismatches, a WORM medium, a tape written to its early warning, and a
write-protected medium. The host checks each step's marker and, after the guest is done,
the records on the media file (tape_media) against what the guest wrote.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import subprocess
import sys
import tarfile
from pathlib import Path

from pytgt.scsi.tape_media import (
    EARLY_WARNING,
    RECORD,
    Kind,
    Label,
    TapeMedium,
    format_header,
)
from pytgt.stores.memory import MemoryStore
from tests.guest.conftest import PORTAL, Guest, booted
from tests.helpers import RunningDaemon

IQN = "iqn.2026-12.org.pytgt:guest-tape"
SIZE = 32 << 20
#: the record on the write-protected tape: one data block, a filemark
WP_BLOCK = bytes(range(256)) * 16

SCRIPT = f"""
T={IQN}; P={PORTAL}
mt() {{ mt-st "$@"; }}  # mt-st's mt (busybox's /usr/bin/mt lacks status, eod, tell)
iscsid_start
mark DISCOVERED $(iscsiadm -m discovery -t sendtargets -p $P)
iscsiadm -m node -o new -T $T -p $P >/dev/null
iscsiadm -m node -T $T -p $P --login
# tape_of LUN: the /dev/nstN of a LUN of the session
tape_of() {{
  for d in /sys/class/scsi_tape/nst[0-9]; do
    case $(readlink -f $d/device) in *:$1) echo /dev/${{d##*/}}; return 0;; esac
  done
  return 1
}}
poll 30 tape_of 1
poll 30 tape_of 2
poll 30 tape_of 3
poll 30 tape_of 4
N=$(tape_of 1); W=$(tape_of 2); M=$(tape_of 3); E=$(tape_of 4)
mark TAPES $N $W $(cat /sys/class/scsi_tape/${{N#/dev/}}/device/type)
# st_of: "FILE BLOCK FLAGS..." from mt status
st_of() {{
  mt -f $N status > /tmp/st
  cat /tmp/st >&2
  echo $(sed -n 's/^File number=\\([-0-9]*\\), block number=\\([-0-9]*\\).*/\\1 \\2/p' /tmp/st) \\
    $(tail -n 1 /tmp/st)
}}
mark STATUS0 $(st_of)
mt -f $N rewind

# three trees; the fixed-mode ones hold files whose sizes are multiples of 512 (st
# takes only whole blocks in fixed mode, and busybox tar writes a file's tail apart)
mk_tree() {{
  mkdir -p $1/sub/deeper
  dd if=/dev/urandom of=$1/a bs=512 count=$((7 * $2)) 2>/dev/null
  dd if=/dev/urandom of=$1/sub/b bs=512 count=$((40 + $2)) 2>/dev/null
  dd if=/dev/urandom of=$1/sub/deeper/c bs=4096 count=$((3 * $2)) 2>/dev/null
  if [ $2 = 2 ]; then echo "odd sized" > $1/sub/odd; head -c 10001 /dev/urandom > $1/x; fi
  (cd $1 && find . -type f | sort | xargs sha256sum) > $1.sum
  mark FILES$2 $(cat $1.sum)
}}
for k in 1 2 3; do mk_tree /tmp/t$k $k; done

mt -f $N setblk 512
tar -cf $N -C /tmp/t1 .
mark AFTER1 $(st_of)
mt -f $N setblk 0  # a tar record size of 10240 bytes, blocks of that length
tar -cf - -C /tmp/t2 . | dd of=$N obs=10240 2>/dev/null
mark AFTER2 $(st_of)
mt -f $N setblk 512
tar -cf $N -C /tmp/t3 .
mark AFTER3 $(st_of)
mt -f $N weof
mark AFTER-WEOF $(st_of)
mark TELL $(mt -f $N tell)
B4=$(mt -f $N tell | tr -dc 0-9)  # where file 4 (dd, fixed blocks) begins

mt -f $N rewind
mt -f $N eod
mark EOD $(st_of)
mt -f $N bsf 2
mark BSF2 $(st_of)
mt -f $N fsf 1
mark FSF1 $(st_of)
mark TELL-FSF1 $(mt -f $N tell)

# fixed blocks of 4096 (file 4) and variable blocks of 100, 7000, 65536 and 1 (file 5)
mt -f $N eod
mt -f $N setblk 4096
dd if=/dev/urandom of=/tmp/fx bs=4096 count=10 2>/dev/null
dd if=/tmp/fx of=$N bs=4096 2>/dev/null
mark FX $(sha256sum < /tmp/fx)
mt -f $N setblk 0
head -c 72637 /dev/urandom > /tmp/v
{{ dd bs=100 count=1; dd bs=7000 count=1; dd bs=65536 count=1; dd bs=1 count=1; }} \\
  < /tmp/v > $N 2>/dev/null
mark V $(sha256sum < /tmp/v)
mark AFTER-DD $(st_of)

for k in 1 2 3; do
  mt -f $N rewind
  mt -f $N fsf $((k - 1))
  mkdir /tmp/o$k
  if [ $k = 2 ]; then
    mt -f $N setblk 0
    dd if=$N bs=10240 2>/dev/null | tar -xf - -C /tmp/o$k
  else
    mt -f $N setblk 512
    tar -xf $N -C /tmp/o$k
  fi
  (cd /tmp/o$k && sha256sum -c /tmp/t$k.sum >&2)
  mark READ$k $(cd /tmp/o$k && find . -type f | sort | xargs sha256sum)
  mark AT$k $(st_of)
done

mt -f $N rewind
mt -f $N fsf 4
mt -f $N setblk 4096
dd if=$N of=/tmp/fx.r bs=8192 2>&1 | head -n 1 >&2  # two 4096-byte blocks a read
mark FX-READ $(sha256sum < /tmp/fx.r)
mt -f $N setblk 0
dd if=$N of=/tmp/v.r bs=65536 2>/tmp/dd.err || true
mark V-READ $(sha256sum < /tmp/v.r) $(head -n 1 /tmp/dd.err)
# a block longer than the read (st: ENOMEM), then the next blocks
mt -f $N rewind
mt -f $N fsf 5
mt -f $N fsr 1   # past the 100-byte block
dd if=$N of=/tmp/short bs=1000 count=1 2>/tmp/dd.err && mark OVERLENGTH-READ-OK
mark OVERLENGTH $(tail -n 1 /tmp/dd.err | sed 's/.*: //')
dd if=$N of=/tmp/b3 bs=65536 count=1 2>/dev/null
mark BLOCK3 $(wc -c < /tmp/b3) $(sha256sum < /tmp/b3)
# fixed mode over variable blocks: incorrect length (st: EIO)
mt -f $N setblk 4096
mt -f $N bsr 3
dd if=$N of=/tmp/fixed bs=4096 count=1 2>/tmp/dd.err && mark FIXED-READ-OK
mark FIXED-ILI $(tail -n 1 /tmp/dd.err | sed 's/.*: //')
mt -f $N setblk 0
# LOCATE (mt seek) to file 4's first block
mt -f $N rewind
mt -f $N seek $B4
mark SEEK-TELL $(mt -f $N tell)
mt -f $N setblk 4096
mark SEEK-BLOCK $(dd if=$N bs=4096 count=1 2>/dev/null | sha256sum) \
  $(head -c 4096 /tmp/fx | sha256sum)
mt -f $N setblk 0
# data compression (st's MTCOMPRESSION: the data compression mode page's DCE)
mt -f $N compression 1
mark COMPRESSION $(sg_raw -r 64 $N 1a 08 0f 00 40 00 2>&1 | sed -n 's/^ *00  *//p')
mt -f $N compression 0

# a WORM medium: appending works, overwriting does not
dd if=/tmp/fx of=$M bs=4096 count=2 2>/dev/null
mt -f $M rewind
dd if=/tmp/fx of=$M bs=4096 count=1 2>/tmp/err && mark WORM-OVERWRITTEN
mark WORM-OVERWRITE $(head -n 1 /tmp/err | sed 's/.*: //')
mt -f $M eod
dd if=/tmp/fx of=$M bs=4096 count=1 2>/dev/null
mark WORM-APPENDED $(mt -f $M tell)

# a small tape written to its end: st stops at the early warning (EOM) with ENOSPC
dd if=/dev/zero of=$E bs=65536 2>/tmp/err && mark EOM-NOT-REACHED
mark EOM $(grep -i 'error' /tmp/err | sed 's/.*: //')
mt -f $E rewind
mark EOM-READ $(dd if=$E bs=65536 2>/dev/null | wc -c)

mt -f $W status > /tmp/st
cat /tmp/st >&2
mark WP-STATUS $(tail -n 1 /tmp/st)
dd if=$W of=/tmp/wp bs=65536 2>/dev/null
mark WP-READ $(wc -c < /tmp/wp) $(sha256sum < /tmp/wp)
tar -cf $W -C /tmp/t1 . 2>/tmp/err && mark WP-TAR-WRITTEN
mark WP-TAR $(sed 's/.*: //' /tmp/err)
mt -f $W weof 2>/tmp/err && mark WP-WEOF-WRITTEN
mark WP-WEOF $(sed 's/.*: //' /tmp/err)
iscsiadm -m node -T $T -p $P --logout
"""


def _marked(run_marker: str) -> dict[str, str]:
    """``sha ./path sha ./path ...`` -> {path: sha}."""
    words = run_marker.split()
    return {path.removeprefix("./"): sha for sha, path in zip(words[::2], words[1::2],
                                                                strict=True)}


def _files(media: Path) -> list[list[bytes]]:
    """The tape files (data blocks between filemarks) on a media file."""
    async def read() -> list[list[bytes]]:
        data = media.read_bytes()
        store = MemoryStore(len(data))
        await store.write(0, data)
        tape = TapeMedium(store)
        files: list[list[bytes]] = [[]]
        for rec in await tape.records():
            if rec.kind == Kind.FILEMARK:
                files.append([])
            else:
                assert rec.kind == Kind.DATA
                files[-1].append(bytes(await tape.payload(rec)))
        return files
    return asyncio.run(read())


def _write_protected_tape(path: Path) -> None:
    """A labelled tape holding WP_BLOCK and a filemark."""
    first = 512
    data = bytearray(format_header(Label("WP0001"))[:512])
    data += RECORD.pack(Kind.DATA, len(WP_BLOCK), 0) + WP_BLOCK
    second = len(data)
    data += RECORD.pack(Kind.FILEMARK, 0, first) + RECORD.pack(Kind.EOD, 0, second)
    path.write_bytes(data + bytes(SIZE - len(data)))


def test_st_mt_tar_dd_on_a_tape_lu(guest: Guest, daemon: RunningDaemon,
                                   tmp_path: Path) -> None:
    tape, wp, worm = tmp_path / "tape0.img", tmp_path / "wp.img", tmp_path / "worm.img"
    small = tmp_path / "small.img"
    subprocess.run([sys.executable, "-m", "pytgt.cli.pytgtimg", "--op", "new",
                    "--device-type", "tape", "--barcode", "A0001", "--size", str(SIZE >> 20),
                    "--type", "data", "--file", str(tape)], env=daemon.env, check=True)
    _write_protected_tape(wp)
    wp_before = wp.read_bytes()
    adm = ("--lld", "iscsi", "--op")
    daemon.adm(*adm, "new", "--mode", "target", "--tid", "1", "-T", IQN)
    subprocess.run([sys.executable, "-m", "pytgt.cli.pytgtimg", "--op", "new",
                    "--device-type", "tape", "--barcode", "W0001", "--size", "8",
                    "--type", "worm", "--file", str(worm)], env=daemon.env, check=True)
    subprocess.run([sys.executable, "-m", "pytgt.cli.pytgtimg", "--op", "new",
                    "--device-type", "tape", "--barcode", "E0001", "--size", "3",
                    "--type", "data", "--file", str(small)], env=daemon.env, check=True)
    for lun, path in ((1, tape), (2, wp), (3, worm), (4, small)):
        daemon.adm(*adm, "new", "--mode", "logicalunit", "--tid", "1", "--lun", str(lun),
                   "-Y", "tape", "-b", str(path))
    daemon.adm(*adm, "update", "--mode", "logicalunit", "--tid", "1", "--lun", "2",
               "--params", "readonly=1")
    daemon.adm(*adm, "bind", "--mode", "target", "--tid", "1", "-I", "ALL")

    with booted(guest, SCRIPT, {PORTAL: daemon.port}, tmp_path / "boot.log") as run:
        assert run.marker("DISCOVERED", 120).split()[1] == IQN
        n, w, kind = run.marker("TAPES", 60).split()
        assert n.startswith("/dev/nst") and w.startswith("/dev/nst") and n != w
        assert kind == "1"  # TYPE_TAPE
        status0 = run.marker("STATUS0", 60).split()
        assert status0[:2] == ["0", "0"] and {"BOT", "ONLINE"} <= set(status0[2:]), status0
        assert "WR_PROT" not in status0
        files = [_marked(run.marker(f"FILES{k}", 60)) for k in (1, 2, 3)]
        for k in (1, 2, 3):
            assert run.marker(f"AFTER{k}", 120).split()[:2] == [str(k), "0"]
        assert run.marker("AFTER-WEOF", 60).split()[:2] == ["4", "0"]
        tell = run.marker("TELL", 60)
        eod = run.marker("EOD", 60).split()
        assert eod[0] == "4" and "EOD" in eod[2:], eod
        bsf2 = run.marker("BSF2", 60).split()
        assert bsf2[0] == "2" and "BOT" not in bsf2, bsf2
        assert run.marker("FSF1", 60).split()[:2] == ["3", "0"]
        tell_fsf1 = run.marker("TELL-FSF1", 60)
        fx, v = run.marker("FX", 60), run.marker("V", 60)
        assert run.marker("AFTER-DD", 60).split()[:2] == ["6", "0"]
        for k in (1, 2, 3):
            assert _marked(run.marker(f"READ{k}", 120)) == files[k - 1]
            assert run.marker(f"AT{k}", 60).split()[:2] == [str(k), "0"]
        assert run.marker("FX-READ", 60) == fx
        v_read = run.marker("V-READ", 60).split()
        assert v_read[:2] == v.split()
        assert v_read[2:] == ["1+3", "records", "in"]  # 3 blocks shorter than the read
        assert run.marker("OVERLENGTH", 60) == "Cannot allocate memory"
        block3 = run.marker("BLOCK3", 60).split()
        assert block3[0] == "65536"
        assert run.marker("FIXED-ILI", 60) == "Input/output error"
        seek_tell = run.marker("SEEK-TELL", 60)
        block, _, first, _ = run.marker("SEEK-BLOCK", 60).split()
        assert block == first
        compression = run.marker("COMPRESSION", 60).split()
        assert compression[4:8] == ["0f", "0e", "c0", "80"], compression  # DCE, DCC, DDE
        assert run.marker("WORM-OVERWRITE", 60) == "Input/output error"
        worm_tell = run.marker("WORM-APPENDED", 60)
        assert run.marker("EOM", 60) == "No space left on device"
        eom_read = int(run.marker("EOM-READ", 60))
        wp_status = run.marker("WP-STATUS", 60).split()
        assert {"BOT", "ONLINE", "WR_PROT"} <= set(wp_status), wp_status
        assert run.marker("WP-READ", 60).split()[:2] == [
            str(len(WP_BLOCK)), hashlib.sha256(WP_BLOCK).hexdigest()]
        assert run.marker("WP-TAR", 60).endswith("Read-only file system")
        assert run.marker("WP-WEOF", 60).endswith("Read-only file system")

    tape_files = _files(tape)
    assert len(tape_files) == 7  # 6 filemarks: 3 archives, weof, dd fixed, dd variable
    archives = [b"".join(blocks) for blocks in tape_files[:3]]
    assert {len(b) for b in tape_files[0]} == {512} == {len(b) for b in tape_files[2]}
    assert {len(b) for b in tape_files[1][:-1]} == {10240}
    for archive, want in zip(archives, files, strict=True):
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            got = {m.name.removeprefix("./"): hashlib.sha256(
                tar.extractfile(m).read()).hexdigest()  # type: ignore[union-attr]
                   for m in tar.getmembers() if m.isfile()}
        assert got == want
    assert tape_files[3] == []
    assert [len(b) for b in tape_files[4]] == [4096] * 10
    assert hashlib.sha256(b"".join(tape_files[4])).hexdigest() == fx.split()[0]
    assert [len(b) for b in tape_files[5]] == [100, 7000, 65536, 1]
    assert hashlib.sha256(b"".join(tape_files[5])).hexdigest() == v.split()[0]
    assert hashlib.sha256(tape_files[5][2]).hexdigest() == block3[1]
    assert tape_files[6] == []
    # mt tell: the logical object identifier (blocks and filemarks before the position)
    records = sum(len(f) for f in tape_files[:4]) + 4
    assert tell == seek_tell == f"At block {records}."
    assert tell_fsf1 == f"At block {sum(len(f) for f in tape_files[:3]) + 3}."
    worm_files = _files(worm)  # 4096-byte blocks; the overwrite left nothing behind
    assert [[len(b) for b in f] for f in worm_files] == [[4096, 4096], [4096], []]
    assert worm_tell == "At block 5."
    # the block that crossed the early-warning point (1 MiB before the end) is the last
    small_files = _files(small)
    blocks = small_files[0]
    assert {bytes(b) for b in blocks} == {bytes(65536)} and small_files[1:] == [[]]
    end = 512 + len(blocks) * (16 + 65536)
    assert end > (3 << 20) - EARLY_WARNING >= end - 16 - 65536
    assert eom_read == len(blocks) * 65536
    assert wp.read_bytes() == wp_before  # the write-protected medium is untouched
