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
_RANK = {READ: 0, CHANGE: 1, DESTROY: 2}
_CONFIG_PREFIXES = {"rbd", "rados", "client", "ms", "mon", "osd", "debug", "log", "keyring",
                    "auth", "admin", "objecter", "librados"}
_PERCENT = re.compile(r"(\d{1,3})% complete")


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
    # Options that make the line more than ``kind`` (qemu-img check -r: a change;
    # snapshot -d: a destroy): (option, kind) pairs.
    escalate: tuple[tuple[str, str], ...] = ()

    def kind_for(self, argv: list[str]) -> str:
        """The kind of this line: ``kind``, or more for an option in ``escalate``."""
        kind = self.kind
        for option, more in self.escalate:
            if has_option(argv, option) and _RANK.get(more, 0) > _RANK.get(kind, 0):
                kind = more
        return kind


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
                # An option that takes a value; one it does not list (a Ceph config override,
                # --rbd-default-clone-format 1) too, unless a sub-command's word follows.
                if "=" in token or token in self.flags:
                    skip = False
                elif token in self.valued:
                    skip = True
                else:
                    nxt = argv[index + 1] if index + 1 < len(argv) else ""
                    skip = not any(k[0] == nxt for k in (*self.subs, *self.aliases))
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
    """What a line redirects of its one command: its output to a file (``> FILE``, ``>> FILE``,
    ``| tee [-a] FILE``, ``| sudo tee FILE``), its input from one (``< FILE``)."""

    output: str | None = None
    append: bool = False
    input: str | None = None

    def __bool__(self) -> bool:
        return bool(self.output or self.input)


_OPERATOR_CHARS = "|&;<>"


def split_shell(line: str) -> list[tuple[str, bool]]:
    """A command line's words as a POSIX shell splits them, each with whether it is an
    operator (``|``, ``>``, ``2>``, ``&&``, ``;``, ``$(``, a backquote...) -- only when not
    quoted: ``image-meta set IMG '>' v`` has no redirection. Raises InvalidArgument for an
    unclosed quote."""
    tokens: list[tuple[str, bool]] = []
    word, quoted, i = "", False, 0

    def flush():
        nonlocal word, quoted
        if word or quoted:
            tokens.append((word, False))
        word, quoted = "", False

    while i < len(line):
        ch = line[i]
        if ch in " \t\n":
            flush()
        elif ch == "\\" and i + 1 < len(line):
            word += line[i + 1]
            i += 1
        elif ch in "'\"":
            end = line.find(ch, i + 1)
            while ch == '"' and end > 0 and line[end - 1] == "\\":
                end = line.find(ch, end + 1)
            if end < 0:
                raise InvalidArgument("the line has a quote that is not closed")
            text = line[i + 1:end]
            word += text.replace('\\"', '"') if ch == '"' else text
            quoted = True
            i = end
        elif ch in _OPERATOR_CHARS or (ch == "$" and line[i + 1:i + 2] == "(") or ch == "`":
            lead = word if word.isdigit() and ch in "<>" and not quoted else ""  # 2>
            if lead:
                word = ""
            flush()
            op = line[i:i + 2] if line[i:i + 2] in ("||", "&&", ">>", "$(", "&>", "2>") \
                else ch
            tokens.append((lead + op, True))
            i += len(op) - 1
        else:
            word += ch
        i += 1
    flush()
    return tokens


