"""``pytgt-iscsi``: URLs, each command against a pytgt target, exit statuses and messages."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import pytgt.testing
from pytgt.cli.iscsi_copy import size_arg
from pytgt.cli.iscsi_status import EXIT_EACCES, EXIT_EINVAL, EXIT_ENODEV, EXIT_ENOTCONN
from pytgt.cli.iscsi_url import IscsiUrl, UrlError, parse_url
from pytgt.cli.pytgt_iscsi import build_parser, main

SRC = str(Path(__file__).resolve().parents[2] / "src")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """``pytgt-iscsi ARGS`` in this process (a new event loop), its output captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(list(args))
        except SystemExit as exc:  # argparse
            status = int(exc.code or 0)
    return subprocess.CompletedProcess(list(args), status, out.getvalue(), err.getvalue())


def test_the_command_runs_as_a_program(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "pytgt.cli.pytgt_iscsi", "readcap",
                          "iscsi://127.0.0.1:1/iqn.2026-12.org.x:y/1"], capture_output=True,
                         text=True, timeout=60, env=dict(os.environ, PYTHONPATH=SRC))
    assert res.returncode == EXIT_ENOTCONN
    assert res.stderr == "pytgt-iscsi: cannot connect: Connection refused\n"


@pytest.mark.parametrize("text, url", [
    ("iscsi://127.0.0.1/iqn.a:b/1", IscsiUrl("127.0.0.1", 3260, "iqn.a:b", 1)),
    ("iscsi://h:3261/iqn.a:b/0", IscsiUrl("h", 3261, "iqn.a:b", 0)),
    ("iscsi://[::1]:3262/iqn.a:b/2", IscsiUrl("::1", 3262, "iqn.a:b", 2)),
    ("iscsi://u%x%s3cret@h/iqn.a:b/1",
     IscsiUrl("h", 3260, "iqn.a:b", 1, chap=("u", "x%s3cret"))),
])
def test_urls_as_libiscsi_reads_them(text: str, url: IscsiUrl) -> None:
    assert parse_url(text, env={}) == url


def test_portal_urls_and_chap_from_the_environment() -> None:
    env = {"LIBISCSI_CHAP_USERNAME": "u", "LIBISCSI_CHAP_PASSWORD": "p",
           "LIBISCSI_CHAP_TARGET_USERNAME": "tu", "LIBISCSI_CHAP_TARGET_PASSWORD": "tp"}
    url = parse_url("iscsi://[::1]/", need_lun=False, env=env)
    assert (url.host, url.target, url.chap, url.mutual_chap) == ("::1", None, ("u", "p"),
                                                                  ("tu", "tp"))
    assert str(url) == "iscsi://[::1]:3260/"


@pytest.mark.parametrize("text, error", [
    ("http://h/iqn/1", "must start with iscsi://"), ("iscsi:///iqn/1", "no host"),
    ("iscsi://h:0/iqn/1", "bad port 0"), ("iscsi://h/iqn.a:b", "expected"),
    ("iscsi://h/iqn.a:b/x", "bad LUN x"), ("iscsi://h/", "expected"),
])
def test_bad_urls(text: str, error: str) -> None:
    with pytest.raises(UrlError, match=error):
        parse_url(text, env={})


def test_sizes() -> None:
    assert [size_arg(s) for s in ("512", "4k", "1M", "2GiB")] == [512, 4096, 1 << 20, 2 << 30]


def test_every_command_has_help() -> None:
    p = build_parser()
    out = p.format_help()
    for cmd in ("discover", "ls", "inq", "readcap", "dd", "bench"):
        assert cmd in out


@pytest.fixture(scope="module")
def target() -> Iterator[pytgt.testing.ServedTarget]:
    with pytgt.testing.serve(size=8 << 20) as t:
        yield t


