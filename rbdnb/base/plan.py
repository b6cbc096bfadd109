"""Plans and results: what an operation will do, and what it did.

Every mutating operation builds a :class:`Plan` first: the equivalent ``ceph``,
``rbd`` and ``qemu-img`` command lines (argument lists, shown shell-quoted) and
notes. ``dry_run=True`` returns the plan and changes nothing; a real run
returns a :class:`Result` carrying the same plan, so a notebook can show the
commands beside the outcome. Both render as Markdown in Jupyter.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from .secret import redact


@dataclass
class Plan:
    """What an operation does, as the command lines an operator would type."""

    action: str
    commands: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *argv: object) -> "Plan":
        self.commands.append([str(a) for a in argv])
        return self

    def note(self, text: str) -> "Plan":
        self.notes.append(text)
        return self

    @property
    def lines(self) -> list[str]:
        return [redact(shlex.join(argv)) for argv in self.commands]

    def shown_lines(self, most: int = 12) -> list[str]:
        """The lines to display: a long plan (100 clones) keeps its first 5 and last 2."""
        lines = self.lines
        if len(lines) <= most:
            return lines
        return lines[:5] + [f"# … {len(lines) - 7} more like these …"] + lines[-2:]

    def __str__(self) -> str:
        out = [f"plan: {self.action}"] + [f"  $ {line}" for line in self.shown_lines()]
        out += [f"  # {note}" for note in self.notes]
        return "\n".join(out)

    def _repr_markdown_(self) -> str:
        out = [f"**Plan:** {self.action}"]
        if self.lines:
            out.append("```sh\n" + "\n".join(self.shown_lines()) + "\n```")
        out += [f"- {note}" for note in self.notes]
        return "\n\n".join(out)


@dataclass
class Result:
    """What an operation did. ``changed`` is False when the object was already so."""

    action: str
    changed: bool
    message: str
    plan: Plan
    value: Any = None
    # Show the value (a small DataFrame: a row per host of a fleet) under the message.
    show_value: bool = False

    @property
    def status(self) -> str:
        return "changed" if self.changed else "unchanged"

    def __str__(self) -> str:
        return f"{self.action}: {self.message}"

    def _repr_markdown_(self) -> str:
        text = f"**{self.action}**: {self.message}"
        if self.show_value and hasattr(self.value, "itertuples"):
            text += "\n\n" + markdown_table(self.value)
        if self.plan.lines:
            text += "\n\n```sh\n" + "\n".join(self.plan.shown_lines()) + "\n```"
        return text


def markdown_table(frame, most: int = 50) -> str:
    """A small DataFrame as a Markdown table (its first ``most`` rows)."""
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")
    columns = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(map(cell, columns)) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(map(cell, row)) + " |"
              for row in frame.head(most).itertuples(index=False)]
    if len(frame) > most:
        lines.append(f"\n… and {len(frame) - most} more rows")
    return "\n".join(lines)


def merged(action: str, *steps: "Result | Plan") -> "Result | Plan":
    """Steps done as one (a user and its keyring file): one plan, or one result that changed
    if any step did. Dry runs give plans only, so any plan makes the whole a plan."""
    plans = [s if isinstance(s, Plan) else s.plan for s in steps]
    plan = Plan(action, [c for p in plans for c in p.commands], [n for p in plans for n in p.notes])
    if any(isinstance(s, Plan) for s in steps):
        return plan
    changed = [s for s in steps if s.changed]
    message = "; ".join(s.message for s in (changed or steps[:1]))
    if not changed:
        message = "unchanged: " + "; ".join(s.message.removeprefix("unchanged: ") for s in steps)
    return Result(action, bool(changed), message, plan, value=steps[0].value)
