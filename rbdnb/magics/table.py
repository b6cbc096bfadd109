"""What every magic is made of: a table of sub-commands (words -> parser, handler,
example), parsers that raise one-line usage errors instead of exiting, and the small
helpers the tools' modules share."""

from __future__ import annotations

import argparse
import difflib
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
        self.aliases: dict[tuple[str, ...], tuple[str, ...]] = {}
        # The tool's own option forms, made into what the parsers take (rbd's -p/--image):
        # `extract` takes them out of the line wherever they stand (before the sub-command
        # too), `normalise` folds them into the command's arguments once it is known.
        self.extract: Callable[[list[str]], tuple[list[str], dict]] | None = None
        self.normalise: Callable[[tuple[str, ...], Parser, list[str], dict], list[str]] | None = None

    def add(self, words: str, help: str, handler: Handler, *, mutating: bool = False,
            example: str = "", aliases: tuple[str, ...] = ()):
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
        for alias in aliases:  # the tool's other names for it (rbd copy = cp)
            self.aliases[tuple(alias.split())] = key
        return parser

    def find(self, argv: list[str]):
        """((parser, handler), the rest of argv, the command's words) for a command line;
        UsageError naming the closest command for one that is not known."""
        for n in (3, 2, 1):
            key = tuple(argv[:n])
            key = self.aliases.get(key, key)
            if key in self.commands:
                return self.commands[key], argv[n:], key
        words = [w for w in argv if not w.startswith("-")]
        every = [*self.commands, *self.aliases]
        # A first word that starts longer commands (`snap`) is matched with the next one.
        n = 2 if words and any(len(k) > 1 and k[0] == words[0] for k in every) else 1
        typed = " ".join(words[:n]) or "(none)"
        known = [" ".join(k) for k in every if len(k) == n]
        close = difflib.get_close_matches(typed, known, n=1, cutoff=0.5)
        hint = f"did you mean %{self.tool} {close[0]}? " if close else ""
        raise UsageError(f"%{self.tool}: unknown command {typed}; {hint}"
                         f"%{self.tool} --help lists them")

    def usage(self) -> str:
        lines = [f"%{self.tool} COMMAND ... (add --help to any command)"]
        aka = {}
        for alias, key in self.aliases.items():
            aka.setdefault(key, []).append(" ".join(alias))
        for words, (parser, _) in self.commands.items():
            also = f" (also: {', '.join(aka[words])})" if words in aka else ""
            lines.append(f"  {' '.join(words):<24} {parser.description}{also}")
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
