"""Which backing-store paths pytgt opens, and how (symbolic links, shared directories).

The danger is a path the admin named but someone else controls: in a world-writable
directory another user can put a symbolic link (or their own file) where the admin
expects a disk image, and pytgt, often running as root, would then export ``/etc/shadow``
or a system disk read-write. The policy, applied by :func:`resolve_backing_path`:

- **Final component a symbolic link**: refused, unless it is the usual block-device
  alias, i.e. a link under ``/dev`` (``/dev/disk/by-id/...``, ``/dev/mapper/...``,
  ``/dev/vg/lv``) that resolves to a block device under ``/dev``: those are made by
  udev/LVM and are what tgt users configure. ``allow_symlinks=True`` (pytgtd
  ``--allow-backing-symlinks``) accepts any link. An accepted link is resolved here and
  the store opens the real path, so the open itself can use ``O_NOFOLLOW`` (a link
  swapped in between check and open is refused by the kernel, not followed).
- **A symbolic link among the directories** in a world-writable directory and not owned
  by root or us (the kernel's ``fs.protected_symlinks`` rule): refused.
- **The file's directory is world-writable**: refused when it lacks the sticky bit
  (anyone may replace the file); with it (``/tmp``), the file must belong to root or to
  us. Block devices are exempt (``/dev`` is root's).

The configured path (e.g. the by-id link) is what ``--op show`` and the saved
configuration keep; only the open uses the resolved one.
"""

from __future__ import annotations

import os
import stat

DEV = "/dev/"


class BackingPathError(ValueError):
    """A backing-store path the policy refuses; the message is one admin-readable line."""


def resolve_backing_path(path: str, *, allow_symlinks: bool = False) -> str:
    """The path to open (with ``O_NOFOLLOW``) for the configured ``path``.

    A path that does not exist is returned unchanged (the store reports it). Raises
    :class:`BackingPathError` when the policy (module docstring) refuses it.
    """
    try:
        st = os.lstat(path)
    except OSError:
        return path
    path = os.path.abspath(path)
    _check_ancestors(path)
    if stat.S_ISLNK(st.st_mode):
        real = os.path.realpath(path)
        if not (allow_symlinks or _device_alias(path, real)):
            raise BackingPathError(
                f"{path}: is a symbolic link (name the real path, or start pytgtd "
                "with --allow-backing-symlinks)")
        try:
            st = os.lstat(real)
        except OSError:
            return real  # a dangling link: the store reports it
        path = real
        _check_ancestors(path)
    _check_directory(path, st)
    return path


def _device_alias(link: str, real: str) -> bool:
    """A link under /dev to a block device under /dev (udev, LVM, device mapper)."""
    if not (link.startswith(DEV) and real.startswith(DEV)):
        return False
    return _is_block(real)


def _is_block(path: str) -> bool:
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False


def _trusted_owner(uid: int) -> bool:
    return uid in (0, os.geteuid())


def _check_ancestors(path: str) -> None:
    """No directory component may be a link planted in a world-writable directory."""
    parent = os.path.dirname(path)
    parts = [p for p in parent.split("/") if p]
    current = "/"
    for part in parts:
        where = os.lstat(current)
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except OSError:
            return
        if (stat.S_ISLNK(st.st_mode) and where.st_mode & stat.S_IWOTH
                and not _trusted_owner(st.st_uid)):
            raise BackingPathError(f"{path}: {current} is a symbolic link of uid "
                                   f"{st.st_uid} in a world-writable directory")
        if stat.S_ISLNK(st.st_mode):
            current = os.path.realpath(current)


def _check_directory(path: str, st: os.stat_result) -> None:
    """A regular file in a world-writable directory must be safe from other users."""
    if stat.S_ISBLK(st.st_mode):
        return
    directory = os.path.dirname(path)
    dst = os.stat(directory)
    if not dst.st_mode & stat.S_IWOTH:
        return
    if not dst.st_mode & stat.S_ISVTX:
        raise BackingPathError(f"{path}: {directory} is world-writable (anyone may "
                               "replace the file); move the image to a private directory")
    if not _trusted_owner(st.st_uid):
        raise BackingPathError(f"{path}: owned by uid {st.st_uid} in the shared "
                               f"directory {directory}")
