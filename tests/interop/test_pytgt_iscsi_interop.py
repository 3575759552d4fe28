"""``pytgt-iscsi`` beside libiscsi's tools and qemu-img, against pytgtd and against tgt.

ls/inq/readcap print what iscsi-ls, iscsi-inq and iscsi-readcapacity16 print (libiscsi
names fewer version codes, and rounds iscsi-ls sizes down by a block: those fields are
compared by their number only); ``dd`` round trips are byte-identical by qemu-img.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.targets import TgtTarget
from pytgt.cli.pytgt_iscsi import main
from tests.helpers import RunningDaemon
from tests.interop.conftest import make_target, need

PYTGT_IQN = "iqn.2026-12.org.pytgt:cli"


def ours(*args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(list(args)) == 0
    return out.getvalue()


def theirs(*cmd: str) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout


def _fields(text: str) -> list[tuple[str, str]]:
    """``Key:value`` lines, the value cut at its first blank (names of codes differ)."""
    out = []
    for line in text.splitlines():
        key, _sep, value = line.partition(":")
        out.append((key, value.split(" ")[0] if key.startswith("Version") else value))
    return out


def _ls_fields(text: str) -> list[str]:
    return [line.split(" (Size:")[0] for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def tgt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TgtTarget, Path]]:
    if not TgtTarget.installed():
        pytest.fail("tgtd/tgtadm are not installed (apt-get install tgt)")
    work = tmp_path_factory.mktemp("tgt")
    disk = work / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(16 << 20)
    t = TgtTarget(work)
    t.start()  # our own tgtd on a free port; stop() ends only it
    try:
        t.setup(disk)
        yield t, disk
    finally:
        t.stop()


@pytest.fixture(scope="module")
def pytgt_url(daemon: RunningDaemon, tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_target(daemon, 21, PYTGT_IQN, tmp_path_factory.mktemp("cli") / "lun.img",
                       16 << 20)


def _urls(which: str, request: pytest.FixtureRequest) -> tuple[str, str]:
    """(portal URL, LUN 1 URL) of pytgtd or tgt."""
    if which == "tgt":
        t, _disk = request.getfixturevalue("tgt")
        return f"iscsi://127.0.0.1:{t.port}/", t.url(1)
    url = request.getfixturevalue("pytgt_url")
    return url.rsplit("/", 2)[0] + "/", url


@pytest.mark.parametrize("which", ["pytgt", "tgt"])
def test_ls_inq_readcap_match_libiscsi(which: str, request: pytest.FixtureRequest) -> None:
    for tool in ("iscsi-ls", "iscsi-inq", "iscsi-readcapacity16"):
        need(tool)
    portal, url = _urls(which, request)
    assert _ls_fields(ours("ls", "-s", portal)) == _ls_fields(theirs("iscsi-ls", "-s", portal))
    assert _fields(ours("inq", url)) == _fields(theirs("iscsi-inq", url))
    assert ours("readcap", url) == theirs("iscsi-readcapacity16", url)
    assert ours("readcap", "-s", url) == theirs("iscsi-readcapacity16", "-s", url)
    assert ours("discover", portal).split()[1] == theirs("iscsi-ls", portal).split()[0][7:]


@pytest.mark.parametrize("which", ["pytgt", "tgt"])
def test_dd_round_trip_is_byte_identical(which: str, request: pytest.FixtureRequest,
                                         tmp_path: Path) -> None:
    need("qemu-img")
    _portal, url = _urls(which, request)
    image = tmp_path / "in.img"
    with open(image, "wb") as f:  # data, a hole, data, and a tail shorter than a block
        f.write(os.urandom(5 << 20))
        f.seek(9 << 20)
        f.write(os.urandom((3 << 20) + 700))
    assert ours("dd", "--bs", "512k", "--qd", "4", str(image), url) == ""
    exported = tmp_path / "out.img"
    ours("dd", url, str(exported))
    assert exported.stat().st_size == 16 << 20
    by_qemu = tmp_path / "qemu.img"
    subprocess.run(["qemu-img", "convert", "-O", "raw", url, str(by_qemu)], check=True,
                   timeout=120)
    subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "raw", str(by_qemu),
                    str(exported)], check=True, timeout=120)
    # the LUN holds the image, then zeros (the end of its last block padded)
    padded = tmp_path / "padded.img"
    shutil.copy(image, padded)
    os.truncate(padded, 16 << 20)
    subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "raw", str(padded), url],
                   check=True, timeout=120)
