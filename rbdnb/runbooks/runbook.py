"""What the runbooks share: parameter checks, steps shown beside their commands, a summary.

A runbook cell calls the core, then ``rb.step(result)``: the result is shown as
Markdown (what changed, and the equivalent CLI commands) and recorded. The last
cell's ``rb.summary()`` shows a table of the steps and publishes
``{"runbook", "steps", "changed"}`` as JSON output, so a scheduled run (or a
test) can tell that a second run changed nothing.
"""

from __future__ import annotations

import os
import re
import time

from ..errors import InvalidArgument, ParameterError
from ..base.plan import Plan, Result
from ..base.specs import check_name, parse_client, parse_spec
from ..base.units import check_int, parse_size

SUMMARY_MIME = "application/vnd.rbdnb.summary+json"


def _check_path_text(name: str, value) -> str:
    if not isinstance(value, str) or not value or any(ch in value for ch in "\0\n\r"):
        raise ParameterError(f"parameter {name}: {value!r} is not a valid path")
    return value


def check_parameters(*, conf=None, client="admin", keyring=None, libvirt_uri=None,
                     dry_run=False, pools=(), images=(), snapshots=(), sizes=(), clients=(),
                     counts=(), ranges=(), paths=(), dirs=(), names=(), domains=(), flags=(),
                     bench: dict | None = None) -> None:
    """Check every parameter before the first step; one clear message for the first bad one.

    ``pools``, ``images``, ``snapshots``, ``sizes``, ``clients``, ``names`` (a name or a
    part of one), ``domains`` (libvirt domain names), ``paths`` (must exist, or None),
    ``dirs`` (may be made, or None), ``flags`` (booleans) are ``(name, value)`` pairs;
    ``counts`` must be 1 to 10000; ``ranges`` are ``(name, value, low, high)``.
    """
    try:
        for name, value in (("conf", conf), ("keyring", keyring)):
            if value is not None and not os.path.isfile(_check_path_text(name, value)):
                raise ParameterError(f"parameter {name}: {value} does not exist")
        parse_client(client)
        if libvirt_uri is not None:
            from ..virt import check_uri
            check_uri(libvirt_uri)
        for name, value in (("dry_run", dry_run), *flags):
            if not isinstance(value, bool):
                raise ParameterError(f"parameter {name}: {value!r} is not True or False")
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
        for name, value in names:
            if not isinstance(value, str) or (value and not _NAME_PART.fullmatch(value)):
                raise ParameterError(f"parameter {name}: {value!r} is not valid in a name: use "
                                     f"letters, digits, '.', '_' and '-'")
        for name, value in domains:
            from ..virt import check_domain_name
            check_domain_name(value)
        for name, value in counts:
            check_int(value, f"parameter {name}:", 1, 10000, error=ParameterError)
        for name, value, low, high in ranges:
            check_int(value, f"parameter {name}:", low, high, error=ParameterError)
        for name, value in paths:
            if value is not None and not os.path.exists(_check_path_text(name, value)):
                raise ParameterError(f"parameter {name}: {value} does not exist")
        for name, value in dirs:
            if value is not None:
                _check_path_text(name, value)
                if os.path.exists(value) and not os.path.isdir(value):
                    raise ParameterError(f"parameter {name}: {value} is not a directory")
        if bench is not None:
            from ..bench import validate
            validate(**bench)
    except ParameterError:
        raise
    except InvalidArgument as exc:
        raise ParameterError(exc.template) from None


def check_begin(*, timeout=30, **checks) -> None:
    """What :func:`begin` checks, for ``rbdnb run`` to check it before a kernel starts."""
    ranges = [("timeout", timeout, 1, 3600), *checks.pop("ranges", ())]
    check_parameters(ranges=ranges, **checks)


_NAME_PART = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def begin(name: str, *, dry_run: bool = False, conf=None, client="admin", keyring=None,
          timeout=30, **checks) -> "tuple[Runbook, object]":
    """The first cell of a runbook: check the parameters, connect, and start recording.

    A bad parameter or an unreachable cluster stops the run here with one line
    (``bad parameter: ...`` / ``cluster unreachable: ...``), which ``rbdnb run``
    turns into distinct exit codes. A run that changes things holds the runbook's lock
    for this cluster until its summary: a second run of it at once (a schedule
    overlapping a person) waits for the first, then finds its work done.
    """
    from IPython.core.error import UsageError
    from ..ceph.cluster import connect
    from ..errors import Locked, RbdnbError, Timeout
    try:
        check_begin(conf=conf, client=client, keyring=keyring, dry_run=dry_run,
                    timeout=timeout, **checks)
    except RbdnbError as exc:
        raise UsageError(f"bad parameter: {exc}") from None
    try:
        cluster = connect(conf, client=client, keyring=keyring, timeout=timeout)
    except Timeout as exc:
        raise UsageError(f"cluster unreachable: {exc}") from None
    except RbdnbError as exc:
        raise UsageError(f"bad parameter: {exc}") from None
    runbook = Runbook(name, dry_run)
    if not dry_run:
        from ..ceph import locks
        waited = []
        try:
            runbook.lock = locks.Held(f"runbook:{name}:{cluster.fsid}", what=f"runbook {name}",
                                      on_wait=waited.append)
        except Locked as exc:
            cluster.close()
            raise UsageError(f"step failed: {exc}") from None
        if waited:
            runbook.note("wait for another run", False,
                         f"another run of {name} was going ({waited[0]}): waited for it to end")
    return runbook, cluster


class Runbook:
    """Records the steps of one run."""

    def __init__(self, name: str, dry_run: bool = False):
        self.name = name
        self.dry_run = dry_run
        self.rows: list[dict] = []
        self.started = time.time()
        self.lock = None

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
        if self.lock is not None:
            self.lock.release()  # the run's changes are done
        frame = self.frame()
        data = {"runbook": self.name, "steps": len(frame), "changed": int(frame.changed.sum()),
                "seconds": round(time.time() - self.started, 1), "dry_run": self.dry_run}
        display({SUMMARY_MIME: data,
                 "text/plain": f"{self.name}: {data['changed']} of {data['steps']} steps "
                               f"changed something"}, raw=True)
        return frame[["step", "changed", "result"]]
