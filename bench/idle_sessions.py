"""Hold N logged-in, idle iSCSI sessions (libiscsi via ctypes) until stdin closes.

    python bench/idle_sessions.py --portal 127.0.0.1:3260 --target IQN --lun 1 --count 100

Prints ``ready N`` once every session is logged in; logs them out when stdin reaches EOF.
Used by the footprint measurement: the daemon's RSS with and without these sessions.
"""

from __future__ import annotations

import argparse
import sys

if __package__ in (None, ""):
    from latency import ISCSI_HEADER_DIGEST_NONE, ISCSI_SESSION_NORMAL, load_libiscsi
else:
    from bench.latency import ISCSI_HEADER_DIGEST_NONE, ISCSI_SESSION_NORMAL, load_libiscsi


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portal", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--lun", type=int, default=1)
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args(argv)
    lib = load_libiscsi()
    contexts = []
    try:
        for i in range(args.count):
            ctx = lib.iscsi_create_context(f"iqn.2026-11.org.pytgt:bench-idle-{i}".encode())
            contexts.append(ctx)
            lib.iscsi_set_targetname(ctx, args.target.encode())
            lib.iscsi_set_session_type(ctx, ISCSI_SESSION_NORMAL)
            lib.iscsi_set_header_digest(ctx, ISCSI_HEADER_DIGEST_NONE)
            if lib.iscsi_full_connect_sync(ctx, args.portal.encode(), args.lun) != 0:
                print(f"idle_sessions: login {i} failed: {lib.iscsi_get_error(ctx).decode()}",
                      file=sys.stderr)
                return 1
        print(f"ready {len(contexts)}", flush=True)
        sys.stdin.read()
        for ctx in contexts:
            lib.iscsi_logout_sync(ctx)
    finally:
        for ctx in contexts:
            lib.iscsi_destroy_context(ctx)
    return 0


if __name__ == "__main__":
    sys.exit(main())
