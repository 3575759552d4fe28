"""The README's quick start as a non-root user, as a container runs it: pytgtd on an
unprivileged port with its state and control socket in that user's own directories
(``~/.local/state/pytgt``, ``$XDG_RUNTIME_DIR/pytgt``), reached with libiscsi's
``iscsi-ls`` and ``iscsi-inq`` and administered with pytgtadm as the same user.

Run as root, the test makes a throwaway system user (``useradd``) and drops to it in the
daemon's process (``Popen(user=...)``); run as anyone else, it is that user."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")
URL = re.compile(r"serving (\S+) as (iscsi://\S+)")

pytestmark = pytest.mark.skipif(shutil.which("iscsi-inq") is None, reason="needs libiscsi-bin")


@pytest.fixture
def user() -> Iterator[tuple[int, int, Path]]:
    """(uid, gid, a fresh HOME owned by them): a throwaway user when we are root."""
    home = Path(tempfile.mkdtemp(prefix="pytgt-home-"))
    if os.geteuid() != 0:
        yield os.getuid(), os.getgid(), home
        shutil.rmtree(home, ignore_errors=True)
        return
    if shutil.which("useradd") is None:
        pytest.skip("needs useradd to make a non-root user")
    name = f"pytgt-t{os.getpid() % 100000}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", str(home),
                    "--shell", "/usr/sbin/nologin", name], check=True, timeout=60)
    try:
        entry = pwd.getpwnam(name)
        os.chown(home, entry.pw_uid, entry.pw_gid)
        os.chmod(home, 0o700)
        yield entry.pw_uid, entry.pw_gid, home
    finally:
        subprocess.run(["userdel", name], timeout=60)
        shutil.rmtree(home, ignore_errors=True)


def test_quick_start_as_non_root(user: tuple[int, int, Path]) -> None:
    uid, gid, home = user
    assert uid != 0
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "XDG_RUNTIME_DIR": str(home / "run"), "PYTHONPATH": SRC, "LANG": "C.UTF-8"}
    os.makedirs(home / "run", mode=0o700)
    as_user = {"user": uid, "group": gid, "extra_groups": []} if os.geteuid() == 0 else {}
    if as_user:
        os.chown(home / "run", uid, gid)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "pytgt.daemon.main", "-f", "--iscsi", "portal=127.0.0.1:0",
         "--quickstart", "64M"], env=env, cwd=str(home), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, **as_user)  # type: ignore[call-overload]
    try:
        assert daemon.stdout is not None
        lines: list[str] = []
        for line in daemon.stdout:  # ends at the URL line (or EOF if it failed)
            lines.append(line)
            if (m := URL.search(line)) is not None:
                break
        assert m is not None, "".join(lines)
        image, url = Path(m.group(1)), m.group(2)
        assert image == home / ".local" / "state" / "pytgt" / "quickstart-lun1.img"
        st = image.stat()
        assert (st.st_uid, st.st_mode & 0o777, st.st_size) == (uid, 0o600, 64 << 20)
        assert (home / "run" / "pytgt" / "socket.0").is_socket()
        portal = url.split("/")[2]
        res = subprocess.run(["iscsi-ls", "-s", f"iscsi://{portal}/"], capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 0 and "Lun:1" in res.stdout, res.stdout + res.stderr
        res = subprocess.run(["iscsi-inq", url], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and "DIRECT_ACCESS" in res.stdout, res.stdout + res.stderr
        res = subprocess.run([sys.executable, "-m", "pytgt.cli.pytgtadm", "--op", "show",
                              "--mode", "target"], env=env, capture_output=True, text=True,
                             timeout=60, **as_user)  # type: ignore[call-overload]
        assert res.returncode == 0 and str(image) in res.stdout, res.stdout + res.stderr
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(timeout=10)


def test_containerfile_runs_the_quick_start_unprivileged() -> None:
    """contrib/Containerfile (not built here: no registry) runs the same command as a
    non-root USER, with its state and run directories, from files that exist."""
    root = Path(SRC).parent
    lines = [ln.strip() for ln in (root / "contrib" / "Containerfile").read_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    names = {"FROM", "RUN", "COPY", "ENV", "USER", "WORKDIR", "VOLUME", "EXPOSE", "STOPSIGNAL",
             "ENTRYPOINT", "CMD"}
    directives = {ln.split(None, 1)[0]: ln.split(None, 1)[1] for ln in lines
                  if ln.split(None, 1)[0] in names}
    assert directives["FROM"].startswith("docker.io/library/debian:")
    assert directives["USER"] == "pytgt"
    assert directives["ENTRYPOINT"] == '["pytgtd", "-f", "--iscsi", "portal=0.0.0.0:3260"]'
    assert directives["CMD"] == '["--quickstart"]'
    env = " ".join(ln for ln in lines if "PYTGT_" in ln)
    assert "PYTGT_STATE_DIR=/var/lib/pytgt" in env and "PYTGT_RUN_DIR=/run/pytgt" in env
    for line in lines:
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (root / src).exists(), src
