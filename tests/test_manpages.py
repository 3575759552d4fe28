"""Manual pages: generated from the parsers (and current), rendered by man without a
warning, listing every option of every command."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pytgt.manpage import Page, pages, render

ROOT = Path(__file__).resolve().parents[1]
PAGES = {page.filename: page for page in pages()}


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            out += list(action.choices)
            for sub in action.choices.values():
                out += _option_strings(sub)
        else:
            out += action.option_strings
    return out


def test_the_pages_are_installed_and_cover_every_command() -> None:
    assert sorted(PAGES) == ["pytgt-admin.8", "pytgt-iscsi.1", "pytgtadm.8", "pytgtd.8",
                             "pytgtimg.8"]
    pyproject = (ROOT / "pyproject.toml").read_text()
    for name, page in PAGES.items():
        assert f'"man/{name}"' in pyproject and f"man{page.section}" in pyproject


@pytest.mark.parametrize("name", sorted(PAGES))
def test_the_page_is_current(name: str) -> None:
    assert (ROOT / "man" / name).read_text() == render(PAGES[name]), \
        f"man/{name} is out of date: run `python -m pytgt.manpage man`"


@pytest.mark.parametrize("name", sorted(PAGES))
def test_man_renders_it_without_warnings_and_with_every_option(name: str) -> None:
    if shutil.which("man") is None or shutil.which("groff") is None:
        pytest.fail("man and groff are needed (apt-get install man-db groff-base)")
    path = ROOT / "man" / name
    res = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    env = dict(os.environ, MANWIDTH="200", LC_ALL="C.UTF-8")
    env.pop("MAN_KEEP_FORMATTING", None)
    res = subprocess.run(["man", "--warnings", "-l", "-P", "cat", str(path)], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    text = res.stdout.replace("\u2212", "-").replace("\u2010", "-")  # minus, hyphen
    page: Page = PAGES[name]
    missing = [o for o in _option_strings(page.parser()) if o not in text]
    assert not missing, f"{name} does not list {missing}"
    assert page.name.upper() in text.splitlines()[0]
