"""Login redirection and draining a gateway with libiscsi, which follows redirects.

Two targets on 127.0.0.1 export the same file. A client reading through A (QEMU's
libiscsi driver copying the LUN with ``qemu-img convert``; A held to 8 MiB/s by QoS so
the copy is still running) sees A redirect to B and drain: libiscsi logs out on the
logout request, logs in to A again, is redirected and finishes on B, with no I/O error
and every byte right. libiscsi's ``iscsi-inq`` and ``iscsi-ls`` follow a redirecting
target too, and pytgt's initiator reports where the target moved.

(``iscsi-perf`` is not used here: libiscsi 1.19's tool never finishes after any
reconnect, against tgt as against pytgt: its in-flight count never returns to zero.)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from pytgt.initiator import Initiator, LoginFailed
from pytgt.scsi.lu import LogicalUnit
from pytgt.testing import ServedTarget, serve

SIZE = 32 << 20
needs_libiscsi = pytest.mark.skipif(shutil.which("iscsi-inq") is None,
                                    reason="needs libiscsi-bin")


def _lu(t: ServedTarget) -> LogicalUnit:
    lu: LogicalUnit = t.daemon.registry.targets[1].scsi.luns[1]
    return lu


def _update(t: ServedTarget, **request: object) -> None:
    rc, out = t.admin({"mode": "target", "op": "update", "tid": 1, **request})
    assert rc == 0, out


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "shared.img"
    path.write_bytes(os.urandom(SIZE))
    return path


@pytest.fixture
def gateways(image: Path) -> Iterator[tuple[ServedTarget, ServedTarget]]:
    with ExitStack() as stack:
        a = stack.enter_context(serve(str(image), bstype="rdwr", params="max_bps=8M"))
        b = stack.enter_context(serve(str(image), bstype="rdwr"))
        yield a, b


def _wait_for(cond: object, timeout: float = 30.0) -> None:
    """Poll ``cond()`` until true, bounded (the client runs in another process)."""
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


@needs_libiscsi
@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-utils")
def test_drain_moves_a_running_copy_to_the_other_gateway(
        gateways: tuple[ServedTarget, ServedTarget], image: Path, tmp_path: Path) -> None:
    a, b = gateways
    out = tmp_path / "copy.raw"
    proc = subprocess.Popen(["qemu-img", "convert", "-O", "raw", a.url, str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(lambda: _lu(a).stat_read_bytes >= 2 << 20 or proc.poll() is not None)
        assert proc.poll() is None, "the copy ended before the drain"
        _update(a, params=f"RedirectAddress=127.0.0.1,RedirectPort={b.port},drain=2")
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, output
    assert out.read_bytes() == image.read_bytes()
    read_a, read_b = _lu(a).stat_read_bytes, _lu(b).stat_read_bytes
    assert 2 << 20 <= read_a < SIZE and read_b > 0 and read_a + read_b >= SIZE
    assert not a.daemon.registry.targets[1].nexuses  # nobody left on the drained gateway


@needs_libiscsi
def test_libiscsi_tools_follow_a_temporary_redirect(
        gateways: tuple[ServedTarget, ServedTarget]) -> None:
    a, b = gateways
    _update(a, params=f"RedirectAddress=127.0.0.1,RedirectPort={b.port}")
    _update(a, name="state", value="offline")  # a redirect answers even an offline target
    before = _lu(b).stat_other_cmds
    res = subprocess.run(["iscsi-inq", a.url], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "Peripheral Device Type:DIRECT_ACCESS" in res.stdout, \
        res.stdout + res.stderr
    assert _lu(b).stat_other_cmds > before and _lu(a).stat_other_cmds == 0
    res = subprocess.run(["iscsi-ls", "-s", f"iscsi://127.0.0.1:{a.port}/"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "Lun:1" in res.stdout, res.stdout + res.stderr


@needs_libiscsi
def test_permanent_redirect_status(gateways: tuple[ServedTarget, ServedTarget]) -> None:
    """libiscsi 1.19 follows only 0101h; it reports 0102h (258) as the login's status."""
    a, b = gateways
    _update(a, params=f"RedirectAddress=127.0.0.1,RedirectPort={b.port},"
                      "RedirectReason=Permanent")
    res = subprocess.run(["iscsi-inq", a.url], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "Target moved permanently(258)" in res.stderr, res.stderr


def test_pytgt_initiator_sees_the_redirection(gateways: tuple[ServedTarget, ServedTarget]) -> None:
    """pytgt's initiator reports 0102h with the TargetAddress, and logs in there."""
    a, b = gateways
    _update(a, params=f"RedirectAddress=127.0.0.1,RedirectPort={b.port},"
                      "RedirectReason=Permanent")

    async def scenario() -> None:
        with pytest.raises(LoginFailed) as info:
            await Initiator.login(a.host, a.port, target=a.iqn)
        assert info.value.status == 0x0102
        assert info.value.redirect == f"127.0.0.1:{b.port}"
        host, port = info.value.redirect.rsplit(":", 1)
        async with Initiator.login(host, int(port), target=a.iqn) as s:
            assert len(await s.read16(1, 0, 1)) == 512

    asyncio.run(scenario())
