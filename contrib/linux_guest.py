#!/usr/bin/env python3
"""A throwaway QEMU guest running the Linux kernel's iSCSI initiator (open-iscsi), for
trying pytgt with the initiator most users run, and for the tests in tests/guest/.

    contrib/linux_guest.py build                 # prints the cached kernel and initramfs
    contrib/linux_guest.py run script.sh --forward 10.0.2.100:3260=127.0.0.1:3260

The guest is Debian's ``linux-image-amd64`` kernel with the SCSI, iSCSI, dm-multipath
and ext4 modules, and an initramfs built from Debian packages fetched with
``apt-get download`` and unpacked with ``dpkg-deb -x`` (busybox-static, open-iscsi,
e2fsprogs, sg3-utils, mt-st, mtx, multipath-tools, udev and the shared libraries their
programs need; ``build_guest(python=True)`` adds Debian's Python 3.11 for tests that run
pytgt itself in the guest). Its ``/init`` loads the modules, brings up eth0 as 10.0.2.15/24 on
QEMU's user-mode network, runs the script it was given (a second cpio appended to the
initramfs) and powers off. The build is cached under ``$PYTGT_GUEST_CACHE`` (default
``$XDG_CACHE_HOME/pytgt/guest``), keyed by the packages' versions.

The network is ``restrict=on``: the guest reaches nothing but the ``--forward`` rules,
each a guest address:port that QEMU relays, one process per connection, to a TCP port
on the host's loopback. Needs qemu-system-x86 and apt (no KVM, no root). Importable:
:func:`build_guest`, :class:`Guest`, :class:`GuestRun`.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import os
import re
import select
import shlex
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

#: Debian packages whose programs go into the guest (their libraries follow by ELF).
USERLAND = ("busybox-static", "open-iscsi", "e2fsprogs", "sg3-utils", "mt-st", "mtx", "eject",
            "multipath-tools", "udev")
#: What goes into the guest from the packages (with the libraries these need); glibc
#: dlopens libgcc_s for pthread_cancel, which multipathd calls (no DT_NEEDED names it).
PROGRAMS = re.compile(r"usr/s?bin/|usr/lib/multipath/.*\.so$|usr/lib/systemd/systemd-udevd$"
                      r"|usr/lib/udev/(?!hwdb)|etc/udev/udev.conf$"
                      r"|usr/lib/x86_64-linux-gnu/libgcc_s\.so\.1$")
#: Kernel modules loaded at boot, with their dependencies (from each module's modinfo).
MODULES = ("virtio_net", "virtio_pci", "iscsi_tcp", "sd_mod", "sg", "st", "sr_mod",
           "dm_multipath", "dm_round_robin", "dm_service_time", "scsi_dh_alua", "ext4",
           "isofs", "crc32c_generic", "crc32c_intel")
#: The Python variant (``build_guest(python=True)``): Debian's Python 3.11 and pytgt's
#: dependencies, so a test can run pytgt's own source inside the guest. Not
#: python3-uvloop: bookworm's 0.17 predates ``uvloop.run`` (pytgt needs 0.19), and
#: pytgtd runs on asyncio's own loop without it.
PYTHON_PACKAGES = ("python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib",
                   "python3-crc32c", "python3-prometheus-client", "python3-decorator",
                   "zlib1g")
#: What goes into the Python variant from those packages, besides usr/bin/python3.11.
PYTHON_FILES = re.compile(r"usr/lib/python3(\.11)?/(?!test/|idlelib/|tkinter/|turtledemo/"
                          r"|lib2to3/|ensurepip/|pydoc_data/|config-3\.11|distutils/"
                          r"|sqlite3/|curses/|dbm/|lib-dynload/(_sqlite3|_dbm|_gdbm|_curses"
                          r"|readline|_test|_ctypes_test|_xxtestfuzz|xxlimited|_tkinter))")
PYTHON = "python3.11"
#: Library packages apt lists that no program here links (or that clash with libsystemd0).
SKIP_LIBS = re.compile(r"libelogind0|libperl.*|.*-perl|libdebian-installer.*|libklibc")
MARK = "@@PYTGT@@"
#: A cached guest no build has used for this many days is removed by the next build.
STALE_DAYS = 7
BUILD_FORMAT = "4"  # bump when the build changes the image

INIT = r"""#!/bin/sh
export PATH=/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/lock/iscsi /var/lib/iscsi /dev/pts
mount -t devpts devpts /dev/pts
for m in $(cat /etc/guest-modules); do insmod "/lib/modules/$m.ko" 2>/dev/null; done
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
hostname pytgt-guest
echo "@@PYTGT@@ BOOTED $(uname -r)"
sh -e /guest/test.sh
echo "@@PYTGT@@ EXIT $?"
sync
poweroff -f
"""


#: Shell functions every guest script starts with.
GUEST_LIB = r"""
mark() { echo "@@PYTGT@@ $*"; }
# gate NAME: tell the host we reached NAME and wait until it answers (tests/guest "gate")
gate() {
  mark "GATE $1"
  r=$(echo "$1" | nc 10.0.2.99 9)
  [ "$r" = go ] || { mark "GATE-REFUSED $1"; exit 1; }
}
# poll SECONDS CMD...: run CMD every 0.1 s until it succeeds or SECONDS pass
poll() {
  n=$(($1 * 10)); shift
  until "$@" >/dev/null 2>&1; do n=$((n - 1)); [ $n -gt 0 ] || return 1; sleep 0.1; done
}
# iscsid_start: iscsid in the foreground (its log on the console), once it takes requests
iscsid_start() {
  iscsid -f &
  poll 30 grep -q ISCSIADM_ABSTRACT_NAMESPACE /proc/net/unix
}
# udev_start: udevd, and the devices present so far (persistent names in /dev/disk/by-id)
udev_start() {
  /lib/systemd/systemd-udevd --daemon
  udevadm trigger --action=add
  udevadm settle -t 60
}
# disk_of IQN LUN: the /dev/sdX of a LUN of a logged-in target
disk_of() {
  for s in /sys/class/iscsi_session/session*; do
    [ "$(cat "$s/targetname")" = "$1" ] || continue
    for b in "$s"/device/target*/*:"$2"/block/*; do
      [ -e "$b" ] && echo "/dev/${b##*/}" && return 0
    done
  done
  return 1
}
# dev_of IQN LUN CLASS: the /dev node of a LUN of a logged-in target in a sysfs class
# (scsi_generic, scsi_tape), skipping st's mode variants (nst0l, nst0m, nst0a)
dev_of() {
  for s in /sys/class/iscsi_session/session*; do
    [ "$(cat "$s/targetname")" = "$1" ] || continue
    for d in "$s"/device/target*/*:"$2"/"$3"/*; do
      n=${d##*/}
      case $n in sg*|nst[0-9]|nst[0-9][0-9]) [ -e "/dev/$n" ] && echo "/dev/$n" && return 0;; esac
    done
  done
  return 1
}
"""
GATE_ADDR = "10.0.2.99:9"


# -- ELF: a module's modinfo and a program's DT_NEEDED ---------------------------------
def _elf_sections(data: bytes) -> dict[str, bytes]:
    """The named sections of a 64-bit little-endian ELF file."""
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return {}
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    heads = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names = heads[shstrndx]
    strtab = data[names[4]:names[4] + names[5]]
    out: dict[str, bytes] = {}
    for name_off, kind, _flags, _addr, off, size in heads:
        name = strtab[name_off:strtab.index(b"\0", name_off)].decode()
        out[name] = b"" if kind == 8 else data[off:off + size]  # SHT_NOBITS
    return out


def modinfo(path: Path) -> dict[str, str]:
    """A kernel module's ``.modinfo`` key=value strings (the last of repeated keys)."""
    raw = _elf_sections(path.read_bytes()).get(".modinfo", b"")
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {key: value for key, _, value in pairs}