def parse_line(tool: str, line: str) -> tuple[list[str], Redirect]:
    """A magic's line -> (the command's words, its redirections). Only redirections of the
    one command's output or input are read; any other shell syntax -- a pipe into another
    program, ``&&``, ``;``, ``2>``, ``$(...)`` -- is refused in one line."""
    tokens = split_shell(line)
    redirect = Redirect()
    while tokens:
        texts = [t for t, _ in tokens]
        if len(tokens) >= 2 and tokens[-2][1] and texts[-2] in (">", ">>", "<") \
                and not tokens[-1][1]:
            if texts[-2] == "<":
                redirect.input = texts[-1]
            elif redirect.output is None:
                redirect.output, redirect.append = texts[-1], texts[-2] == ">>"
            tokens = tokens[:-2]
            continue
        pipes = [i for i, (t, op) in enumerate(tokens) if op and t == "|"]
        if pipes and redirect.output is None:
            tail = [t for t, op in tokens[pipes[-1] + 1:] if not op]
            if len(tail) == len(tokens) - pipes[-1] - 1:  # no operator after the pipe
                if tail[:1] == ["sudo"]:
                    tail = tail[1:]
                append = bool({"-a", "--append"} & set(tail))
                tail = [t for t in tail if t not in ("-a", "--append")]
                if len(tail) == 2 and tail[0] == "tee":
                    redirect.output, redirect.append = tail[1], append
                    tokens = tokens[:pipes[-1]]
                    continue
        break
    for text, op in tokens:
        if op:
            raise InvalidArgument(
                f"{tool}: {text!r} is shell syntax, and a magic runs one command, not a shell: "
                f"it takes > FILE, | tee FILE and < FILE for the command's own output and "
                f"input; run the rest as commands of their own, or in Python")
    return [t for t, _ in tokens], redirect


def check_line(tool: str, argv: list[str]) -> None:
    """Refuse a cephx key among the words: it would show in the notebook and in ``ps``."""
    for token in argv:
        if KEY_PATTERN.search(token):
            raise InvalidArgument(
                f"{tool}: that line holds a cephx key, which would show in the notebook and in "
                f"the process list: name a keyring file instead (--keyring FILE)")


def run(tool: Tool, argv: list[str], program: list[str], *, shown: list[str] | None = None,
        confirm: bool = False, dry_run: bool = False, timeout: float = 60,
        env: dict[str, str] | None = None,
        progress: Callable[[int, int], None] | None = None,
        redirect: Redirect | None = None,
        writes: tuple[str, str] | None = None) -> Result | Plan | Output:
    """Run ``program`` (the full argument list, connection included) for the line ``argv``.

    ``shown`` is the command line for plans and messages (``program`` by default). A READ
    runs even on a dry run -- unless it writes a file; a CHANGE returns its :class:`Plan` on
    a dry run; a DESTROY needs ``confirm``. The result: an :class:`Output` for a READ, a
    :class:`Result` (whose ``value`` is the :class:`Output`) for the others.
    ``redirect``: the program's output goes to a file (mode 0600, replaced only once the
    program succeeded; appended to for ``>>``/``tee -a``) and is not shown; its input comes
    from one. ``writes``: (a temporary path the program was told to write, the file the line
    names), for a tool's own ``-o FILE``: made 0600 first, renamed on success.
    Raises InvalidArgument for an unknown or refused sub-command or a file that cannot be
    used, ConfirmationRequired, Timeout (a program that ran past ``timeout``, unless the
    sub-command is long), CommandFailed with the program's own error line.
    """
    redirect = redirect or Redirect()
    found = tool.find(argv)
    if found is None:
        check_line(tool.name, argv)
        raise InvalidArgument(f"{tool.name}: no sub-command in {' '.join(argv) or '(nothing)'}")
    words, sub, _, _ = found
    what = f"{tool.name} {' '.join(words)}"
    if sub.kind == REFUSED:
        raise InvalidArgument(f"{what}: {sub.why}")
    check_line(what, argv)
    kind = sub.kind_for(argv)
    target = redirect.output or (writes[1] if writes else None)
    shown = list(shown or program)
    if redirect.input:
        shown += ["<", redirect.input]
    if redirect.output:
        shown += [">>" if redirect.append else ">", redirect.output]
    plan = Plan(what).add(*shown)
    if target:
        plan.note(f"output written to {target} (mode 0600), not shown")
    if kind == DESTROY:
        plan.note("destructive: needs confirmation")
    if dry_run and (kind != READ or target):
        return plan
    if kind == DESTROY:
        require_confirmation(confirm, f"{what} destroys data")
    if redirect.input and not os.path.isfile(redirect.input):
        raise InvalidArgument(f"{what}: < {redirect.input}: no such file")
    if target and os.path.isdir(target):
        raise InvalidArgument(f"{what}: {target}: cannot write it (a directory)")
    text = _execute(program, what, sub, timeout, env, progress, redirect, writes)
    if target:
        text = text if text.strip() else f"wrote {target} (mode 0600)"
    out = Output(shown, redact(text))
    if kind == READ:
        return out
    first = next((ln.strip() for ln in out.text.splitlines() if ln.strip()), "done")
    return Result(what, True, first, plan, value=out)


