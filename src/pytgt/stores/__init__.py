"""Backing stores: a registry of plugins, opened by type name (tgt's ``--bstype``).

Third-party stores register through the ``pytgt.backing_stores`` entry-point group;
the built-in ``rdwr``, ``null``, ``memory``, ``rbd`` and ``sg`` stores are always available, even
when the package metadata is missing (running from a source tree).
"""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points
from typing import Any

from pytgt.stores.base import (
    BackingStore,
    StoreCapability,
    StoreError,
    StoreIOError,
    parse_size,
)

__all__ = [
    "BackingStore",
    "StoreCapability",
    "StoreError",
    "StoreIOError",
    "available",
    "open_store",
    "parse_size",
]

ENTRY_POINT_GROUP = "pytgt.backing_stores"

_BUILTIN: dict[str, str] = {
    "rdwr": "pytgt.stores.rdwr:RdwrStore",
    "null": "pytgt.stores.null:NullStore",
    "memory": "pytgt.stores.memory:MemoryStore",
    "rbd": "pytgt.stores.rbd:RbdStore",
    "sg": "pytgt.stores.sg:SgStore",
    "bsg": "pytgt.stores.bsg:BsgStore",
}


@functools.lru_cache(maxsize=1)
def _registry() -> dict[str, str]:
    """Store type name -> ``module:attribute``; entry points override built-ins.

    Read once per process: scanning the installed distributions costs ~20 ms, which
    made every ``--op new --mode logicalunit`` that slow."""
    table = dict(_BUILTIN)
    try:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            table[ep.name] = ep.value
    except Exception:  # broken metadata must not stop the built-in stores
        pass
    return table


def available() -> list[str]:
    """The store type names that :func:`open_store` accepts, sorted."""
    return sorted(_registry())


def _load(bstype: str) -> Any:
    target = _registry().get(bstype)
    if target is None:
        raise StoreError(f"unknown backing store type: {bstype} (known: {', '.join(available())})")
    module_name, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise StoreError(f"backing store type {bstype} cannot be loaded: {exc}") from None


def open_store(bstype: str, path: str, *, bsopts: str = "", bsoflags: str = "",
               size: int | None = None) -> BackingStore:
    """Open a backing store of type ``bstype`` (``rdwr``, ``null``, ``memory``, plugins).

    Raises :class:`StoreError` with an admin-readable message for an unknown type,
    a missing file, or a bad option. The store is ready for I/O on return.
    """
    cls = _load(bstype or "rdwr")
    store: BackingStore = cls.open(path, bsopts=bsopts, bsoflags=bsoflags, size=size)
    return store
