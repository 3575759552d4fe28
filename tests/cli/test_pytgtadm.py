"""pytgtadm's command line: tgtadm's options, client-side checks, messages and exit statuses.

Every expected (status, message) below was produced by tgtadm 1.0.85 for the same command
line (with ``tgtadm`` where we print ``pytgtadm``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytgt.cli import pytgtadm
from pytgt.cli.pytgtadm import main, parse_args
from pytgt.daemon.control import serve_control

NOT_CONNECTED = ("pytgtadm: failed to send request hdr to tgt daemon, "
                 "Transport endpoint is not connected")
TRY = "Try `pytgtadm --help' for more information."


@pytest.fixture(autouse=True)
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PYTGT_RUN_DIR", str(tmp_path))
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err.strip()


CASES = [
    ("--op show --mode target -t abc", 22, f"-t argument value 'abc' invalid\n{TRY}"),
    ("--op show --mode target -t -1", 22, f"-t argument value '-1' invalid\n{TRY}"),
    ("--op new --mode target --tid 99999999999 -T x", 22,
     f"-t argument value '99999999999' out of range\n{TRY}"),
    ("--op show --mode target -s abc", 22, f"-s argument value 'abc' invalid\n{TRY}"),
    ("-C abc --op show --mode target", 22, f"-C argument value 'abc' invalid\n{TRY}"),
    ("--op show --mode target extra", 22, f"pytgtadm: unrecognized option 'extra'\n{TRY}"),
    ("--op show --mode target --bogus", 22, f"pytgtadm: unrecognized option '--bogus'\n{TRY}"),
    ("--op show --mode target -Z", 22, f"pytgtadm: invalid option -- 'Z'\n{TRY}"),
    ("--op show --mode target --tid", 22,
     f"pytgtadm: option '--tid' requires an argument\n{TRY}"),
    ("-b", 22, f"pytgtadm: option requires an argument -- 'b'\n{TRY}"),
    ("--o show", 22,
     f"pytgtadm: option '--o' is ambiguous; possibilities: '--op' '--outgoing'\n{TRY}"),
    ("--force=1", 22, f"pytgtadm: option '--force' doesn't allow an argument\n{TRY}"),
    ("--op bogus --mode target", 1, "pytgtadm: unknown operation: bogus"),
    ("--op show --mode bogus", 1, "pytgtadm: unknown mode: bogus"),
    ("--lld iscsi --mode target", 22, "pytgtadm: specify the operation type"),
    ("--lld iscsi --op show", 22, "pytgtadm: specify the mode"),
    ("--op new --mode target --tid 0 -T x", 22, "pytgtadm: 'tid' cannot be 0"),
    ("--op delete --mode target --tid 0", 22, "pytgtadm: 'tid' cannot be 0"),
    ("--op new --mode target --tid 3", 22,
     "pytgtadm: creating new target requires a name, use --targetname"),
    ("--op new --mode target -T x -l 1", 22, "pytgtadm: 'tid' option is necessary"),
    ("--op new --mode target --tid 2 -T x --lun 3", 22,
     "pytgtadm: target mode: option '-l' is not allowed/supported"),
    ("--op show --mode target --sid 1", 22,
     "pytgtadm: target mode: option '-s' is not allowed/supported"),
    ("--op new --mode target --tid 3 -T x --force", 22,
     "pytgtadm: target mode: option '-F' is not allowed/supported"),
    ("--op bind --mode target --tid 1", 22,
     "pytgtadm: bind operation requires initiator-address, initiator-nameor bus"),
    ("--op unbind --mode target --tid 1", 22,
     "pytgtadm: unbind operation requires initiator-address, initiator-nameor bus"),
    ("--op bind --mode target -I ALL", 22, "pytgtadm: 'tid' option is necessary"),
    ("--op update --mode target --tid 1 --name state", 22,
     "pytgtadm: update operation requires 'name' and 'value' options"),
    ("--op start --mode target -t 1", 22,
     "pytgtadm: operation start not supported in target mode"),
    ("--op new --mode logicalunit --tid 1 -b /x", 22, "pytgtadm: 'lun' option is necessary"),
    ("--op new --mode logicalunit --tid 0 --lun 1", 22, "pytgtadm: 'tid' must not be 0"),
    ("--op show --mode logicalunit --tid 1 --lun 1", 22,
     "pytgtadm: operation show not supported in logicalunit mode"),
    ("--op new --mode logicalunit --tid 1 --lun 1 -Y bogus", 22,
     "pytgtadm: unknown target type: bogus"),
    ("--op update --mode logicalunit --tid 1 --lun 1 -n x -v y", 22,
     "pytgtadm: option '-n' not supported in logicalunit mode"),
    ("--op new --mode account --user u2", 22,
     "pytgtadm: 'user' and 'password' options are required"),
    ("--op new --mode account -u a -p b -t 1", 22,
     "pytgtadm: account mode: option '-t' is not allowed/supported"),
    ("--op bind --mode account -t 1", 22, "pytgtadm: 'user' option is necessary"),
    ("--op show --mode account -u x", 22,
     "pytgtadm: account mode: option '-u' is not allowed/supported"),
    ("--op update --mode account -u x", 22,
     "pytgtadm: operation update not supported in account mode"),
    ("--op update --mode system", 22,
     "pytgtadm: update operation requires 'name' and 'value' options"),
    ("--op new --mode system", 22, "pytgtadm: operation new not supported in system mode"),
    ("--op start --mode lld -t 1", 22,
     "pytgtadm: lld mode: option '-t' is not allowed/supported"),
    ("--op new --mode lld", 22, "pytgtadm: option 0 not supported in lld mode"),
    ("--op update --mode lld", 22, "pytgtadm: option 5 not supported in lld mode"),
]


@pytest.mark.parametrize("line, status, message", CASES, ids=[c[0] for c in CASES])
def test_client_side_errors(capsys: pytest.CaptureFixture[str], line: str, status: int,
                            message: str) -> None:
    rc, out, err = run(capsys, "-C", "79", *line.split())
    assert (rc, out, err) == (status, "", message)


@pytest.mark.parametrize("line", [
    "--op show --mode target", "--op show --mode target -t 0x10",
    "--op new --mode logicalunit --tid 1 --lun 1 -Y cd", "--op show --mode lld",
    "--op delete --mode conn --tid 1", "--op show --mode system --tid 1"])
def test_no_daemon_is_not_connected(capsys: pytest.CaptureFixture[str], line: str) -> None:
    assert run(capsys, "-C", "79", *line.split()) == (107, "", NOT_CONNECTED)


def test_request_fields() -> None:
    line = ("-C 5 -L iscsi -o new -m lu -t 0x10 -l 010 -b /f -E rdwr -S a=b -f sync -y 4096 "
            "-Y disk -P readonly=1")
    req, port, given = parse_args(line.split())
    assert port == 5 and given >= {"C", "t", "l", "P"}
    assert req == {**req, "mode": "logicalunit", "op": "new", "tid": 16, "lun": 8,
                        "backing_store": "/f", "bstype": "rdwr", "bsopts": "a=b",
                        "bsoflags": "sync", "blocksize": 4096, "device_type": "disk",
                        "params": "readonly=1", "lld": "iscsi", "force": False}
    req, _, _ = parse_args(["--mode=account", "--op", "bind", "--user=u", "--outgoing",
                            "--tid", "1", "--initiator-address", "ALL",
                            "--initiator-name", "iqn.x", "--password", "p", "-F"])
    assert (req["outgoing"], req["force"], req["user"], req["initiator_address"],
            req["initiator_name"]) == (True, True, "u", "ALL", "iqn.x")
    for key in ("mode", "op", "tid", "lun", "targetname", "backing_store", "bstype", "bsopts",
                "bsoflags", "blocksize", "device_type", "initiator_address",
                "initiator_name", "user", "password", "outgoing", "params", "name", "value",
                "force", "sid", "cid", "lld"):
        assert key in req


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "--help")
    assert rc == 0 and "--mode target --op new" in out
    assert run(capsys, "-V") == (0, pytgtadm.VERSION + "\n", "")


class _Daemon:
    """A control socket served from a background event loop, answering with the request."""

    def __init__(self, path: str, answer: tuple[int, str] | None = None) -> None:
        self.path, self.answer = path, answer
        self.requests: list[dict[str, Any]] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def handle(self, request: dict[str, Any]) -> tuple[int, str]:
        self.requests.append(request)
        return self.answer or (0, json.dumps(request) + "\n")

    def __enter__(self) -> _Daemon:
        self.thread.start()
        fut = asyncio.run_coroutine_threadsafe(serve_control(self.path, self), self.loop)
        self.server = fut.result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self.server.close()
            others = asyncio.all_tasks() - {asyncio.current_task()}
            if others:
                await asyncio.wait(others, timeout=5)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def daemon(run_dir: Path) -> Iterator[_Daemon]:
    with _Daemon(str(run_dir / "socket.7")) as d:
        yield d


def test_show_output_on_stdout(capsys: pytest.CaptureFixture[str], daemon: _Daemon) -> None:
    rc, out, err = run(capsys, "-C", "7", "--lld", "iscsi", "--op", "show", "--mode", "target")
    assert rc == 0 and err == ""
    assert json.loads(out)["mode"] == "target" and daemon.requests[0]["op"] == "show"


def test_daemon_error_on_stderr(capsys: pytest.CaptureFixture[str], run_dir: Path) -> None:
    with _Daemon(str(run_dir / "socket.8"), (22, "can't find the target")):
        rc, out, err = run(capsys, "-C", "8", "--op", "delete", "--mode", "target", "-t", "9")
    assert (rc, out, err) == (22, "", "pytgtadm: can't find the target")


def test_module_entry_point(run_dir: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "pytgt.cli.pytgtadm", "-C", "79", "--op",
                          "show", "--mode", "target"], capture_output=True, text=True,
                         timeout=60)
    assert (res.returncode, res.stderr.strip()) == (107, NOT_CONNECTED)
