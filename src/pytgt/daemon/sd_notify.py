"""systemd's readiness protocol without a systemd library (``sd_notify(3)``, ``Type=notify``).

systemd passes ``$NOTIFY_SOCKET``, a Unix datagram socket: a path, or an abstract name
written with a leading ``@``. Each state change is one datagram of newline-separated
``KEY=VALUE`` lines: ``READY=1`` once the control socket and every portal listen,
``STOPPING=1`` when a graceful stop begins, ``STATUS=...`` for ``systemctl status``.
Without ``$NOTIFY_SOCKET`` (not started by systemd) nothing is sent.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("pytgt.daemon.sd_notify")


def notify_address(env: Mapping[str, str] | None = None) -> str | bytes | None:
    """The socket address named by ``$NOTIFY_SOCKET``: a path, the abstract name as
    bytes starting with NUL for ``@name``, or None (unset, or a kind not supported)."""
    value = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # unset, or vsock:/other transports systemd may add


def notify(*lines: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``lines`` (``"READY=1"``, ``"STATUS=..."``) as one datagram; True if sent.

    A failure is logged, never raised: the daemon serves whether or not systemd listens.
    """
    address = notify_address(env)
    if address is None or not lines:
        return False
    message = "\n".join(lines).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(1.0)  # systemd reads at once; never hang the daemon on it
            sock.sendto(message, address)
    except OSError as exc:
        log.warning("cannot notify systemd (%s): %s", lines[0], exc)
        return False
    return True
