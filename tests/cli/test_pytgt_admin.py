"""pytgt-admin against a real pytgtd subprocess: execute, pretend, update, delete, state,
dump round trip, errors that apply nothing, persistence across restarts, 1,000 targets."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytgt.config.plan import restore_requests
from pytgt.config.spec import ConfigSpec
from pytgt.config.targets_conf import parse_text
from pytgt.daemon.control import request_sync
from tests.helpers import RunningDaemon, start_daemon

IQN = "iqn.2026-11.org.example:admin"


def admin(d: RunningDaemon, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pytgt.cli.pytgt_admin", "-C", str(d.control_port), *args]
    res = subprocess.run(cmd, env=d.env, capture_output=True, text=True, timeout=120)
    if check and res.returncode != 0:
        raise AssertionError(f"pytgt-admin {' '.join(args)} -> {res.returncode}:\n"
                             f"{res.stdout}\n{res.stderr}")
    return res


def dump(d: RunningDaemon) -> str:
    return admin(d, "--dump").stdout


def running(d: RunningDaemon) -> ConfigSpec:
    config, _ = parse_text(dump(d), "dump")
    return config


def targets(d: RunningDaemon) -> list[str]:
    out = d.adm("--op", "show", "--mode", "target").stdout
    return [line for line in out.splitlines() if line.startswith("Target ")]


def wait_log(d: RunningDaemon, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text in line for line in list(d.log)):
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in the daemon log:\n{''.join(d.log)}")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[RunningDaemon]:
    d = start_daemon(tmp_path)
    yield d
    d.stop()


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    out = []
    for name in ("a.img", "b.img", "c.img"):
        path = tmp_path / name
        with open(path, "wb") as f:
            f.truncate(4 << 20)
        out.append(path)
    return out


def full_conf(images: list[Path]) -> str:
    a, b, c = images
    return f"""
incomingdiscoveryuser disc discpass
<target {IQN}1>
    backing-store {a}
    backing-store {b}
    vendor_id VEND
    write-cache off
    MaxBurstLength 131072
    HeaderDigest CRC32C
    initiator-address 127.0.0.1
    initiator-name iqn.1994-05.com.example:client
    incominguser user1 secretpass12
    outgoinguser userA secretpassA
</target>
<target {IQN}2>
    <backing-store {c}>
        lun 5
        scsi_sn SERIAL5
        block-size 4096
        readonly 1
    </backing-store>
    <backing-store nullstore>
        bs-type null
        bsopts size=1G
        lun 6
    </backing-store>
    controller_tid 10
    incominguser user1 secretpass12
