"""Where pytgtd keeps its control sockets and state (tgtd's ``/var/run/tgtd``).

``$PYTGT_RUN_DIR`` and ``$PYTGT_STATE_DIR`` override the defaults, so tests and
several daemons run side by side without root.
"""

from __future__ import annotations

import os
import tempfile


def run_dir() -> str:
    """Directory of the control sockets: ``$PYTGT_RUN_DIR``, ``/run/pytgt`` for root,
    else ``$XDG_RUNTIME_DIR/pytgt`` or a per-user directory under the temp dir."""
    env = os.environ.get("PYTGT_RUN_DIR")
    if env:
        return env
    if os.geteuid() == 0:
        return "/run/pytgt"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, "pytgt")
    return os.path.join(tempfile.gettempdir(), f"pytgt-{os.geteuid()}")


def state_dir() -> str:
    """Directory of persistent state: ``$PYTGT_STATE_DIR``, ``/var/lib/pytgt`` for root,
    else ``~/.local/state/pytgt``."""
    env = os.environ.get("PYTGT_STATE_DIR")
    if env:
        return env
    if os.geteuid() == 0:
        return "/var/lib/pytgt"
    return os.path.join(os.path.expanduser("~"), ".local", "state", "pytgt")


def control_socket_path(port: int) -> str:
    """The control socket of the daemon started with ``-C port``."""
    return os.path.join(run_dir(), f"socket.{port}")
