"""pytgt.testing.serve: a real target inside a test, in one line."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import pytgt
import pytgt.testing


def test_serve_a_ram_disk_to_libiscsi() -> None:
    if shutil.which("iscsi-readcapacity16") is None:
        pytest.fail("libiscsi-bin is not installed")
    with pytgt.serve(size=8 << 20) as t:
        assert t.host == "127.0.0.1" and t.port > 0
        res = subprocess.run(["iscsi-readcapacity16", t.url], capture_output=True, text=True,
                             timeout=60)
        assert res.returncode == 0, res.stderr
        assert "Total size:8388608" in res.stdout


def test_serve_a_file_readonly(tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\x5a" * (1 << 20))
    with pytgt.testing.serve(str(disk), params="readonly=1") as t:
        rc, out = t.admin({"mode": "target", "op": "show"})
        assert rc == 0
        assert f"Backing store path: {disk}" in out
        assert "Readonly: Yes" in out


def test_serve_reports_a_bad_backing_store(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="setup failed"), \
            pytgt.testing.serve(str(tmp_path / "missing.img")):
        pass


def test_readme_library_example_runs() -> None:
    """The README's initiator example, as written: helpers ride over the power-on UA."""
    import asyncio

    from pytgt.initiator import Initiator

    async def body(t: pytgt.testing.ServedTarget) -> None:
        async with Initiator.login(t.host, t.port, target=t.iqn) as s:
            cap = await s.read_capacity16(lun=1)
            await s.write16(1, 0, b"\0" * 4096)
            assert cap.last_lba == (8 << 20) // 512 - 1
            assert s.unit_attentions and s.unit_attentions[0][12] == 0x29

    with pytgt.serve(size=8 << 20) as t:
        asyncio.run(asyncio.wait_for(body(t), 30))
