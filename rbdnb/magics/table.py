"""What every magic is made of: a table of sub-commands (words -> parser, handler,
example), parsers that raise one-line usage errors instead of exiting, and the small
helpers the tools' modules share."""

from __future__ import annotations

import argparse
from typing import Callable

from IPython.core.error import UsageError

from ..base.units import parse_size


class Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so errors become one line in the notebook."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")

    def exit(self, status=0, message=None):
        if message:
            raise UsageError(message.strip())
        raise HelpShown()


class HelpShown(Exception):
    """A command's --help was shown: nothing more to do."""


# A handler gets the magics object (its cluster, libvirt connection, progress) and the parsed
# arguments, and returns what to display.
Handler = Callable[[object, argparse.Namespace], object]


class Table:
    """The sub-commands of one magic: words -> (parser, handler), each with an example.

    ``mutating`` commands take ``--dry-run`` (and ``--no-dry-run``, to act when
    ``%config RbdnbMagics.dry_run = True`` made dry runs the default). Every command
    carries an ``example`` line (with ``{pool}``-style fields): the help shows it, and a
    test runs every command's example as a dry run and checks that nothing changed.
    """

    def __init__(self, tool: str):
        self.tool = tool
        self.commands: dict[tuple[str, ...], tuple[Parser, Handler]] = {}
        self.mutating: set[tuple[str, ...]] = set()
        self.examples: dict[tuple[str, ...], str] = {}

    def add(self, words: str, help: str, handler: Handler, *, mutating: bool = False,
            example: str = ""):
        parser = Parser(prog=f"%{self.tool} {words}", description=help, add_help=True,
                         epilog=f"example: %{self.tool} {example}" if example else None)
        key = tuple(words.split())
        if mutating:
            parser.add_argument("--dry-run", action=argparse.BooleanOptionalAction,
                                default=None, help="show the plan (commands, XML) and change "
                                "nothing; --no-dry-run acts even when dry runs are the default")
            self.mutating.add(key)
        self.commands[key] = (parser, handler)
        self.examples[key] = example
        return parser

    def find(self, argv: list[str]):
        for n in (3, 2, 1):
            key = tuple(argv[:n])
            if key in self.commands:
                return self.commands[key], argv[n:]
        raise UsageError(f"%{self.tool}: unknown command {' '.join(argv[:2]) or '(none)'}; "
                         f"one of: {', '.join(' '.join(k) for k in self.commands)}")

    def usage(self) -> str:
        lines = [f"%{self.tool} COMMAND ... (add --help to any command)"]
        for words, (parser, _) in self.commands.items():
            lines.append(f"  {' '.join(words):<24} {parser.description}")
        return "\n".join(lines)


# How a fix the core names reads in a magic: the flag the user can type.
FLAGS = {"confirm": "--yes", "allow_shrink": "--allow-shrink", "exist_ok": "--exist-ok",
          "purge_snapshots": "--purge-snapshots", "overwrite": "--overwrite",
          "missing_ok": "--missing-ok"}


def magic_words(keyword: str, value) -> str | None:
    """How a fix the core names (``confirm``, ``free_space``, ...) reads in a magic: the flag to
    type."""
    if keyword == "free_space":
        return f"free space with %rbd free-space {value or 'POOL'}/IMAGE ... --yes"
    return f"add {FLAGS[keyword]}" if keyword in FLAGS else None


def size_in(default_unit: str):
    """A size parser for argparse: a bare number is in ``default_unit`` (as the tool reads it)."""
    def parse(text: str) -> int:
        return parse_size(text, default_unit=default_unit)
    return parse




def progress_for(m, a, description: str, total: int):
    """A progress bar for a command that acts, None for a dry run."""
    return None if m.dry(a) else m.progress(description, total)


def series(data: dict, name: str):
    """A dict's scalar values as a one-column DataFrame."""
    import pandas as pd
    flat = {k: v for k, v in data.items() if not isinstance(v, (dict, list))}
    return pd.Series(flat, name=name).to_frame()


class XML(str):
    """XML text that a notebook shows as a highlighted code block."""
    def _repr_markdown_(self):
        return f"```xml\n{self}\n```"


def frame(rows, columns):
    """Rows as a DataFrame with these columns (also when there are none)."""
    import pandas as pd
    return pd.DataFrame(rows, columns=columns)
