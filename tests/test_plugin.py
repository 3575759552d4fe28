"""The pytest plugin (``iscsi_target``): docs/library.md's examples run as a user's suite
(pytester), the entry point is declared, and the fixture's settings combine."""

from __future__ import annotations

import os
import re
import shutil
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from pytgt.testing import ServedTarget

pytest_plugins = ["pytester", "pytgt.pytest_plugin"]  # skipped if installed: same name
ROOT = Path(__file__).resolve().parents[1]
SECTION = "## In your pytest suite: the `iscsi_target` fixture"


def _examples() -> list[str]:
    text = (ROOT / "docs" / "library.md").read_text()
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_entry_point_is_declared() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["pytest11"] == {
        "pytgt.pytest_plugin": "pytgt.pytest_plugin"}


def test_the_documented_examples_pass(pytester: pytest.Pytester, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for tool in ("iscsi-readcapacity16",):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (apt-get install libiscsi-bin)")
    examples = _examples()
    assert len(examples) == 2
    for i, code in enumerate(examples):
        pytester.makepyfile(**{f"test_example_{i}": code})
    bin_dir = tmp_path / "bin"  # pytgt-iscsi as installed, when this tree is not
    bin_dir.mkdir()
    if shutil.which("pytgt-iscsi") is None:
        shim = bin_dir / "pytgt-iscsi"
        shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m pytgt.cli.pytgt_iscsi \"$@\"\n")
        shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "src"))
    installed = any(ep.name == "pytgt.pytest_plugin"
                    for ep in entry_points(group="pytest11"))
    args = [] if installed else ["-p", "pytgt.pytest_plugin"]
    result = pytester.runpytest_subprocess(*args, "-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=7)


@pytest.mark.iscsi_target(size=4 << 20, luns=2, thin=False)
@pytest.mark.parametrize("iscsi_target", [{"size": 2 << 20}], indirect=True)
def test_marker_and_parameters_combine(iscsi_target: ServedTarget) -> None:
    assert iscsi_target.luns == [1, 2]
    assert all(iscsi_target.store(n).size == 2 << 20 for n in iscsi_target.luns)
    faults = iscsi_target.faults(2)
    faults.slow(0.01, lba=0, blocks=1, ops="read", count=1)
    assert faults.store.plan.fault == "slow" and faults.store.plan.length == 512
    faults.clear()
    assert faults.store.plan.fault == "none"