def needed(path: Path) -> list[str]:
    """The sonames an ELF program or library asks the dynamic loader for."""
    sections = _elf_sections(path.read_bytes())
    dyn, dynstr = sections.get(".dynamic", b""), sections.get(".dynstr", b"")
    out = []
    for tag, val in struct.iter_unpack("<qQ", dyn[:len(dyn) // 16 * 16]):
        if tag == 1:  # DT_NEEDED
            out.append(dynstr[val:dynstr.index(b"\0", val)].decode())
    return out


# -- Debian packages -------------------------------------------------------------------
def _run(*cmd: str, cwd: Path | None = None) -> str:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {res.stderr.strip()}")
    return res.stdout


def resolve_packages(python: bool = False) -> dict[str, str]:
    """Name -> candidate version of the kernel image and userland packages with their
    library dependencies (apt's recursive Depends, kept to ``lib*`` packages); with
    ``python``, :data:`PYTHON_PACKAGES` too."""
    userland = (*USERLAND, *PYTHON_PACKAGES) if python else USERLAND
    out = _run("apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
               "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances",
               "linux-image-amd64", *userland)
    names = {line for line in out.splitlines() if line and not line.startswith((" ", "<"))}
    kernel = sorted(n for n in names if re.fullmatch(r"linux-image-[\d.]+-\d+-amd64", n))
    keep = sorted(n for n in names if n in userland or
                  (n.startswith("lib") and not SKIP_LIBS.fullmatch(n)))
    policy = _run("apt-cache", "policy", *kernel, *keep)
    versions = dict(re.findall(r"^(\S+):\n\s+Installed: .*\n\s+Candidate: (\S+)", policy,
                               re.M))
    return {name: versions[name] for name in [*kernel, *keep]}


def cache_key(packages: dict[str, str], python: bool = False) -> str:
    """The cache directory name: package versions and what goes into the image (the
    Python variant's starts with ``py-``)."""
    what = [BUILD_FORMAT, INIT, PROGRAMS.pattern, *USERLAND, *MODULES]
    if python:
        what += [PYTHON_FILES.pattern, *PYTHON_PACKAGES]
    h = hashlib.sha256("\n".join(what).encode())
    for name, version in sorted(packages.items()):
        h.update(f"{name}={version}\n".encode())
    return ("py-" if python else "") + h.hexdigest()[:16]


# -- the initramfs ---------------------------------------------------------------------
class Cpio:
    """A cpio "newc" archive written in memory (what the kernel unpacks as initramfs)."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes) -> None:
        name_b = name.lstrip("/").encode() + b"\0"
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0)
        self.ino += 1
        self.buf.write(b"070701" + b"".join(b"%08X" % f for f in fields) + name_b)
        self.buf.write(b"\0" * (-(110 + len(name_b)) % 4) + data + b"\0" * (-len(data) % 4))

    def dir(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755, b"")

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def gzipped(self) -> bytes:
        self._entry("TRAILER!!!", 0, b"")
        return gzip.compress(self.buf.getvalue(), compresslevel=6, mtime=0)


def _merged(path: str) -> str:
    """Debian's merged-/usr name for a path inside a package."""
    top = path.split("/", 1)[0]
    return f"usr/{path}" if top in ("bin", "sbin", "lib", "lib64") else path


class _Tree:
    """Files gathered for the initramfs, by their merged-/usr path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, Path] = {}
        self.links: dict[str, str] = {}
        for path in sorted(root.rglob("*")):
            rel = _merged(str(path.relative_to(root)))
            if path.is_symlink():
                self.links[rel] = os.readlink(path)
            elif path.is_file():
                self.files[rel] = path

    def lookup(self, rel: str) -> str | None:
        """Follow symlinks (relative or absolute) to a regular file's path."""
        for _ in range(10):
            if rel in self.files:
                return rel
            if rel not in self.links:
                return None
            target = self.links[rel]
            base = "" if target.startswith("/") else os.path.dirname(rel)
            rel = _merged(os.path.normpath(os.path.join(base, target)).lstrip("/"))
        return None


def _programs(tree: _Tree) -> list[str]:
    """Programs, the plugins they dlopen (multipath's checkers and prioritizers), and
    udev's daemon, rules and helpers (not its hardware database)."""
    return [rel for rel in [*tree.files, *tree.links]
            if re.match(PROGRAMS, rel) and tree.lookup(rel)]


def _library_closure(tree: _Tree, roots: Iterable[str]) -> set[str]:
    """Every file needed to run ``roots``: the dynamic loader and DT_NEEDED libraries."""
    dirs = ("usr/lib/x86_64-linux-gnu", "usr/lib", "usr/lib/x86_64-linux-gnu/systemd")
    want, seen = list(roots) + ["usr/lib64/ld-linux-x86-64.so.2"], set[str]()
    while want:
        rel = want.pop()
        real = tree.lookup(rel)
        if real is None or rel in seen:
            continue
        seen.update((rel, real))
        for soname in needed(tree.files[real]):
            hits = [f"{d}/{soname}" for d in dirs if tree.lookup(f"{d}/{soname}")]
            if not hits:
                raise RuntimeError(f"{rel} needs {soname}, which no package provides")
            want.append(hits[0])
    return seen


def _module_order(moddir: Path, wanted: Iterable[str]) -> list[Path]:
    """The modules to insmod, each after its dependencies (modinfo ``depends=``)."""
    by_name = {p.name[:-3].replace("-", "_"): p for p in moddir.rglob("*.ko")}
    builtin = {Path(line).name[:-3].replace("-", "_")
               for line in (moddir / "modules.builtin").read_text().split()}
    order: list[Path] = []

    def visit(name: str) -> None:
        path = by_name.get(name)
        if path is None:
            if name not in builtin:
                raise RuntimeError(f"kernel module {name} not found")
            return
        if path in order:
            return
        for dep in filter(None, modinfo(path).get("depends", "").split(",")):
            visit(dep.replace("-", "_"))
        order.append(path)

    for name in wanted:
        visit(name)
    return order


def _python_files(tree: _Tree) -> tuple[list[str], list[str]]:
    """The Python variant's standard library and packages: (plain files, extension
    modules whose libraries the packages provide; the others are left out)."""
    plain, extensions = [], []
    for rel in tree.files:
        if not re.match(PYTHON_FILES, rel):
            continue
        if not rel.endswith(".so"):
            plain.append(rel)
            continue
        try:
            extensions += sorted(_library_closure(tree, [rel]))
        except RuntimeError:  # e.g. _tkinter, _gdbm: nothing pytgt imports
            continue
    return plain, extensions


def _precompile(root: Path) -> None:
    """Byte-compile the unpacked Python library with its own interpreter, as hashes that
    are never checked against the sources (the initramfs has no useful mtimes), so that
    the guest does not compile the standard library at every boot."""
    python = root / "usr/bin" / PYTHON
    env = {**os.environ, "PYTHONHOME": str(root / "usr")}
    dirs = [str(d) for d in (root / "usr/lib" / PYTHON, root / "usr/lib/python3/dist-packages")
            if d.is_dir()]
    res = subprocess.run([str(python), "-m", "compileall", "-q", "-j", "0",
                          "--invalidation-mode", "unchecked-hash", "-s", str(root), "-p", "/",
                          "-x", r"/(test|idlelib|tkinter|turtledemo|lib2to3|ensurepip)/",
                          *dirs], env=env, capture_output=True, text=True, timeout=600)
    if res.returncode not in (0, 1):  # 1: some file did not compile (lib2to3 grammar...)
        raise RuntimeError(f"compileall: {res.stderr.strip()}")


def _userland_cpio(tree: _Tree, modules: list[Path], cpio: Cpio, python: bool = False) -> None:
    files = _library_closure(tree, _programs(tree))
    if python:
        plain, extensions = _python_files(tree)
        files |= set(plain) | set(extensions)
    dirs = set[str]()
    for rel in [*files, *_programs(tree), "usr/sbin/x", "usr/lib64/x", "usr/lib/modules/x",
                "proc/x", "sys/x", "dev/x", "run/x", "tmp/x", "etc/iscsi/x", "var/lib/x",
                "guest/x", "mnt/x", "root/x"]:
        parts = rel.split("/")
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
    for d in sorted(dirs):
        cpio.dir(d)
    for top in ("bin", "sbin", "lib", "lib64"):
        cpio.symlink(top, f"usr/{top}")
    for rel in sorted(set(files) | set(_programs(tree))):
        if rel in tree.files:
            path = tree.files[rel]
            cpio.file(rel, path.read_bytes(), path.stat().st_mode & 0o777)
        else:
            cpio.symlink(rel, tree.links[rel])
    present = set(files) | set(_programs(tree))
    for applet in _run(str(tree.root / "bin/busybox"), "--list").split():
        if f"usr/bin/{applet}" not in present and f"usr/sbin/{applet}" not in present:
            cpio.symlink(f"usr/bin/{applet}", "/usr/bin/busybox")
    for path in modules:
        cpio.file(f"usr/lib/modules/{path.name}", path.read_bytes())
    cpio.file("etc/guest-modules", " ".join(p.name[:-3] for p in modules).encode())
    cpio.file("init", INIT.encode(), 0o755)
    cpio.file("etc/iscsi/initiatorname.iscsi",
              b"InitiatorName=iqn.2026-12.org.pytgt:guest\n")
    cpio.file("etc/iscsi/iscsid.conf", b"node.startup = manual\n")
    cpio.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    cpio.file("etc/group", b"root:x:0:\n")
    if python:
        cpio.symlink("usr/bin/python3", PYTHON)


@dataclass(frozen=True)
class Guest:
    """A built guest: its kernel and initramfs files, and the versions they came from."""

    kernel: Path
    initrd: Path
    packages: dict[str, str] = field(default_factory=dict)

    def boot(self, script: str, forwards: dict[str, tuple[str, int]],
             files: dict[str, bytes] | None = None, log: Path | TextIO | None = None,
             memory_mb: int = 512, inbound: dict[int, int] | None = None) -> GuestRun:
        """Start QEMU on ``script`` (run by ``sh -e`` as /guest/test.sh, after
        :data:`GUEST_LIB`); QEMU is killed if the calling thread exits. ``forwards``
        maps guest "ADDR:PORT" to a host (address, port); ``inbound`` maps a port on the
        host's 127.0.0.1 to a guest port (10.0.2.15), QEMU's ``hostfwd``; ``files`` go
        to /guest/ beside the script. The console is copied, line by line, to ``log`` (a
        file, or an open stream). Returns the running guest; call
        :meth:`GuestRun.marker`, then :meth:`GuestRun.finish`."""
        return GuestRun.start(self, script, forwards, files or {}, log, memory_mb,
                              inbound or {})


def default_cache() -> Path:
    env = os.environ.get("PYTGT_GUEST_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pytgt" / "guest"


def build_guest(cache: Path | None = None, progress: bool = False,
                python: bool = False) -> Guest:
    """Return the cached guest for today's package versions, building it if missing;
    ``python``: the variant with Python 3 and pytgt's dependencies (a larger initramfs,
    a slower boot; kept beside the other)."""
    cache = cache or default_cache()
    packages = resolve_packages(python)
    out = cache / cache_key(packages, python)
    guest = Guest(out / "vmlinuz", out / "initrd.gz", packages)
    if guest.initrd.exists():
        with contextlib.suppress(OSError):
            os.utime(out)  # in use: the clean-up below keeps it
        return guest
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix="build-") as tmp:
        _build(Path(tmp), packages, progress, python)
        with contextlib.suppress(OSError):  # another process may have finished first
            (Path(tmp) / "out").rename(out)
    # Other guests of the same variant (earlier package versions, or another checkout's
    # build) go once unused for STALE_DAYS: a checkout building while another boots its
    # own must not pull that one's image away.
    stale = time.time() - STALE_DAYS * 86400
    for old in cache.iterdir():
        if old != out and (old / "packages").exists() and \
                old.name.startswith("py-") == python and old.stat().st_mtime < stale:
            shutil.rmtree(old, ignore_errors=True)
    return guest


def _build(tmp: Path, packages: dict[str, str], progress: bool, python: bool = False) -> None:
    debs, root, kroot = tmp / "debs", tmp / "root", tmp / "kernel"
    for d in (debs, root, kroot, tmp / "out"):
        d.mkdir()
    t0 = time.monotonic()
    _run("apt-get", "download", "-q", *(f"{n}={v}" for n, v in packages.items()), cwd=debs)
    for deb in sorted(debs.glob("*.deb")):
        _run("dpkg-deb", "-x", str(deb), str(kroot if deb.name.startswith("linux-") else root))
    moddir = next((kroot / "lib/modules").iterdir())
    modules = _module_order(moddir, MODULES)
    if python:
        _precompile(root)
    cpio = Cpio()
    _userland_cpio(_Tree(root), modules, cpio, python)
    (tmp / "out/initrd.gz").write_bytes(cpio.gzipped())
    shutil.copyfile(next((kroot / "boot").glob("vmlinuz-*")), tmp / "out/vmlinuz")
    (tmp / "out/packages").write_text("".join(f"{n} {v}\n" for n, v in packages.items()))
    if progress:
        print(f"built in {time.monotonic() - t0:.1f}s", file=sys.stderr)


def script_cpio(files: dict[str, bytes]) -> bytes:
    """A gzipped cpio of the guest's per-boot files (appended to the initramfs); a name
    may hold directories (``pytgt/scsi/lu.py``)."""
    cpio = Cpio()
    dirs = {"guest"}
    for name in files:
        parts = name.split("/")[:-1]
        dirs.update("/".join(["guest", *parts[:i]]) for i in range(1, len(parts) + 1))
    for d in sorted(dirs):
        cpio.dir(d)
    for name, data in sorted(files.items()):
        cpio.file(f"guest/{name}", data, 0o755)
    return cpio.gzipped()


# -- running QEMU ----------------------------------------------------------------------
class GuestTimeout(AssertionError):
    """A console marker did not appear in time; carries the console so far."""


@dataclass
class GuestRun:
    """A QEMU process started by :meth:`Guest.boot`: its console lines as they arrive,
    and the gates its script waits at."""

    proc: subprocess.Popen[bytes]
    workdir: tempfile.TemporaryDirectory[str]
    gate_sock: socket.socket
    lines: list[str] = field(default_factory=list)
    log: Path | TextIO | None = None
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _eof: bool = False

    @classmethod
    def start(cls, guest: Guest, script: str, forwards: dict[str, tuple[str, int]],
              files: dict[str, bytes], log: Path | TextIO | None,
              memory_mb: int, inbound: dict[int, int] | None = None) -> GuestRun:
        work = tempfile.TemporaryDirectory(prefix="pytgt-guest-")
        gate = socket.create_server(("127.0.0.1", 0))
        forwards = {**forwards, GATE_ADDR: ("127.0.0.1", gate.getsockname()[1])}
        initrd = Path(work.name) / "initrd.gz"
        initrd.write_bytes(guest.initrd.read_bytes() +
                           script_cpio({**files, "test.sh": (GUEST_LIB + script).encode()}))
        proc = subprocess.Popen(_qemu_command(guest, initrd, forwards, memory_mb, inbound),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        run = cls(proc, work, gate, log=log)
        threading.Thread(target=run._read, daemon=True).start()
        return run

    def _read(self) -> None:
        assert self.proc.stdout is not None
        sink = self.log.open("a") if isinstance(self.log, Path) else self.log
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n")
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
            if sink:
                sink.write(line + "\n")
                sink.flush()
        with self._cond:
            self._eof = True
            self._cond.notify_all()
        if sink and isinstance(self.log, Path):
            sink.close()

    def wait_for(self, pattern: str, timeout: float, nth: int = 1) -> re.Match[str]:
        """The ``nth`` console line matching ``pattern``, waiting at most ``timeout``
        seconds. Raises :class:`GuestTimeout` (with the console)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    m = rx.search(line)
                    nth -= m is not None
                    if m and nth == 0:
                        return m
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    raise GuestTimeout(f"no {pattern!r} within {timeout}s:\n{self.console()}")
                self._cond.wait(left)

    def marker(self, name: str, timeout: float, nth: int = 1) -> str:
        """Wait for the script's ``nth`` ``mark NAME rest``; return ``rest``."""
        rx = rf"^{MARK} {re.escape(name)}(?: (.*))?$"
        return self.wait_for(rx, timeout, nth).group(1) or ""

    def console(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    @contextlib.contextmanager
    def gate(self, name: str, timeout: float) -> Iterator[None]:
        """Wait until the script calls ``gate NAME`` (one gate of a name per boot); the
        guest waits there while the ``with`` body runs and goes on when it ends (or exits
        1 if the body raises)."""
        self.marker(f"GATE {name}", timeout)
        self.gate_sock.settimeout(30)
        conn, _ = self.gate_sock.accept()
        with conn:
            conn.settimeout(30)
            assert conn.recv(256).strip() == name.encode(), f"gate {name}: wrong name"
            answer = b"stop\n"
            try:
                yield
                answer = b"go\n"
            finally:
                conn.sendall(answer)

    def finish(self, timeout: float) -> int:
        """Wait for the script's exit status and QEMU's exit; kill our QEMU if it hangs."""
        try:
            status = int(self.marker("EXIT", timeout))
            self.proc.wait(timeout=30)
            return status
        finally:
            self.kill()

    def kill(self) -> None:
        """Kill our own QEMU (by PID) if it still runs, and remove its files."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.gate_sock.close()
        self.workdir.cleanup()


def _die_with_parent() -> None:
    """In QEMU's child process: SIGKILL it when the process that started it dies."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _qemu_command(guest: Guest, initrd: Path, forwards: dict[str, tuple[str, int]],
                  memory_mb: int, inbound: dict[int, int] | None = None) -> list[str]:
    """QEMU with TCG, one CPU, the serial console on stdout, and a user-mode network that
    reaches nothing but ``forwards`` (restrict=on; one relay process per connection) and
    is reached only through ``inbound`` (restrict=on leaves hostfwd rules working)."""
    netdev = "user,id=n0,restrict=on,ipv6=off"
    for hport, gport in (inbound or {}).items():
        netdev += f",hostfwd=tcp:127.0.0.1:{hport}-:{gport}"
    for gaddr, (haddr, hport) in forwards.items():
        relay = shlex.join([sys.executable, str(Path(__file__).resolve()), "relay",
                            haddr, str(hport)])
        netdev += f",guestfwd=tcp:{gaddr}-cmd:{relay}"
    return ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-cpu", "max",
            "-m", str(memory_mb), "-smp", "1", "-nographic", "-no-reboot", "-nodefaults",
            "-serial", "stdio", "-monitor", "none", "-kernel", str(guest.kernel),
            "-initrd", str(initrd), "-append", "console=ttyS0 panic=-1 loglevel=5",
            "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0,romfile="]


# -- the per-connection relay QEMU runs for each forwarded guest connection ------------
def relay(host: str, port: int) -> None:
    """Copy between stdin (QEMU's end of a guest connection, a socket) and host:port,
    passing each side's end of stream on to the other."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)  # QEMU made our stderr the guest's connection too: keep it clean
    guest = socket.socket(fileno=0)
    try:
        target = socket.create_connection((host, port), timeout=10)
    except OSError:
        return  # the guest sees its connection closed, as if refused
    for sock in (guest, target):
        sock.setblocking(True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1) if sock is target else None
    peer = {guest: target, target: guest}
    open_ = [guest, target]
    while open_:
        for sock in select.select(open_, [], [])[0]:
            try:
                data = sock.recv(1 << 16)
            except OSError:
                data = b""
            if data:
                peer[sock].sendall(data)
                continue
            open_.remove(sock)
            with contextlib.suppress(OSError):
                peer[sock].shutdown(socket.SHUT_WR)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    build = sub.add_parser("build", help="build (or find) the cached guest and print its files")
    build.add_argument("--python", action="store_true",
                       help="the variant with Python 3 and pytgt's dependencies")
    run = sub.add_parser("run", help="boot the guest on a shell script and print its console")
    run.add_argument("script", type=Path)
    run.add_argument("--forward", action="append", default=[], metavar="GADDR:GPORT=HOST:PORT",
                     help="a guest address QEMU relays to a TCP port on the host")
    run.add_argument("--timeout", type=float, default=600)
    rel = sub.add_parser("relay", help=argparse.SUPPRESS)
    rel.add_argument("host")
    rel.add_argument("port", type=int)
    args = parser.parse_args(argv)
    if args.cmd == "relay":
        relay(args.host, args.port)
        return 0
    guest = build_guest(progress=True, python=getattr(args, "python", False))
    if args.cmd == "build":
        print(f"kernel {guest.kernel}\ninitrd {guest.initrd}")
        return 0
    forwards = {}
    for spec in args.forward:
        gaddr, _, hostport = spec.partition("=")
        host, _, port = hostport.rpartition(":")
        forwards[gaddr] = (host, int(port))
    booted = guest.boot(args.script.read_text(), forwards, log=sys.stdout)
    try:
        return booted.finish(args.timeout)
    finally:
        booted.kill()


if __name__ == "__main__":
    sys.exit(main())