def test_discover_ls_inq_readcap(target: pytgt.testing.ServedTarget) -> None:
    portal = f"iscsi://{target.portal}/"
    res = run("discover", portal)
    assert res.returncode == 0 and res.stdout == f"{target.portal},1 {target.iqn}\n"
    res = run("ls", "-s", portal)
    assert res.stdout.splitlines() == [
        f"Target:{target.iqn} Portal:{target.portal},1",
        "Lun:0    Type:STORAGE_ARRAY_CONTROLLER", "Lun:1    Type:DIRECT_ACCESS (Size:8M)"]
    res = run("inq", target.url)
    assert "Peripheral Device Type:DIRECT_ACCESS" in res.stdout.splitlines()
    res = run("inq", "-e", "1", "-c", "0x80", target.url)
    assert res.returncode == 0 and res.stdout.startswith("Unit Serial Number:[")
    res = run("readcap", "-s", target.url)
    assert res.stdout == f"{8 << 20}\n"


def test_dd_round_trip_and_bench(target: pytgt.testing.ServedTarget, tmp_path: Path) -> None:
    image = tmp_path / "in.img"
    image.write_bytes(os.urandom(3 << 20) + bytes(1 << 20) + os.urandom(1000))
    res = run("dd", "--bs", "256k", "--progress", str(image), target.url)
    assert res.returncode == 0, res.stderr
    assert "100%" in res.stderr and "MiB/s" in res.stderr
    out = tmp_path / "out.img"
    res = run("dd", target.url, str(out))
    assert res.returncode == 0 and res.stderr == ""  # no progress off a terminal
    data = out.read_bytes()
    assert len(data) == 8 << 20
    assert data[:image.stat().st_size] == image.read_bytes()
    assert data[image.stat().st_size:] == bytes(len(data) - image.stat().st_size)
    assert os.stat(out).st_blocks * 512 < len(data)  # zeros not written: sparse
    res = run("bench", "--rw", "randread", "--time", "0.5", "--qd", "4", target.url)
    assert res.returncode == 0 and " IOPS, " in res.stdout, res.stderr


def test_exit_statuses_and_messages(target: pytgt.testing.ServedTarget,
                                    tmp_path: Path) -> None:
    bad_lun = target.url.rsplit("/", 1)[0] + "/9"
    cases = [
        (("readcap", bad_lun), EXIT_ENODEV, f"no LUN 9 on {target.iqn}"),
        (("readcap", f"iscsi://{target.portal}/iqn.2026-12.org.x:none/1"), EXIT_ENODEV,
         "login failed: not found (status 0x0203)"),
        (("readcap", "iscsi://127.0.0.1:1/iqn.2026-12.org.x:y/1"), EXIT_ENOTCONN,
         "cannot connect: "),
        (("readcap", "http://x/"), EXIT_EINVAL, "invalid URL http://x/"),
        (("inq", "--bogus", target.url), EXIT_EINVAL, "unrecognized arguments: --bogus"),
        (("dd", target.url, target.url, "--bs", "1000"), EXIT_EINVAL,
         "--bs 1000 is not a multiple of the block size 512"),
    ]
    big = tmp_path / "big.img"
    big.write_bytes(bytes(9 << 20))
    cases.append((("dd", str(big), target.url), EXIT_EINVAL, "does not fit in"))
    for args, status, message in cases:
        res = run(*args)
        assert res.returncode == status, (args, res.stderr)
        assert res.stderr.startswith("pytgt-iscsi: ") and message in res.stderr, res.stderr
        assert res.stdout == ""


def test_chap_from_the_url_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytgt.testing.serve(size=1 << 20, iqn="iqn.2026-12.org.pytgt:chap") as t:
        for req in ({"mode": "account", "op": "new", "user": "alice",
                     "password": "s3cret-s3cret"},
                    {"mode": "account", "op": "bind", "tid": 1, "user": "alice"}):
            assert t.admin(req)[0] == 0
        url = f"iscsi://alice%s3cret-s3cret@{t.portal}/{t.iqn}/1"
        assert run("readcap", "-s", url).stdout == f"{1 << 20}\n"
        res = run("readcap", f"iscsi://alice%wrong@{t.portal}/{t.iqn}/1")
        assert res.returncode == EXIT_EACCES
        assert "login failed: authentication failure" in res.stderr
        monkeypatch.setenv("LIBISCSI_CHAP_USERNAME", "alice")
        monkeypatch.setenv("LIBISCSI_CHAP_PASSWORD", "s3cret-s3cret")
        assert run("readcap", "-s", t.url).returncode == 0