def _execute(program, what, sub: Sub, timeout, env, progress, redirect: Redirect,
             writes) -> str:
    def tick(state: _proc.Watched) -> None:
        if not sub.long and state.elapsed > timeout:
            raise _timeout(what, timeout)
        if progress and state.fresh_errors:
            found = _PERCENT.findall(state.fresh_errors.decode(errors="replace"))
            if found:
                progress(min(100, int(found[-1])), 100)

    failed = None
    with contextlib.ExitStack() as files:
        out = tmp_out = None
        if redirect.output and redirect.append:
            out = files.enter_context(_open_private(redirect.output, append=True))
        elif redirect.output:
            tmp_out = temporary(redirect.output)
            out = files.enter_context(_open_private(tmp_out))
        if writes:
            _open_private(writes[0]).close()
        given = files.enter_context(_open_input(redirect.input)) if redirect.input else None
        try:
            stdout, _ = _proc.watch(program, tick, env=env, interval=0.1, what=what,
                                    stdin=given, stdout=out)
        except CommandFailed as exc:
            failed = CommandFailed(redact(str(exc)), argv=[], returncode=exc.returncode,
                                   stderr=redact(exc.stderr))
        except BaseException:
            _discard(tmp_out, writes)
            raise
    if failed is not None:  # raised here, so that the unredacted error is not its context
        _discard(tmp_out, writes)
        raise failed
    for tmp, final in ((tmp_out, redirect.output), writes or (None, None)):
        if tmp:
            try:
                os.replace(tmp, final)
            except OSError as exc:
                _discard(tmp, None)
                raise InvalidArgument(f"{final}: cannot write it ({exc.strerror})") from None
    if progress:
        progress(100, 100)
    return stdout


def _timeout(what: str, timeout: float):
    from ..errors import Timeout
    return Timeout(f"{what} did not finish within {timeout:g} s")


def temporary(path: str) -> str:
    """A name beside ``path`` to write first (renamed to ``path`` on success)."""
    head, tail = os.path.split(os.path.abspath(path))
    return os.path.join(head, f".{tail}.rbdnb-{os.getpid()}")


def _discard(tmp: str | None, writes) -> None:
    for path in (tmp, writes[0] if writes else None):
        if path:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _open_private(path: str, *, append: bool = False):
    """``path`` opened for writing with mode 0600 (also when it existed with a wider mode):
    what a command prints may be a keyring or a key. InvalidArgument when it cannot be."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InvalidArgument(f"{path}: directory {directory} does not exist")
    try:
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        fd = os.open(path, flags, 0o600)
        os.fchmod(fd, 0o600)
    except OSError as exc:
        raise InvalidArgument(f"{path}: cannot write it ({exc.strerror})") from None
    return os.fdopen(fd, "ab" if append else "wb")


def private_file(path: str):
    """``path`` opened for writing, emptied, mode 0600 (see :func:`_open_private`)."""
    return _open_private(path)


def _open_input(path: str):
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InvalidArgument(f"< {path}: cannot read it ({exc.strerror})") from None


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
