"""What the runbooks share: parameter checks, steps shown beside their commands, a summary.

A runbook cell calls the core, then ``rb.step(result)``: the result is shown as
Markdown (what changed, and the equivalent CLI commands) and recorded. The last
cell's ``rb.summary()`` shows a table of the steps and publishes
``{"runbook", "steps", "changed"}`` as JSON output, so a scheduled run (or a
test) can tell that a second run changed nothing.
"""

from __future__ import annotations

import os
import time

from .errors import InvalidArgument
from .plan import Plan, Result
from .specs import check_name, parse_client, parse_spec
from .units import parse_size

SUMMARY_MIME = "application/vnd.rbdnb.summary+json"


class ParameterError(InvalidArgument):
    """A runbook parameter is wrong; the run stops in its first cell."""


def check_parameters(*, conf=None, client="admin", keyring=None, pools=(), images=(),
                     snapshots=(), sizes=(), clients=(), counts=(), paths=(),
                     bench: dict | None = None) -> None:
    """Check every parameter before the first step; one clear message for the first bad one."""
    try:
        if conf is not None and not os.path.isfile(str(conf)):
            raise ParameterError(f"parameter conf: {conf} does not exist")
        if keyring is not None and not os.path.isfile(str(keyring)):
            raise ParameterError(f"parameter keyring: {keyring} does not exist")
        parse_client(client)
        for name, value in pools:
            check_name(value, f"parameter {name}: pool")
        for name, value in images:
            parse_spec(value)
        for name, value in snapshots:
            parse_spec(value, snap="required")
        for name, value in sizes:
            parse_size(value, what=f"parameter {name}")
        for name, value in clients:
            parse_client(value)
        for name, value in counts:
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10000:
                raise ParameterError(f"parameter {name}: {value!r} is not a count from 1 to 10000")
        for name, value in paths:
            if value is not None and not os.path.exists(str(value)):
                raise ParameterError(f"parameter {name}: {value} does not exist")
        if bench is not None:
            from .bench import validate
            validate(**bench)
    except ParameterError:
        raise
    except InvalidArgument as exc:
        raise ParameterError(str(exc)) from None


def begin(name: str, *, dry_run: bool = False, conf=None, client="admin", keyring=None,
          **checks) -> "tuple[Runbook, object]":
    """The first cell of a runbook: check the parameters, connect, and start recording.

    A bad parameter or an unreachable cluster stops the run here with one line
    (``bad parameter: ...`` / ``cluster unreachable: ...``), which ``rbdnb run``
    turns into distinct exit codes.
    """
    from IPython.core.error import UsageError
    from .cluster import connect
    from .errors import RbdnbError, Timeout
    try:
        check_parameters(conf=conf, client=client, keyring=keyring, **checks)
    except RbdnbError as exc:
        raise UsageError(f"bad parameter: {exc}") from None
    try:
        cluster = connect(conf, client=client, keyring=keyring)
    except Timeout as exc:
        raise UsageError(f"cluster unreachable: {exc}") from None
    except RbdnbError as exc:
        raise UsageError(f"bad parameter: {exc}") from None
    return Runbook(name, dry_run), cluster


class Runbook:
    """Records the steps of one run."""

    def __init__(self, name: str, dry_run: bool = False):
        self.name = name
        self.dry_run = dry_run
        self.rows: list[dict] = []
        self.started = time.time()

    def step(self, result, title: str | None = None):
        """Show a Result (or Plan) with its commands, record it, and return it."""
        from IPython.display import Markdown, display
        if isinstance(result, Plan):
            changed, message, lines, action = False, "dry run: nothing changed", result.lines, \
                result.action
        elif isinstance(result, Result):
            changed, message, lines, action = result.changed, result.message, \
                result.plan.lines, result.action
        else:
            raise TypeError(f"step() takes a Result or a Plan, not {type(result).__name__}")
        self.rows.append({"step": title or action, "changed": changed, "result": message,
                          "commands": "\n".join(lines)})
        display(Markdown(result._repr_markdown_()))
        return result

    def note(self, title: str, changed: bool, message: str, commands: list[str] = ()):
        """Record a step that is not a core Result (e.g. a check), and show it."""
        from IPython.display import Markdown, display
        self.rows.append({"step": title, "changed": changed, "result": message,
                          "commands": "\n".join(commands)})
        display(Markdown(f"**{title}**: {message}"))

    def frame(self):
        import pandas as pd
        return pd.DataFrame(self.rows, columns=["step", "changed", "result", "commands"])

    def summary(self):
        from IPython.display import display
        frame = self.frame()
        data = {"runbook": self.name, "steps": len(frame), "changed": int(frame.changed.sum()),
                "seconds": round(time.time() - self.started, 1), "dry_run": self.dry_run}
        display({SUMMARY_MIME: data,
                 "text/plain": f"{self.name}: {data['changed']} of {data['steps']} steps "
                               f"changed something"}, raw=True)
        return frame[["step", "changed", "result"]]
