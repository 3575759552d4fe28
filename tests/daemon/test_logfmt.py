"""``pytgtd --log-format json``: one JSON object per log event, with the fields a log
pipeline filters on (event, target, initiator, portal, address, reason)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from pytgt.daemon.logfmt import JsonFormatter, fields
from pytgt.initiator import Initiator, LoginFailed
from tests.helpers import start_daemon

IQN = "iqn.2026-11.org.pytgt:logs"
A, B = "iqn.2024-01.test:a", "iqn.2024-01.test:b"


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("pytgt.test", logging.WARNING, __file__, 1, msg, args, None)
    rec.__dict__.update(extra)
    return rec


def test_formatter_writes_one_object_with_known_fields() -> None:
    line = JsonFormatter().format(record("refused %s", "x", **fields(
        "login_refused", target=IQN, initiator=A, reason="authorization_failure",
        user=None)))
    assert "\n" not in line
    obj = json.loads(line)
    assert obj["event"] == "login_refused" and obj["message"] == "refused x"
    assert (obj["level"], obj["logger"]) == ("warning", "pytgt.test")
    assert (obj["target"], obj["initiator"], obj["reason"]) == (IQN, A, "authorization_failure")
    assert "user" not in obj  # None: not known, left out
    assert obj["ts"].endswith("Z") and obj["ts"][10] == "T"


def test_formatter_defaults_and_exceptions() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        rec = record("failed", peer="10.0.0.1")
        rec.exc_info = sys.exc_info()
    obj = json.loads(JsonFormatter().format(rec))
    assert obj["event"] == "log" and obj["address"] == "10.0.0.1"
    assert "ValueError: boom" in obj["exception"]


def test_pytgtd_json_log(tmp_path: Path) -> None:
    d = start_daemon(tmp_path, extra=("--log-format", "json"))
    try:
        adm = ("--lld", "iscsi")
        d.adm(*adm, "--op", "new", "--mode", "target", "--tid", "1", "-T", IQN)
        d.adm(*adm, "--op", "bind", "--mode", "target", "--tid", "1", "-Q", B)

        async def logins() -> None:
            with pytest.raises(LoginFailed):
                async with Initiator.login(d.host, d.port, target=IQN, initiator_name=A):
                    pass
            async with Initiator.login(d.host, d.port, target=IQN, initiator_name=B):
                pass
        asyncio.run(logins())
    finally:
        assert d.stop() == 0
    events: list[dict[str, Any]] = [json.loads(line) for line in d.log]  # every line
    by_event: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_event.setdefault(e["event"], []).append(e)
    portal = f"127.0.0.1:{d.port}"
    assert by_event["listening"][0]["portal"] == portal
    refused = by_event["login_refused"]
    assert len(refused) == 1
    assert refused[0]["target"] == IQN and refused[0]["initiator"] == A
    assert refused[0]["reason"] == "authorization_failure"
    assert refused[0]["address"] == "127.0.0.1" and refused[0]["level"] == "warning"
    (ok,) = by_event["login"]
    assert (ok["target"], ok["initiator"], ok["portal"]) == (IQN, B, portal)
    assert by_event["shutdown"]
    assert all({"ts", "level", "logger", "event", "message"} <= e.keys() for e in events)
