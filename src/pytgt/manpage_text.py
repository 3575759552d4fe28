"""What the manual pages say beyond the parsers: exit statuses, files, examples."""

from __future__ import annotations

import argparse

from pytgt.manpage import Page


def _pytgtd() -> argparse.ArgumentParser:
    from pytgt.daemon.main import build_parser

    return build_parser()


def _pytgtadm() -> argparse.ArgumentParser:
    from pytgt.cli.pytgtadm import build_parser

    return build_parser()


def _pytgt_admin() -> argparse.ArgumentParser:
    from pytgt.cli.pytgt_admin import build_parser

    return build_parser()


def _pytgt_iscsi() -> argparse.ArgumentParser:
    from pytgt.cli.pytgt_iscsi import build_parser

    return build_parser()


def _pytgtimg() -> argparse.ArgumentParser:
    from pytgt.cli.pytgtimg import build_parser

    return build_parser()


def _iscsi_exit_statuses() -> str:
    from pytgt.cli.iscsi_status import EXIT_STATUSES

    return "\n\n".join(f"{code}: {text}" for code, text in EXIT_STATUSES.items())


ENVIRONMENT = """\
PYTGT_RUN_DIR: the directory of the control sockets (default /run/pytgt as root, \
$XDG_RUNTIME_DIR/pytgt otherwise).

PYTGT_STATE_DIR: saved configuration, APTPL reservations, the quick-start image \
(default /var/lib/pytgt as root, ~/.local/state/pytgt otherwise)."""

PAGES = [
    Page("pytgtd", 8, _pytgtd, "the pytgt iSCSI target daemon", {
        "ISCSI OPTIONS": """\
--iscsi takes tgtd's comma-separated keys: portal=HOST:PORT (several; IPv6 as \
[::1]:3260), nop_interval and nop_count (NOP-In pings), and pytgt's login_timeout, \
tmf_wait_timeout, tpgt and the CHAP back-off (auth_fail_limit, auth_fail_window, \
auth_backoff_initial, auth_backoff_max).

iSNS (RFC 4171): isns=On with isns_addr=HOST and isns_port=PORT (default 3205) \
registers the daemon's entity, portals and targets with that iSNS server, keeps them \
current as targets come and go, answers its ESI and SCN messages, and deregisters \
everything when the daemon stops; isns_ac=On admits only the initiators the server's \
discovery domains show each target; isns_esi_interval=S is the ESI interval asked for. \
As with tgt, pytgtadm --op update --mode sys --name iSNSServerIP, iSNSServerPort, \
iSNSAccessControl and then iSNS --value On does the same at run time.""",
        "SIGNALS": "SIGTERM and SIGINT stop the daemon gracefully: running commands end, "
                   "sessions are asked to log out, stores are flushed.",
        "ENVIRONMENT": ENVIRONMENT,
        "EXAMPLES": "$ pytgtd -f --iscsi portal=127.0.0.1:3260 --quickstart\n\n"
                    "$ pytgtd -C 1 --iscsi portal=0.0.0.0:3260,isns=On,"
                    "isns_addr=isns.example.com",
        "SEE ALSO": "pytgtadm(8), pytgt-admin(8), pytgt-iscsi(1), tgtd(8), isnsd(8)",
    }),
    Page("pytgtadm", 8, _pytgtadm, "administer a running pytgtd (tgtadm's command line)", {
        "EXIT STATUS": "0: success\n\n1: unknown operation or mode\n\n22: a bad request "
                       "(the daemon's message says which)\n\n107: the daemon is not "
                       "running (no control socket)",
        "ENVIRONMENT": ENVIRONMENT,
        "EXAMPLES": "$ pytgtadm -C 1 --lld iscsi --op new --mode target --tid 1 "
                    "-T iqn.2026-11.org.example:disk1\n"
                    "pytgtadm -C 1 --lld iscsi --op new --mode logicalunit --tid 1 "
                    "--lun 1 -b /var/lib/disk1.img\n"
                    "pytgtadm -C 1 --lld iscsi --op bind --mode target --tid 1 -I ALL",
        "SEE ALSO": "pytgtd(8), pytgt-admin(8), tgtadm(8)",
    }),
    Page("pytgt-admin", 8, _pytgt_admin, "apply a targets.conf to a running pytgtd", {
        "FILES": "/etc/pytgt/targets.conf: the default configuration file (tgt's syntax).",
        "EXIT STATUS": "0: success\n\n1: the configuration file is wrong (every error "
                       "is listed)\n\n22: a request failed\n\n107: the daemon is not "
                       "running",
        "SEE ALSO": "pytgtd(8), pytgtadm(8), tgt-admin(8), targets.conf(5)",
    }),
    Page("pytgt-iscsi", 1, _pytgt_iscsi, "iSCSI initiator commands on iscsi:// URLs", {
        "URLS": "iscsi://[USER%SECRET@]HOST[:PORT]/IQN/LUN names a LUN, "
                "iscsi://HOST[:PORT]/ a portal, as libiscsi's tools take them; an IPv6 "
                "host is written in brackets; the port defaults to 3260.",
        "EXIT STATUS": "",  # filled below
        "ENVIRONMENT": "LIBISCSI_CHAP_USERNAME, LIBISCSI_CHAP_PASSWORD: CHAP credentials "
                       "when the URL has none.\n\nLIBISCSI_CHAP_TARGET_USERNAME, "
                       "LIBISCSI_CHAP_TARGET_PASSWORD: the target's, for mutual CHAP.",
        "EXAMPLES": "$ pytgt-iscsi ls -s iscsi://127.0.0.1/\n"
                    "pytgt-iscsi dd disk.raw iscsi://127.0.0.1/iqn.2026-11.org.pytgt:default/1\n"
                    "pytgt-iscsi bench --rw randread --qd 32 "
                    "iscsi://127.0.0.1/iqn.2026-11.org.pytgt:default/1",
        "SEE ALSO": "pytgtd(8), iscsi-ls(1), iscsi-inq(1), iscsi-readcapacity16(1), "
                    "qemu-img(1)",
    }),
    Page("pytgtimg", 8, _pytgtimg, "create, show and convert tape and CD/DVD image files", {
        "EXIT STATUS": "0: success\n\n1: the file could not be created, read or converted "
                       "(it exists, or is not a tape image, or is damaged)\n\n22: a bad "
                       "command line",
        "NOTES": "pytgtimg makes pytgt's tape format (docs/tape.md). tgt's tgtimg images "
                 "are read as they are: --op show prints them as tgtimg does, and pytgtd "
                 "serves and writes them in place (a tgt tape library keeps working). "
                 "--op convert copies a tape to the other format with the same blocks, "
                 "filemarks, barcode, media type, creation time and capacity; tgt's "
                 "format has no setmarks (they become filemarks). The media type is acted "
                 "on: a WORM tape only appends, a cleaning cartridge is not read.",
        "EXAMPLES": "$ pytgtimg --op new --device-type tape --barcode A0001 --size 1024 "
                    "--type data --file tape0.img\n"
                    "pytgtimg --op show --device-type tape --file tape0.img\n"
                    "pytgtimg --op convert --device-type tape --file tgt-tape.img "
                    "--output tape1.img\n"
                    "pytgtimg --op new --device-type cd --size 700 -T --file cd0.img",
        "SEE ALSO": "pytgtadm(8), pytgtd(8), tgtimg(8)",
    }),
]
PAGES[3].sections["EXIT STATUS"] = _iscsi_exit_statuses()
