"""What every magic is made of: a table of sub-commands (words -> parser, handler,
example), parsers that raise one-line usage errors instead of exiting, and the small
helpers the tools' modules share."""

from __future__ import annotations

import argparse
import difflib
from typing import Callable

from IPython.core.error import UsageError

from ..base.secret import redact
from ..base.units import parse_size


class Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so errors become one line in the notebook."""

    def error(self, message):
        raise UsageError(redact(f"{self.prog}: {message}"))

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
        # The long tail: the real tool's sub-commands (rbdnb.base.passthrough), run by
        # `run_tool(magics, argv, confirm=..., dry_run=...)` with the notebook's connection
        # (`real`: its table, a rbdnb.base.passthrough.Tool).
        self.real = None
        self.differences: list[str] = []
        self.run_tool: Callable[..., object] | None = None
        # Native commands that give way to the real tool when the line asks for what only
        # the tool does (an option rbdnb does not model, --format on a listing).
        self.defer: Callable[[tuple[str, ...], list[str]], bool] | None = None

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

    def lookup(self, argv: list[str]):
        """((parser, handler), the rest of argv, the command's words) for a command line
        rbdnb models itself, or None."""
        for n in (4, 3, 2, 1):
            key = tuple(argv[:n])
            key = self.aliases.get(key, key)
            if key in self.commands:
                return self.commands[key], argv[n:], key
        return None

    def own_options(self, argv: list[str]) -> list[str]:
        """The options on the line that only rbdnb's commands have (not the real tool's)."""
        if self.real is None:
            return []
        ours = {opt for parser, _ in self.commands.values() for action in parser._actions
                for opt in action.option_strings}
        return [t for t in argv if t.startswith("-") and t.partition("=")[0] in ours and
                t.partition("=")[0] not in ("--yes", "--dry-run", "--no-dry-run", "-h", "--help")
                and not self.real.knows_option(t)]

    def tool_command(self, argv: list[str]):
        """The real tool's sub-command on this line (words, Sub, start, end), or None."""
        return self.real.find(argv) if self.real is not None else None

    def find(self, argv: list[str]):
        """:meth:`lookup`, or UsageError naming the closest command for one that is not
        known."""
        found = self.lookup(argv)
        if found is not None:
            return found
        self.unknown(argv)

    def unknown(self, argv: list[str]):
        """UsageError: an unknown command, naming the closest known one."""
        words = [w for w in argv if not w.startswith("-")]
        every = [*self.commands, *self.aliases]
        if self.real is not None:
            every += [*self.real.subs, *self.real.aliases]
        # A first word that starts longer commands (`snap`) is matched with the next one.
        n = 2 if words and any(len(k) > 1 and k[0] == words[0] for k in every) else 1
        typed = " ".join(words[:n]) or "(none)"
        known = sorted({" ".join(k[:n]) for k in every if len(k) >= n})
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
        if self.real is not None:
            from ..base.passthrough import REFUSED
            native = {" ".join(k) for k in (*self.commands, *self.aliases)}
            runs = [w for w in self.real.words() if w not in native and
                    self.real.find(w.split())[1].kind != REFUSED]
            refused = [w for w in self.real.words() if self.real.find(w.split())[1].kind == REFUSED]
            lines.append(f"The real {self.real.name} runs these, with this notebook's connection "
                         f"(changes: --dry-run shows the command; destructive ones need --yes):")
            lines.extend(_wrapped(runs))
            if refused:
                lines.append("Refused, each with what to use instead: " + ", ".join(refused))
        if self.differences:
            lines.append("Deliberate differences from the real tool:")
            lines.extend(f"  - {d}" for d in self.differences)
        return "\n".join(lines)


def _wrapped(words: list[str], width: int = 92) -> list[str]:
    lines, line = [], "  "
    for word in words:
        if len(line) + len(word) + 2 > width:
            lines.append(line.rstrip(", "))
            line = "  "
        line += word + ", "
    if line.strip():
        lines.append(line.rstrip(", "))
    return lines


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
        return parse_size(text, default_unit=default_unit, minimum=0)  # rbd allows 0 bytes
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


def shown_output(out, *, asked_format: bool = False):
    """What a real tool's output becomes in the notebook: the parsed value when the line
    asked for a format (as the tool would print it), else a table where the JSON is one
    (a list of records, or of names), the text where it is not."""
    import pandas as pd
    value = out.value
    if asked_format or value is None:
        return value if value is not None else out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return pd.DataFrame(value)
    if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        return pd.DataFrame({"name": value})
    if isinstance(value, dict) and all(not isinstance(v, (dict, list)) for v in value.values()):
        return series(value, out.argv[0] if out.argv else "value")
    return value