</target>
"""


def write(tmp_path: Path, text: str, name: str = "targets.conf") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_execute_creates_everything(daemon: RunningDaemon, tmp_path: Path,
                                    images: list[Path]) -> None:
    conf = write(tmp_path, full_conf(images))
    res = admin(daemon, "-c", conf, "-e")
    assert res.stdout == "" and res.stderr == ""
    assert targets(daemon) == [f"Target 1: {IQN}1", f"Target 10: {IQN}2"]
    show = daemon.adm("--op", "show", "--mode", "target").stdout
    assert "user1\n        userA (outgoing)" in show
    assert "127.0.0.1\n        iqn.1994-05.com.example:client" in show
    assert "SCSI SN: SERIAL5" in show and "Block size: 4096" in show
    params = daemon.adm("--op", "show", "--mode", "target", "--tid", "1").stdout
    assert "MaxBurstLength=131072" in params and "HeaderDigest=CRC32C" in params
    config = running(daemon)
    t1, t2 = config.targets
    assert [lu.write_cache for lu in t1.luns] == [False, False]
    assert t1.luns[0].params == {"vendor_id": "VEND"}
    assert t2.luns[1].bstype == "null" and t2.luns[1].bsopts == "size=1G"
    assert config.discovery_incoming == [("disc", "discpass")]
    # a second run changes nothing
    res = admin(daemon, "-c", conf, "-e", "-v")
    assert f"# Target {IQN}1 already exists!" in res.stdout
    assert "pytgtadm" not in res.stdout


def test_pretend_prints_pytgtadm_commands_and_changes_nothing(daemon: RunningDaemon,
                                                             tmp_path: Path,
                                                             images: list[Path]) -> None:
    conf = write(tmp_path, full_conf(images))
    res = admin(daemon, "-c", conf, "-e", "-p")
    port = daemon.control_port
    lines = res.stdout.splitlines()
    assert lines[0] == f"# Using {conf} as configuration file"
    assert f"# Adding target: {IQN}1" in lines
    assert (f"pytgtadm -C {port} --lld iscsi --op new --mode target --tid 1 -T {IQN}1"
            in lines)
    assert (f"pytgtadm -C {port} --lld iscsi --op bind --mode account --tid 10 --user user1"
            in lines)
    assert targets(daemon) == []
    # the commands printed are real pytgtadm command lines
    for line in lines:
        if line.startswith("pytgtadm "):
            daemon.adm(*line.split()[3:])
    assert dump(daemon) == _dump_after_execute(tmp_path, images)


def _dump_after_execute(tmp_path: Path, images: list[Path]) -> str:
    d = start_daemon(tmp_path / "other")
    try:
        admin(d, "-c", write(tmp_path, full_conf(images), "again.conf"), "-e")
        return dump(d)
    finally:
        d.stop()


def test_syntax_error_applies_nothing(daemon: RunningDaemon, tmp_path: Path,
                                      images: list[Path]) -> None:
    conf = write(tmp_path, full_conf(images) + f"<target {IQN}3>\n  colour blue\n</target>\n")
    res = admin(daemon, "-c", conf, "-e", check=False)
    assert res.returncode == 1
    line = len(full_conf(images).splitlines()) + 2
    assert res.stderr == f"{conf}:{line}: unknown directive: colour\n"
    assert targets(daemon) == []


def test_unsupported_store_type_and_bad_iscsi_value_apply_nothing(
        daemon: RunningDaemon, tmp_path: Path) -> None:
    conf = write(tmp_path, f"<target {IQN}>\n backing-store x\n bs-type sheepdog\n"
                           " MaxBurstLength lots\n</target>\n")
    res = admin(daemon, "-c", conf, "-e", check=False)
    assert res.returncode == 1
    assert f"{conf}:1: bad value for MaxBurstLength: 'lots'" in res.stderr
    assert f"{conf}:2: unknown bs-type sheepdog" in res.stderr
    assert targets(daemon) == []


def test_runtime_failure_stops_unless_ignore_errors(daemon: RunningDaemon,
                                                    tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    conf = write(tmp_path, f"<target {IQN}1>\n backing-store {tmp_path / 'adir'}\n</target>\n"
                           f"<target {IQN}2>\n</target>\n")
    res = admin(daemon, "-c", conf, "-e", check=False)
    assert res.returncode == 22
    assert res.stderr.startswith("pytgtadm: invalid request\nCommand:\n\tpytgtadm ")
    assert res.stderr.endswith("exited with code: 22.\n")
    assert targets(daemon) == [f"Target 1: {IQN}1"]
    res = admin(daemon, "-c", conf, "-e", "--ignore-errors")
    assert targets(daemon) == [f"Target 1: {IQN}1", f"Target 2: {IQN}2"]


def test_execute_removes_targets_not_in_the_file(daemon: RunningDaemon,
                                                 tmp_path: Path) -> None:
    daemon.adm("--op", "new", "--mode", "target", "--tid", "3", "-T", f"{IQN}old")
    conf = write(tmp_path, f"<target {IQN}new>\n</target>\n")
    res = admin(daemon, "-c", conf, "-e", "-v")
    assert f"# Removing target: {IQN}old" in res.stdout
    assert targets(daemon) == [f"Target 4: {IQN}new"]


def test_update_applies_the_difference(daemon: RunningDaemon, tmp_path: Path,
                                       images: list[Path]) -> None:
    conf = write(tmp_path, full_conf(images))
    admin(daemon, "-c", conf, "-e")
    changed = full_conf(images).replace("vendor_id VEND", "vendor_id NEWV") \
        .replace("initiator-address 127.0.0.1", "initiator-address 10.9.9.9") \
        .replace("MaxBurstLength 131072", "")
    write(tmp_path, changed)
    res = admin(daemon, "-c", conf, "--update", "tid=1", "-v")
    assert f"# Updating target: {IQN}1" in res.stdout
    assert "--op delete --mode target" not in res.stdout
    config = running(daemon)
    t1 = config.targets[0]
    assert t1.luns[0].params == {"vendor_id": "NEWV"}
    assert t1.initiator_addresses == ["10.9.9.9"]
    assert "MaxBurstLength" not in t1.iscsi_params
    res = admin(daemon, "-c", conf, "--update", "ALL", "-v")
    assert f"# Target {IQN}1 is up to date" in res.stdout
    assert f"# Target {IQN}2 is up to date" in res.stdout


def test_update_skips_a_target_in_use_unless_forced(daemon: RunningDaemon,
                                                    tmp_path: Path) -> None:
    from pytgt.initiator import Initiator

    conf = write(tmp_path, f"<target {IQN}>\n backing-store x\n bs-type null\n</target>\n")
    admin(daemon, "-c", conf, "-e")
    write(tmp_path, f"<target {IQN}>\n backing-store x\n bs-type null\n vendor_id NEW\n"
                    "</target>\n")
    logged_in, release = threading.Event(), threading.Event()

    async def hold() -> None:
        async with Initiator.login("127.0.0.1", daemon.port, target=IQN,
                                   initiator_name="iqn.1994-05.com.example:holder"):
            logged_in.set()
            await asyncio.get_running_loop().run_in_executor(None, release.wait, 30)

    thread = threading.Thread(target=asyncio.run, args=(hold(),))
    thread.start()
    try:
        assert logged_in.wait(20)
        res = admin(daemon, "-c", conf, "--update", "ALL")
        assert "is in use; not updated (use --force)" in res.stderr
        assert running(daemon).targets[0].luns[0].params == {}
        res = admin(daemon, "--delete", "ALL")
        assert "is in use; not removed" in res.stderr and targets(daemon)
        admin(daemon, "-c", conf, "--update", "ALL", "--force")
        assert running(daemon).targets[0].luns[0].params == {"vendor_id": "NEW"}
    finally:
        release.set()
        thread.join(30)


def test_delete_offline_ready(daemon: RunningDaemon, tmp_path: Path) -> None:
    conf = write(tmp_path, "".join(f"<target {IQN}{i}>\n</target>\n" for i in range(3)))
    admin(daemon, "-c", conf, "-e")
    admin(daemon, "--offline", "ALL")
    assert [t.state for t in running(daemon).targets] == ["ready"] * 3  # not in targets.conf
    show = daemon.adm("--op", "show", "--mode", "target").stdout
    assert show.count("State: offline") == 3
    admin(daemon, "--ready", "tid=2")
    show = daemon.adm("--op", "show", "--mode", "target").stdout
    assert show.count("State: offline") == 2
    admin(daemon, "--delete", f"{IQN}0")
    admin(daemon, "--delete", "tid=3")
    assert targets(daemon) == [f"Target 2: {IQN}1"]
    res = admin(daemon, "--delete", "tid=42", "-v")
    assert res.stdout == "# Target with tid 42 does not exist!\n"


def test_show_and_no_action(daemon: RunningDaemon, tmp_path: Path) -> None:
    admin(daemon, "-c", write(tmp_path, f"<target {IQN}>\n</target>\n"), "-e")
    assert admin(daemon, "-s").stdout == daemon.adm("--op", "show", "--mode", "target").stdout
    assert admin(daemon).stdout == "No action specified.\n"


def test_daemon_not_running(tmp_path: Path) -> None:
    env = dict(os.environ, PYTGT_RUN_DIR=str(tmp_path))
    res = subprocess.run([sys.executable, "-m", "pytgt.cli.pytgt_admin", "-C", "9", "-s"],
                         env=env, capture_output=True, text=True, timeout=30)
    assert res.returncode == 107 and "not connected" in res.stderr


def test_dump_round_trip(daemon: RunningDaemon, tmp_path: Path, images: list[Path]) -> None:
    admin(daemon, "-c", write(tmp_path, full_conf(images)), "-e")
    # changes made with pytgtadm are part of the dump too
    daemon.adm("--op", "update", "--mode", "logicalunit", "--tid", "10", "--lun", "5",
               "--params", "product_id=CHANGED,removable=1,thin_provisioning=0")
    daemon.adm("--op", "new", "--mode", "target", "--tid", "20", "-T", f"{IQN}bare")
    daemon.adm("--op", "bind", "--mode", "target", "--tid", "20", "-Q", "iqn.x:only")
    text = dump(daemon)
    assert "incominguser user1 secretpass12" in text  # real passwords (tgt prints a mask)
    assert "product_id CHANGED" in text and "initiator-address NONE" in text
    assert text.count("thin_provisioning") == 1  # only where it differs from the store's default
    # dump -> parse -> the same requests as the running configuration's
    parsed, _ = parse_text(text, "dump")
    path = os.path.join(daemon.env["PYTGT_RUN_DIR"], f"socket.{daemon.control_port}")
    rc, raw = request_sync(path, {"mode": "system", "op": "dump"})
    assert rc == 0
    live = ConfigSpec.from_dict(json.loads(raw)["config"])
    assert set(live.accounts) == {"user1", "userA", "disc"}  # all bound: all in the dump
    live.accounts = {}  # (accounts are created where targets.conf binds them)
    assert restore_requests(parsed) == restore_requests(live)
    # executing the dump in a fresh daemon recreates the same configuration
    other = start_daemon(tmp_path / "other")
    try:
        admin(other, "-c", write(tmp_path, text, "dumped.conf"), "-e")
        assert dump(other) == text
    finally:
        other.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_persistence_across_restart(tmp_path: Path, images: list[Path],
                                    sig: signal.Signals) -> None:
    d = start_daemon(tmp_path, extra=("--persist",))
    try:
        admin(d, "-c", write(tmp_path, full_conf(images)), "-e")
        d.adm("--op", "update", "--mode", "target", "--tid", "1", "-n", "state", "-v",
              "offline")
        d.adm("--op", "new", "--mode", "account", "--user", "spare", "--password", "pw")
        before = dump(d)
        state = tmp_path / "state" / "config.json"
        assert oct(state.stat().st_mode & 0o777) == "0o600"
    finally:
        if sig == signal.SIGKILL:
            d.proc.kill()
            d.proc.wait(10)
        d.stop()
    d = start_daemon(tmp_path, extra=("--persist",))
    try:
        wait_log(d, "configuration restored")
        after = dump(d)
        assert after.splitlines() == before.splitlines()
        assert "State: offline" in d.adm("--op", "show", "--mode", "target").stdout
        assert "spare" in d.adm("--op", "show", "--mode", "account").stdout
    finally:
        d.stop()


def test_restore_reports_errors_and_restores_the_rest(tmp_path: Path,
                                                      images: list[Path]) -> None:
    d = start_daemon(tmp_path, extra=("--persist",))
    try:
        admin(d, "-c", write(tmp_path, full_conf(images)), "-e")
    finally:
        d.stop()
    images[0].unlink()  # LUN 1 of target 1 cannot come back
    d = start_daemon(tmp_path, extra=("--persist",))
    try:
        wait_log(d, "configuration restored")
        log = "".join(d.log)
        assert "restoring logicalunit new tid=1 lun=1" in log
        assert "restoring logicalunit update tid=1 lun=1: can't find the logical unit" in log
        assert "(2 errors)" in log
        config = running(d)
        assert [lu.lun for lu in config.targets[0].luns] == [2]
        assert [lu.lun for lu in config.targets[1].luns] == [5, 6]
        assert (tmp_path / "state" / "config.json.bak").exists()
    finally:
        d.stop()


def test_pytgtd_config_applies_a_targets_conf_at_start(tmp_path: Path,
                                                       images: list[Path]) -> None:
    conf = write(tmp_path, full_conf(images))
    d = start_daemon(tmp_path, extra=("--config", conf))
    try:
        deadline = time.monotonic() + 20
        while len(targets(d)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert targets(d) == [f"Target 1: {IQN}1", f"Target 10: {IQN}2"]
    finally:
        d.stop()


def test_pytgtd_config_with_errors_refuses_to_start(tmp_path: Path) -> None:
    conf = write(tmp_path, "bogus directive\n")
    env = dict(os.environ, PYTGT_RUN_DIR=str(tmp_path / "run"),
               PYTGT_STATE_DIR=str(tmp_path / "state"))
    res = subprocess.run([sys.executable, "-m", "pytgt.daemon.main", "-f", "-C", "77",
                          "--iscsi", "portal=127.0.0.1:0", "--config", conf],
                         env=env, capture_output=True, text=True, timeout=30)
    assert res.returncode == 1
    assert f"pytgtd: {conf}:1: unknown directive: bogus" in res.stderr


@pytest.mark.parametrize("persist", [False, True])
def test_one_thousand_targets_under_ten_seconds(tmp_path: Path, persist: bool) -> None:
    conf = write(tmp_path, "".join(
        f"<target iqn.2026-11.org.example:bench{i:04d}>\n"
        "    backing-store /dev/null\n    bs-type null\n</target>\n" for i in range(1000)))
    d = start_daemon(tmp_path, extra=("--persist",) if persist else ())
    try:
        start = time.monotonic()
        admin(d, "-c", conf, "-e")
        elapsed = time.monotonic() - start
        print(f"1000 targets applied in {elapsed:.2f} s (persist={persist})")
        assert elapsed < 10
        assert len(targets(d)) == 1000
    finally:
        d.stop()


def test_pretend_without_a_daemon_and_help(tmp_path: Path) -> None:
    conf = write(tmp_path, f"<target {IQN}>\n  backing-store \"x y\"\n  bs-type null\n"
                           "  vendor_id \"A B\"\n</target>\n")
    env = dict(os.environ, PYTGT_RUN_DIR=str(tmp_path))
    cmd = [sys.executable, "-m", "pytgt.cli.pytgt_admin", "-C", "9"]
    res = subprocess.run([*cmd, "-c", conf, "-e", "-p"], env=env, capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 0
    assert res.stdout.splitlines()[2:] == [
        f"# Adding target: {IQN}",
        f"pytgtadm -C 9 --lld iscsi --op new --mode target --tid 1 -T {IQN}",
        "pytgtadm -C 9 --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 "
        "-b 'x y' --bstype null --params 'vendor_id=A B'",
        "pytgtadm -C 9 --lld iscsi --op bind --mode target --tid 1 -I ALL"]
    res = subprocess.run([*cmd, "-h"], env=env, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and "--update" in res.stdout and "--dump" in res.stdout


def test_tape_lu_round_trip(tmp_path: Path) -> None:
    """A -Y tape LU (a pytgtimg image): --dump writes device-type tape, the dump loads
    back with -e, and it survives a --persist restart."""
    from pytgt.cli.pytgtimg import main as pytgtimg

    tape = tmp_path / "tape0.img"
    assert pytgtimg(["--op", "new", "--device-type", "tape", "--barcode", "T0001",
                     "--size", "4", "--type", "data", "--file", str(tape)]) == 0
    d = start_daemon(tmp_path, extra=("--persist",))
    try:
        d.adm("--op", "new", "--mode", "target", "--tid", "1", "-T", f"{IQN}tape")
        d.adm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1",
              "-Y", "tape", "-b", str(tape))
        before = dump(d)
    finally:
        d.stop()
    assert f"\t<backing-store {tape}>\n\t\tlun 1\n\t\tdevice-type tape\n" in before
    d = start_daemon(tmp_path, extra=("--persist",))
    try:
        wait_log(d, "configuration restored")
        assert dump(d) == before
        assert "Type: tape" in d.adm("--op", "show", "--mode", "target").stdout
    finally:
        d.stop()
    other = start_daemon(tmp_path / "other")
    try:
        admin(other, "-c", write(tmp_path, before, "tape.conf"), "-e")
        assert dump(other) == before
    finally:
        other.stop()
