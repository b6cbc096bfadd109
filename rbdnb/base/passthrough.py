"""Running a real tool's sub-command for rbdnb: the one validated pass-through.

rbdnb models the commands of the guide itself (plans, dry runs, typed errors, DataFrames).
For the long tail of what ``rbd``, ``ceph``, ``virsh`` and ``qemu-img`` can do, it runs the
real program from an argument list -- never a shell -- after checking the line against a
table of that tool's sub-commands (:class:`Sub`): a ``read`` runs; a ``change`` is shown as
its exact command line on a dry run; a ``destroy`` also needs ``confirm=True``; a few are
refused, with the form that works. A line that carries a cephx key, or shell syntax (a
pipe, a redirection, ``$(...)``), is refused before anything runs. Whatever the program
prints is redacted of keys.

The tools' own modules (:mod:`rbdnb.ceph.tools`, :mod:`rbdnb.virt.tools`) hold the tables and
add the connection (a conf path, a client id, a keyring path, a libvirt URI -- never a key).
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import CommandFailed, InvalidArgument, require_confirmation
from . import proc as _proc
from .plan import Plan, Result
from .secret import KEY_PATTERN, redact

READ, CHANGE, DESTROY, REFUSED = "read", "change", "destroy", "refused"
_CONFIG_PREFIXES = {"rbd", "rados", "client", "ms", "mon", "osd", "debug", "log", "keyring",
                    "auth", "admin", "objecter", "librados"}
_PERCENT = re.compile(r"(\d{1,3})% complete")
# Shell syntax: a magic runs one program with these words, so none of this would do what it
# does in a shell.
_SHELL = re.compile(r"^(\||\|\||&&|;|>|>>|<|2>|2>&1|&)$|^\$\(|`")


@dataclass(frozen=True)
class Sub:
    """One sub-command of a tool: how rbdnb treats it.

    ``kind``: READ, CHANGE, DESTROY or REFUSED; ``json``: it takes ``--format json``;
    ``progress``: it takes ``--no-progress`` and reports ``NN% complete`` on stderr;
    ``long``: it runs as long as the data takes (no overall time bound beyond the client
    timeouts); ``why``: for REFUSED, why and what to use instead.
    """

    kind: str
    json: bool = False
    progress: bool = False
    long: bool = False
    why: str = ""


@dataclass
class Tool:
    """A tool's table: sub-command words -> :class:`Sub`, the tool's aliases, the options that
    take a value (to find the sub-command after options placed before it)."""

    name: str
    subs: dict[tuple[str, ...], Sub]
    aliases: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)
    valued: frozenset[str] = frozenset()
    flags: frozenset[str] = frozenset()  # its options without a value
    option_commands: dict[str, tuple[str, ...]] = field(default_factory=dict)  # -s = status

    def knows_option(self, option: str) -> bool:
        """Whether ``option`` (``--name`` or ``--name=value``) is one of the tool's, or a
        Ceph config override (``--rbd-default-clone-format``), which rbd and ceph take."""
        name = option.partition("=")[0]
        return name in self.valued or name in self.flags or (
            self.name in ("rbd", "ceph") and name.startswith("--") and
            name[2:].replace("-", "_").split("_")[0] in _CONFIG_PREFIXES)

    def find(self, argv: list[str]) -> tuple[tuple[str, ...], Sub, int, int] | None:
        """(the sub-command's words, its Sub, where its words start and end in argv), or None.

        The sub-command may follow options (``rbd -p POOL import ...``): the first place where
        known words stand, with only options (and their values) before it."""
        longest = max((len(k) for k in (*self.subs, *self.aliases)), default=1)
        index, skip = 0, False
        while index < len(argv):
            token = argv[index]
            if skip:
                skip = False
            elif token.startswith("-") and token != "-":
                if token in self.option_commands:  # `ceph -s`
                    key = self.option_commands[token]
                    return key, self.subs[key], index, index + 1
                # An option of its own that takes a value, or one it does not list (a Ceph
                # config override, --rbd-default-clone-format 1): its value comes next.
                skip = "=" not in token and token not in self.flags
            else:
                for n in range(min(longest, len(argv) - index), 0, -1):
                    words = tuple(argv[index:index + n])
                    key = self.aliases.get(words, words)
                    if key in self.subs:
                        return key, self.subs[key], index, index + n
                return None  # a word that is no sub-command stands first
            index += 1
        return None

    def words(self) -> list[str]:
        """Every sub-command and alias, as typed."""
        return sorted({" ".join(k) for k in (*self.subs, *self.aliases)})


@dataclass
class Output:
    """What a program printed: its command line (as shown), the text (keys redacted) and,
    for ``--format json``, the parsed value."""

    argv: list[str]
    text: str
    value: Any = None

    def __str__(self) -> str:
        return self.text

    def _repr_markdown_(self) -> str:
        return "```\n" + (self.text.rstrip() or "(no output)") + "\n```"


@dataclass
class Redirect:
    """A line's redirections of one command's own input and output: ``> FILE`` (also
    ``| tee FILE``, ``| sudo tee FILE``) and ``< FILE``."""

    output: str | None = None
    input: str | None = None


def split_redirections(argv: list[str]) -> tuple[list[str], Redirect]:
    """``argv`` without its trailing ``> FILE``, ``| [sudo] tee [-a] FILE`` and ``< FILE``,
    and what they name. Anything else shell-like stays in argv (and :func:`check_line`
    refuses it)."""
    words, redirect = list(argv), Redirect()
    changed = True
    while changed:
        changed = False
        if len(words) >= 2 and words[-2] in (">", "<") and not _SHELL.search(words[-1]):
            if words[-2] == ">":
                redirect.output = words[-1]
            else:
                redirect.input = words[-1]
            words = words[:-2]
            changed = True
            continue
        if "|" in words:
            cut = len(words) - 1 - words[::-1].index("|")
            tail = words[cut + 1:]
            if tail[:1] == ["sudo"]:
                tail = tail[1:]
            if tail[:1] == ["tee"]:
                tail = [t for t in tail[1:] if t not in ("-a", "--append")]
                if len(tail) == 1 and not _SHELL.search(tail[0]):
                    redirect.output = tail[0]
                    words = words[:cut]
                    changed = True
    return words, redirect


def check_line(tool: str, argv: list[str]) -> None:
    """Refuse what must never run: shell syntax, a cephx key among the words."""
    for token in argv:
        if _SHELL.search(token):
            raise InvalidArgument(
                f"{tool}: {token!r} is shell syntax, and a magic runs one command, not a shell: "
                f"write the output to a file with the command's own option (-o FILE where it "
                f"has one) or use Python for the rest")
        if KEY_PATTERN.search(token):
            raise InvalidArgument(
                f"{tool}: that line holds a cephx key, which would show in the notebook and in "
                f"the process list: name a keyring file instead (--keyring FILE)")


def run(tool: Tool, argv: list[str], program: list[str], *, shown: list[str] | None = None,
        confirm: bool = False, dry_run: bool = False, timeout: float = 60,
        env: dict[str, str] | None = None,
        progress: Callable[[int, int], None] | None = None,
        output_file: str | None = None, input_file: str | None = None) -> Result | Plan | Output:
    """Run ``program`` (the full argument list, connection included) for the line ``argv``.

    ``shown`` is the command line for plans and messages (``program`` by default).
    READ commands run even on a dry run; a CHANGE returns its :class:`Plan` on a dry run; a
    DESTROY needs ``confirm``. The result: an :class:`Output` for a READ, a :class:`Result`
    (whose ``value`` is the :class:`Output`) for the others. With ``output_file``, what the
    program prints is written there, mode 0600, and not shown (a keyring, a key); with
    ``input_file`` the program reads that file as its input.
    Raises InvalidArgument for an unknown or refused sub-command, ConfirmationRequired,
    Timeout (a program that ran past ``timeout``, unless the sub-command is long),
    CommandFailed with the program's own error line.
    """
    found = tool.find(argv)
    if found is None:
        check_line(tool.name, argv)
        raise InvalidArgument(f"{tool.name}: no sub-command in {' '.join(argv) or '(nothing)'}")
    words, sub, _, _ = found
    what = f"{tool.name} {' '.join(words)}"
    if sub.kind == REFUSED:
        raise InvalidArgument(f"{what}: {sub.why}")
    check_line(what, argv)
    shown = list(shown or program)
    if input_file:
        shown += ["<", input_file]
    if output_file:
        shown += [">", output_file]
    plan = Plan(what).add(*shown)
    if output_file:
        plan.note(f"output written to {output_file} (mode 0600), not shown")
    if sub.kind == DESTROY:
        plan.note("destructive: needs confirmation")
    if sub.kind != READ and dry_run:
        return plan
    if sub.kind == DESTROY:
        require_confirmation(confirm, f"{what} destroys data")
    if input_file and not os.path.isfile(input_file):
        raise InvalidArgument(f"{what}: < {input_file}: no such file")
    text = _execute(program, what, sub, timeout, env, progress, output_file, input_file)
    if output_file:
        text = f"wrote {output_file} (mode 0600)"
    out = Output(shown, redact(text))
    if sub.kind == READ:
        return out
    first = next((ln.strip() for ln in out.text.splitlines() if ln.strip()), "done")
    return Result(what, True, first, plan, value=out)


def _execute(program, what, sub: Sub, timeout, env, progress, output_file=None,
             input_file=None) -> str:
    def tick(state: _proc.Watched) -> None:
        if not sub.long and state.elapsed > timeout:
            raise _timeout(what, timeout)
        if progress and state.fresh_errors:
            found = _PERCENT.findall(state.fresh_errors.decode(errors="replace"))
            if found:
                progress(min(100, int(found[-1])), 100)
    with contextlib.ExitStack() as files:
        out = files.enter_context(private_file(output_file)) if output_file else None
        given = files.enter_context(open(input_file, "rb")) if input_file else None
        try:
            stdout, _ = _proc.watch(program, tick, env=env, interval=0.1, what=what,
                                    stdin=given, stdout=out)
        except CommandFailed as exc:
            raise CommandFailed(redact(str(exc)), argv=[], returncode=exc.returncode,
                                stderr=redact(exc.stderr)) from None
    if progress:
        progress(100, 100)
    return stdout


def _timeout(what: str, timeout: float):
    from ..errors import Timeout
    return Timeout(f"{what} did not finish within {timeout:g} s")


def private_file(path: str):
    """``path`` opened for writing, emptied, mode 0600 (also when it existed with a wider
    mode): what a command prints may be a keyring or a key."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InvalidArgument(f"{path}: directory {directory} does not exist")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "wb")


def take_option(argv: list[str], *names: str) -> tuple[list[str], str | None]:
    """argv without option ``names`` (``-o FILE``, ``-o=FILE``, ``--output-file FILE``) and its
    value (None if absent)."""
    rest, value = [], None
    tokens = iter(argv)
    for token in tokens:
        name, eq, given = token.partition("=")
        if name in names:
            value = given if eq else next(tokens, None)
            if value is None:
                raise InvalidArgument(f"{name} needs a value")
        else:
            rest.append(token)
    return rest, value


def has_option(argv: list[str], *names: str) -> bool:
    """Whether any of option ``names`` is given (``--name``, ``--name=value``)."""
    return any(t.partition("=")[0] in names for t in argv)
