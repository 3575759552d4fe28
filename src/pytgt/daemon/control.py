"""The control socket: one JSON request per connection, one JSON reply (tgtd's IPC).

Wire format: the client sends one JSON object (UTF-8) and then a newline or EOF; the
daemon answers ``{"rc": int, "out": str}`` and a newline, and closes. ``rc`` is the
exit status pytgtadm returns; ``out`` is the show text (``rc == 0``) or the one-line
error message without a program prefix.

Security: the socket is created mode 0600 in a 0700 directory, and every peer is
checked with ``SO_PEERCRED``: only root and the daemon's own uid are served; a refused
peer is logged (uid, pid) and counted in ``--op stat --mode system``.
Requests are bounded (:data:`MAX_REQUEST`) and time-limited; anything malformed gets
an error reply, never an exception in the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
import struct
from typing import Any, Protocol

from pytgt.daemon.errors import EXIT_EINVAL, MESSAGES, TgtadmError

log = logging.getLogger("pytgt.daemon.control")

MAX_REQUEST = 64 * 1024
READ_TIMEOUT = 10.0
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class Handler(Protocol):
    async def handle(self, request: dict[str, Any]) -> tuple[int, str]: ...


class ControlRequestError(Exception):
    """A control request that cannot be parsed."""


def peer_cred(sock: socket.socket) -> tuple[int | None, int | None]:
    """``(pid, uid)`` of the process at the other end of a Unix socket (``SO_PEERCRED``);
    ``(None, None)`` when the kernel does not tell."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except (OSError, AttributeError):
        return None, None
    pid, uid, _gid = _UCRED.unpack(raw)
    return int(pid), int(uid)


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a Unix socket (``SO_PEERCRED``)."""
    return peer_cred(sock)[1]


def peer_allowed(uid: int | None) -> bool:
    """Root and the daemon's own user may administer it."""
    return uid is not None and uid in (0, os.geteuid())


def decode_request(data: bytes) -> dict[str, Any]:
    """Parse one request; raises :class:`ControlRequestError` if it is not a JSON object."""
    if len(data) > MAX_REQUEST:
        raise ControlRequestError("request too large")
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ControlRequestError("malformed request") from None
    if not isinstance(obj, dict):
        raise ControlRequestError("malformed request")
    return obj


def encode_reply(rc: int, out: str) -> bytes:
    return json.dumps({"rc": int(rc), "out": out}).encode("utf-8") + b"\n"


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    """Read up to a newline or EOF, at most MAX_REQUEST bytes (+1 to detect overflow)."""
    buf = bytearray()
    while len(buf) <= MAX_REQUEST:
        chunk = await reader.read(MAX_REQUEST + 1 - len(buf))
        if not chunk:
            break
        buf += chunk
        if b"\n" in chunk:
            break
    if len(buf) > MAX_REQUEST:
        raise ControlRequestError("request too large")
    return bytes(buf).split(b"\n", 1)[0]


async def _serve_one(management: Handler, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    try:
        try:
            data: bytes | None = await asyncio.wait_for(_read_request(reader), READ_TIMEOUT)
        except (ControlRequestError, TimeoutError):
            data = None
        pid, uid = peer_cred(sock) if sock is not None else (None, None)
        if not peer_allowed(uid):
            _refused(management, uid, pid)
            reply = encode_reply(EXIT_EINVAL, "permission denied")
        else:
            reply = await _answer(management, data)
        writer.write(reply)
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        await asyncio.wait_for(_discard(reader), 1.0)  # unread input would reset the reply
    except (ConnectionError, OSError, TimeoutError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


def _refused(management: Handler, uid: int | None, pid: int | None) -> None:
    """Log and count a refused peer (``management.security``, when it has one)."""
    security = getattr(management, "security", None)
    if security is not None:
        security.control_refused(uid, pid)
    else:
        log.warning("control socket: request from uid %s (pid %s) refused", uid, pid)


async def _discard(reader: asyncio.StreamReader, limit: int = 1 << 20) -> None:
    while limit > 0 and (chunk := await reader.read(65536)):
        limit -= len(chunk)


async def _answer(management: Handler, data: bytes | None) -> bytes:
    try:
        if data is None:
            raise ControlRequestError("unreadable request")
        request = decode_request(data)
    except ControlRequestError:
        return encode_reply(EXIT_EINVAL, MESSAGES[TgtadmError.INVALID_REQUEST])
    try:
        rc, out = await management.handle(request)
    except Exception:  # a handler bug must not take the daemon down
        log.exception("management request %r failed", request)
        return encode_reply(EXIT_EINVAL, MESSAGES[TgtadmError.UNKNOWN_ERR])
    return encode_reply(rc, out)


def _remove_stale(path: str) -> None:
    """Remove a socket left by a dead daemon; refuse if a live one answers."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(17, f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)
        return
    finally:
        probe.close()
    raise OSError(98, f"another pytgtd is using {path}")


async def serve_control(path: str, management: Handler) -> asyncio.AbstractServer:
    """Listen on the Unix socket ``path`` (mode 0600) and answer management requests."""
    _remove_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        sock.listen(16)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_one(management, reader, writer)

    return await asyncio.start_unix_server(client, sock=sock, limit=MAX_REQUEST + 1)


def request_sync(path: str, request: dict[str, Any], timeout: float = 60.0) -> tuple[int, str]:
    """Client side: send ``request`` to the daemon at ``path``; returns ``(rc, out)``.

    Raises :class:`OSError` when the daemon cannot be reached and
    :class:`ControlRequestError` when its reply is unreadable.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps(request).encode("utf-8") + b"\n")
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    try:
        reply = json.loads(b"".join(chunks).decode("utf-8"))
        return int(reply["rc"]), str(reply["out"])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise ControlRequestError("unreadable reply from the daemon") from None
