"""The control socket: mode 0600, peer check, one bounded JSON request per connection."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from pytgt.daemon import control
from pytgt.daemon.control import MAX_REQUEST, decode_request, request_sync, serve_control
from pytgt.daemon.security import SecurityMonitor


class Echo:
    """A management stub that answers with the request it got."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    async def handle(self, request: dict[str, Any]) -> tuple[int, str]:
        self.requests.append(request)
        if request.get("op") == "crash":
            raise RuntimeError("handler bug")
        return 0, json.dumps(request)


async def _raw(path: str, data: bytes, shutdown: bool = True) -> dict[str, Any]:
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(data)
    if shutdown:
        writer.write_eof()
    await writer.drain()
    reply = await reader.read()
    writer.close()
    return dict(json.loads(reply))


def _serve(tmp_path: Path, coro: Any, handler: Any = None) -> Any:
    async def main() -> Any:
        path = str(tmp_path / "socket.1")
        server = await serve_control(path, handler or Echo())
        try:
            return await coro(path)
        finally:
            server.close()
            await server.wait_closed()
    return asyncio.run(main())


def test_socket_mode_0600(tmp_path: Path) -> None:
    async def check(path: str) -> int:
        return stat.S_IMODE(os.stat(path).st_mode)
    assert _serve(tmp_path, check) == 0o600


def test_round_trip(tmp_path: Path) -> None:
    async def check(path: str) -> dict[str, Any]:
        return await _raw(path, b'{"mode": "target", "op": "show"}\n', shutdown=False)
    reply = _serve(tmp_path, check)
    assert reply["rc"] == 0 and json.loads(reply["out"]) == {"mode": "target", "op": "show"}


@pytest.mark.parametrize("data", [b"not json", b"[1, 2]", b"\xff\xfe", b"", b'"str"'])
def test_malformed_request_gets_error_reply(tmp_path: Path, data: bytes) -> None:
    async def check(path: str) -> dict[str, Any]:
        return await _raw(path, data)
    assert _serve(tmp_path, check) == {"rc": 22, "out": "invalid request"}


def test_oversized_request_gets_error_reply(tmp_path: Path) -> None:
    async def check(path: str) -> dict[str, Any]:
        big = b'{"x": "' + b"a" * (MAX_REQUEST + 10) + b'"}'
        return await _raw(path, big)
    assert _serve(tmp_path, check) == {"rc": 22, "out": "invalid request"}


def test_handler_exception_is_an_error_reply(tmp_path: Path) -> None:
    async def check(path: str) -> list[dict[str, Any]]:
        first = await _raw(path, b'{"op": "crash"}')
        second = await _raw(path, b'{"op": "show"}')  # the server is still alive
        return [first, second]
    first, second = _serve(tmp_path, check)
    assert first == {"rc": 22, "out": "unknown error"} and second["rc"] == 0


def test_other_users_are_refused_logged_and_counted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(control, "peer_cred", lambda sock: (777, 4242 + 12345))
    monkeypatch.setattr(os, "geteuid", lambda: 4242)
    handler = Echo()
    handler.security = SecurityMonitor()  # type: ignore[attr-defined]

    async def check(path: str) -> dict[str, Any]:
        return await _raw(path, b'{"op": "show", "password": "s3cret"}')
    with caplog.at_level("WARNING", logger="pytgt.security"):
        assert _serve(tmp_path, check, handler) == {"rc": 22, "out": "permission denied"}
    assert handler.requests == []
    assert handler.security.counters.control_refused == 1  # type: ignore[attr-defined]
    [line] = [r.getMessage() for r in caplog.records if r.name == "pytgt.security"]
    assert "uid 16587" in line and "pid 777" in line and "s3cret" not in line


def test_peer_uid_is_ours() -> None:
    a, b = socket.socketpair(socket.AF_UNIX)
    with a, b:
        assert control.peer_uid(a) == os.geteuid()
    assert control.peer_allowed(0) and control.peer_allowed(os.geteuid())
    assert not control.peer_allowed(None)


def test_stale_socket_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "socket.1"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens

    async def check(p: str) -> int:
        return (await _raw(p, b"{}"))["rc"]
    assert _serve(tmp_path, check) == 0


def test_live_socket_is_not_stolen(tmp_path: Path) -> None:
    async def main() -> None:
        path = str(tmp_path / "socket.1")
        server = await serve_control(path, Echo())
        try:
            with pytest.raises(OSError, match="another pytgtd"):
                await serve_control(path, Echo())
        finally:
            server.close()
    asyncio.run(main())


def test_request_sync_client(tmp_path: Path) -> None:
    async def check(path: str) -> tuple[int, str]:
        return await asyncio.to_thread(request_sync, path, {"mode": "lld"})
    rc, out = _serve(tmp_path, check)
    assert rc == 0 and json.loads(out) == {"mode": "lld"}


def test_request_sync_no_daemon(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        request_sync(str(tmp_path / "socket.9"), {})


def test_decode_request_bounds() -> None:
    assert decode_request(b'{"a": 1}') == {"a": 1}
    with pytest.raises(control.ControlRequestError):
        decode_request(b" " * (MAX_REQUEST + 1))
