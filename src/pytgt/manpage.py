"""Manual pages from the commands' argparse parsers: ``python -m pytgt.manpage [DIR]``.

Each page is the parser's description and every option with its help, plus the
sections a parser cannot hold (exit status, files, environment, examples), written in
the ``man(7)`` macros. The pages are kept in ``man/`` and installed with the package
(``share/man/man1``, ``share/man/man8``); ``tests/test_manpages.py`` checks they are
current, render without warnings and list every option.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

DATE = "December 2026"
SOURCE = "pytgt 0.1.0"


@dataclass(frozen=True)
class Page:
    """One manual page: the program, its section, its parser and the extra sections."""

    name: str
    section: int
    parser: Callable[[], argparse.ArgumentParser]
    summary: str
    sections: dict[str, str] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return f"{self.name}.{self.section}"


def escape(text: str) -> str:
    """Text for roff: backslashes and hyphens escaped, no line starting a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    text = text.replace(",", ",\\:").replace("[", "\\:[")  # long lines may break there
    return "\n".join("\\&" + line if line[:1] in (".", "'") else line
                     for line in text.split("\n"))


def _option_head(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"\\fI{escape(str(action.metavar or action.dest))}\\fR"
    takes_value = action.nargs != 0
    metavar = action.metavar or (action.dest.upper() if takes_value else None)
    if action.choices is not None and action.metavar is None and takes_value:
        metavar = "{" + ",".join(str(c) for c in action.choices) + "}"
    heads = []
    for opt in action.option_strings:
        head = f"\\fB{escape(opt)}\\fR"
        if metavar and takes_value:
            optional = action.nargs == "?"
            head += f" {'[' if optional else ''}\\fI{escape(str(metavar))}\\fR" \
                    f"{']' if optional else ''}"
        heads.append(head)
    return ", ".join(heads)


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if not action.help or action.help == argparse.SUPPRESS:
        return ""
    return str(parser._get_formatter()._expand_help(action))


def _options(parser: argparse.ArgumentParser, with_help: bool = True) -> list[str]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        if isinstance(action, argparse._HelpAction) and not with_help:
            continue
        out += [".TP", _option_head(action), escape(_help(parser, action))]
    return out


def _subcommands(parser: argparse.ArgumentParser) -> list[str]:
    out: list[str] = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {a.dest: a.help or "" for a in action._choices_actions}
        out.append(".SH COMMANDS")
        for name, sub in action.choices.items():
            usage = sub.format_usage().removeprefix("usage: ").strip()
            out += [f".SS {escape(name)}", f".B {escape(' '.join(usage.split()))}", ".PP",
                    escape(helps.get(name, "")), *_options(sub, with_help=False)]
    return out


def render(page: Page) -> str:
    """The page in man(7) macros."""
    parser = page.parser()
    usage = " ".join(parser.format_usage().removeprefix("usage: ").split())
    lines = [f'.TH {page.name.upper()} {page.section} "{DATE}" "{SOURCE}" '
             f'"{"User Commands" if page.section == 1 else "System Administration"}"',
             ".ad l", ".nh", ".SH NAME", f"{escape(page.name)} \\- {escape(page.summary)}",
             ".SH SYNOPSIS", f".B {escape(usage)}",
             ".SH DESCRIPTION", escape(parser.description or ""),
             ".SH OPTIONS", *_options(parser), *_subcommands(parser)]
    if parser.epilog:
        lines += [".PP", escape(parser.epilog)]
    for title, body in page.sections.items():
        lines += [f".SH {title}", *_paragraphs(body)]
    return "\n".join(lines) + "\n"


def _paragraphs(body: str) -> list[str]:
    """Blank-line separated paragraphs; a paragraph starting with ``$ `` is an example."""
    out: list[str] = []
    for para in body.strip().split("\n\n"):
        if para.startswith("$ "):
            out += [".PP", ".nf", escape(para[2:]), ".fi"]
        else:
            out += [".PP", escape(para)]
    return out


def pages() -> list[Page]:
    """The commands (imported lazily: building a parser imports its command)."""
    from pytgt.manpage_text import PAGES

    return PAGES


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for page in pages():
        path = directory / page.filename
        path.write_text(render(page))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    for path in write_all(Path(args[0] if args else "man")):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
