"""The argument parser of pytgt's own commands (pytgt-iscsi, pytgtimg): a usage error is
one line naming the program, then "Try `PROG --help'", and exit status 22 (EINVAL), as
pytgtadm and tgt's tools answer."""

from __future__ import annotations

import argparse
import errno
import sys
from typing import NoReturn


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit 22 (a subcommand's name the command)."""

    def error(self, message: str) -> NoReturn:
        prog = self.prog.split()[0]  # "pytgt-iscsi ls" -> "pytgt-iscsi"
        print(f"{prog}: {message}\nTry `{prog} --help' for more information.",
              file=sys.stderr)
        raise SystemExit(errno.EINVAL)
