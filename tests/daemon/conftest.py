"""Fixtures for the control-plane tests: a Management over a fresh Registry."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytgt.config.model import Registry
from pytgt.daemon.mgmt import Management
from pytgt.iscsi import keys

GOLDEN = Path(__file__).parent / "golden"
IQN = "iqn.2026-11.org.example:disk1"
GOLDEN_PATH = "/tmp/lun1m.img"  # the LUN path the golden files were captured with


def golden(name: str, path: str | None = None) -> str:
    """A tgtadm output captured from real tgtd 1.0.85; the LUN path replaced by ``path``."""
    text = (GOLDEN / name).read_text()
    return text.replace(GOLDEN_PATH, path) if path else text


def golden_params() -> str:
    """tgtadm's ``show --tid`` listing with pytgt's own values for the iSCSI keys it offers
    (e.g. MaxRecvDataSegmentLength=262144 and HeaderDigest=CRC32C,None where tgtd has
    8192 and None): same keys, same order; the other values are tgt's."""
    ours = keys.target_values({})
    lines = []
    for line in golden("show_target_params.txt").splitlines():
        name = line.split("=", 1)[0]
        lines.append(f"{name}={ours[name]}" if keys.settable(name) else line)
    return "\n".join(lines) + "\n"


class Admin:
    """Synchronous calls into a Management for tests."""

    def __init__(self, mgmt: Management) -> None:
        self.mgmt = mgmt

    def __call__(self, **request: Any) -> tuple[int, str]:
        return asyncio.run(self.mgmt.handle(request))

    def ok(self, **request: Any) -> str:
        rc, out = self(**request)
        assert rc == 0, out
        return out


@pytest.fixture
def lun_file(tmp_path: Path) -> str:
    path = tmp_path / "lun1m.img"
    with open(path, "wb") as f:
        f.truncate(1 << 20)
    return str(path)


@pytest.fixture
def admin() -> Iterator[Admin]:
    yield Admin(Management(Registry(), portals=[("127.0.0.1", 3260)], control_port=0))


@pytest.fixture
def configured(admin: Admin, lun_file: str) -> Admin:
    """tid 1, a 1 MiB file as LUN 1, bound to ALL: the golden files' configuration."""
    admin.ok(mode="target", op="new", tid=1, targetname=IQN)
    admin.ok(mode="logicalunit", op="new", tid=1, lun=1, backing_store=lun_file)
    admin.ok(mode="target", op="bind", tid=1, initiator_address="ALL")
    return admin
