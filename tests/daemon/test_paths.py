"""Where sockets and state live: environment overrides, root and per-user defaults."""

from __future__ import annotations

import os

import pytest

from pytgt.daemon import paths


def test_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTGT_RUN_DIR", "/x/run")
    monkeypatch.setenv("PYTGT_STATE_DIR", "/x/state")
    assert paths.run_dir() == "/x/run" and paths.state_dir() == "/x/state"
    assert paths.control_socket_path(77) == "/x/run/socket.77"


def test_root_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTGT_RUN_DIR", raising=False)
    monkeypatch.delenv("PYTGT_STATE_DIR", raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert paths.run_dir() == "/run/pytgt" and paths.state_dir() == "/var/lib/pytgt"


def test_user_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTGT_RUN_DIR", raising=False)
    monkeypatch.delenv("PYTGT_STATE_DIR", raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    monkeypatch.setenv("HOME", "/home/u")
    assert paths.run_dir() == "/run/user/1000/pytgt"
    assert paths.state_dir() == "/home/u/.local/state/pytgt"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert paths.run_dir().endswith("pytgt-1000")
