"""``pytgt-iscsi``: pytgt's initiator as a command (argument parsing and printing only).

``discover``, ``ls``, ``inq``, ``readcap``, ``dd`` and ``bench`` on libiscsi's
``iscsi://[user%secret@]host[:port]/IQN/LUN`` URLs, built on :mod:`pytgt.initiator`.
The output of ``ls``, ``inq`` and ``readcap`` is laid out as iscsi-ls, iscsi-inq and
iscsi-readcapacity16 lay out theirs. Errors are one line on stderr, ``pytgt-iscsi: ...``,
with the exit statuses of :data:`EXIT_STATUSES`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from pytgt.cli import scsi_text
from pytgt.cli.argparse_style import OneLineErrorParser
from pytgt.cli.iscsi_status import (
    EXIT_ENODEV,
    EXIT_OK,
    EXIT_STATUSES,
    CommandError,
    failure,
)
from pytgt.cli.iscsi_url import IscsiUrl, parse_url
from pytgt.initiator import Initiator, InitiatorSession
from pytgt.initiator.options import DEFAULT_INITIATOR_NAME

PROG = "pytgt-iscsi"
VERSION = "0.1.0"



def build_parser() -> argparse.ArgumentParser:
    from pytgt.cli import iscsi_copy

    epilog = "exit status: " + "; ".join(f"{k} {v}" for k, v in EXIT_STATUSES.items())
    p = OneLineErrorParser(
        prog=PROG, description="iSCSI initiator commands (pytgt.initiator) on "
                "libiscsi's iscsi://[user%secret@]host[:port]/IQN/LUN URLs",
                epilog=epilog)
    p.add_argument("-i", "--initiator-name", default=DEFAULT_INITIATOR_NAME, metavar="IQN",
                   help=f"the initiator's iSCSI name (default {DEFAULT_INITIATOR_NAME})")
    p.add_argument("-t", "--timeout", type=float, default=30.0, metavar="S",
                   help="seconds to wait for each login and command (default 30)")
    p.add_argument("-V", "--version", action="version", version=f"{PROG} {VERSION}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True,
                           parser_class=OneLineErrorParser)
    c = sub.add_parser("discover", help="list the targets of a portal (SendTargets), "
                       "as iscsiadm -m discovery does")
    c.add_argument("url", metavar="iscsi://HOST[:PORT]/", help="the portal")
    c = sub.add_parser("ls", help="list targets as iscsi-ls does; -s with their LUNs")
    c.add_argument("-s", "--show-luns", action="store_true", help="also list every LUN")
    c.add_argument("url", metavar="iscsi://HOST[:PORT]/", help="the portal")
    c = sub.add_parser("inq", help="INQUIRY, as iscsi-inq prints it")
    c.add_argument("-e", "--evpd", type=int, default=0, choices=(0, 1),
                   help="1: a vital product data page")
    c.add_argument("-c", "--pagecode", type=_page_code, default=0, metavar="PAGE",
                   help="the VPD page code (with -e 1), e.g. 0x83")
    c.add_argument("url", metavar="URL", help="the LUN: iscsi://HOST[:PORT]/IQN/LUN")
    c = sub.add_parser("readcap", help="READ CAPACITY (16), as iscsi-readcapacity16 prints it")
    c.add_argument("-s", "--size", action="store_true", help="print only the size in bytes")
    c.add_argument("url", metavar="URL", help="the LUN: iscsi://HOST[:PORT]/IQN/LUN")
    iscsi_copy.add_parsers(sub)
    return p


def _page_code(text: str) -> int:
    """A VPD page code: decimal or 0x hex, 0 to 255 (argparse type)."""
    try:
        value = int(text, 0)
    except ValueError:
        value = -1
    if not 0 <= value <= 0xFF:
        raise argparse.ArgumentTypeError(f"bad page code: {text}")
    return value


# -- running a command ----------------------------------------------------------------
async def login(args: argparse.Namespace, url: IscsiUrl,
                target: str | None | bool = True) -> InitiatorSession:
    """A session to ``target`` (True: the URL's; None: a discovery session)."""
    if target is True:
        target = url.target
    assert target is None or isinstance(target, str)
    opts: dict[str, Any] = {}
    if url.chap:
        opts["chap"] = url.chap
    if url.mutual_chap:
        opts["mutual_chap"] = url.mutual_chap
    return await Initiator.login(url.host, url.port, target=target,
                                 initiator_name=args.initiator_name, timeout=args.timeout,
                                 **opts)


async def check_lun(session: InitiatorSession, url: IscsiUrl) -> int:
    """The URL's LUN, if REPORT LUNS lists it; raises CommandError (ENODEV) if not."""
    assert url.lun is not None
    if url.lun not in await session.report_luns():
        raise CommandError(f"{url}: no LUN {url.lun} on {url.target}", EXIT_ENODEV)
    return url.lun


async def _targets(args: argparse.Namespace, url: IscsiUrl) -> list[tuple[str, list[str]]]:
    """SendTargets=All over a discovery session."""
    s = await login(args, url, None)
    try:
        return await s.send_targets("All")
    finally:
        await s.logout()


async def _discover(args: argparse.Namespace) -> int:
    """``ADDRESS:PORT,TPGT IQN`` lines, as ``iscsiadm -m discovery`` prints them."""
    for name, addrs in await _targets(args, parse_url(args.url, need_lun=False)):
        for addr in addrs:
            print(f"{addr} {name}")
    return EXIT_OK


async def _ls(args: argparse.Namespace) -> int:
    url = parse_url(args.url, need_lun=False)
    for name, addrs in await _targets(args, url):
        for addr in addrs:
            print(f"Target:{name} Portal:{addr}")
        if args.show_luns:
            for line in await _lun_lines(args, url, name):
                print(line)
    return EXIT_OK


async def _lun_lines(args: argparse.Namespace, url: IscsiUrl, target: str) -> list[str]:
    lines = []
    async with await login(args, url, target) as s:
        for lun in await s.report_luns():
            inq = await s.inquiry(lun)
            assert not isinstance(inq, bytes)
            line = f"Lun:{lun:<4} Type:{scsi_text.device_type(inq.peripheral_device_type)}"
            if inq.peripheral_device_type == 0:
                cap = await s.read_capacity16(lun)
                line += f" (Size:{scsi_text.human_size(cap.size)})"
            lines.append(line)
    return lines


async def _inq(args: argparse.Namespace) -> int:
    url = parse_url(args.url)
    async with await login(args, url) as s:
        lun = await check_lun(s, url)
        if args.evpd:
            data = await s.inquiry(lun, evpd=True, page=args.pagecode, allocation_length=4096)
            assert isinstance(data, bytes)
            lines = scsi_text.vpd_page(args.pagecode, data)
        else:
            inq = await s.inquiry(lun)
            assert not isinstance(inq, bytes)
            lines = scsi_text.standard_inquiry(inq.raw)
    print("\n".join(lines))
    return EXIT_OK


async def _readcap(args: argparse.Namespace) -> int:
    url = parse_url(args.url)
    async with await login(args, url) as s:
        cap = await s.read_capacity16(await check_lun(s, url))
    print(cap.size if args.size else "\n".join(scsi_text.read_capacity16(cap.raw)))
    return EXIT_OK


def commands() -> dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]]:
    from pytgt.cli import iscsi_copy

    return {"discover": _discover, "ls": _ls, "inq": _inq, "readcap": _readcap,
            "dd": iscsi_copy.dd, "bench": iscsi_copy.bench}


def _runner() -> Callable[[Coroutine[Any, Any, int]], int]:
    try:
        import uvloop  # the daemon's loop, when installed

        return uvloop.run
    except ImportError:  # pragma: no cover - non-Linux
        return asyncio.run


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit status (see :data:`EXIT_STATUSES`)."""
    args = build_parser().parse_args(argv)
    try:
        return _runner()(commands()[args.command](args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        err = failure(exc)
        print(f"{PROG}: {err}", file=sys.stderr)
        return err.status


if __name__ == "__main__":
    sys.exit(main())
