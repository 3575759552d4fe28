"""pytgt: a userspace iSCSI target framework (RFC 7143) - tgt, the Python way.

Public entry points (imported lazily so ``import pytgt`` stays cheap):
``pytgt.Daemon`` (the target daemon as a library object) and ``pytgt.serve``
(a one-line test target, see :mod:`pytgt.testing`).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Daemon", "serve", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Daemon":
        from pytgt.daemon.server import Daemon

        return Daemon
    if name == "serve":
        from pytgt.testing import serve

        return serve
    raise AttributeError(name)
