"""What the runbooks share: a first cell that checks the parameters, steps shown beside their
commands, a summary.

A runbook cell calls the core, then ``rb.step(result)``: the result is shown as
Markdown (what changed, and the equivalent CLI commands) and recorded. The last
cell's ``rb.summary()`` shows a table of the steps and publishes
``{"runbook", "steps", "changed"}`` as JSON output, so a scheduled run (or a
test) can tell that a second run changed nothing.
"""

from __future__ import annotations

import time

from ..base.plan import Plan, Result

SUMMARY_MIME = "application/vnd.rbdnb.summary+json"


def begin(name: str, *, check=None) -> "tuple[Runbook, object]":
    """The first cell of a runbook: check the parameters, connect, and start recording.

    The parameters are those the ``parameters`` cell declared with their kinds
    (:mod:`rbdnb.runbooks.parameters`), with the values they hold now in the kernel,
    papermill's injected ones included; ``check`` (no arguments) checks what kinds cannot
    say, such as a benchmark matrix as a whole. A bad parameter or an unreachable cluster
    stops the run here with one line (``bad parameter: ...`` / ``cluster unreachable:
    ...``), which ``rbdnb run`` turns into distinct exit codes. A run that changes things
    holds the runbook's lock for this cluster until its summary: a second run of it at
    once (a schedule overlapping a person) waits for the first, then finds its work done.
    """
    from IPython import get_ipython
    from IPython.core.error import UsageError
    from ..ceph.cluster import connect
    from ..errors import Locked, RbdnbError, Timeout
    from .parameters import check_namespace
    shell = get_ipython()
    try:
        values = check_namespace(shell.user_ns if shell is not None else {})
        if check is not None:
            check()
    except RbdnbError as exc:
        raise UsageError(f"bad parameter: {exc}") from None
    dry_run = bool(values.get("dry_run", False))
    try:
        cluster = connect(values.get("conf"), client=values.get("client", "admin"),
                          keyring=values.get("keyring"), timeout=values.get("timeout", 30))
    except Timeout as exc:
        raise UsageError(f"cluster unreachable: {exc}") from None
    except RbdnbError as exc:
        raise UsageError(f"bad parameter: {exc}") from None
    runbook = Runbook(name, dry_run)
    _show_once(runbook)
    _join_magics(shell, runbook, cluster, values.get("libvirt_uri"), values.get("libvirt_uris"))
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


def _join_magics(shell, runbook: "Runbook", cluster, uri, fleet=None) -> None:
    """The magics (``%rbd``, ``%ceph``, ``%virsh``, ``%qemu-img``) of this kernel act on the
    runbook's connection with its dry run, and each result they give is one of its steps:
    a cell may say ``%ceph osd pool create {pool} {pg_num}`` and nothing more."""
    from ..base.settings import settings
    settings.recorder = runbook.step
    magics = shell.magics_manager.registry.get("RbdnbMagics") if shell is not None else None
    if magics is not None:
        magics.join(cluster, uri, runbook.dry_run, fleet)


def _show_once(runbook: "Runbook") -> None:
    """A step's result is shown by :meth:`Runbook.step`; when the cell then ends with that
    step, IPython would show it again as the cell's value. Results and plans a step showed
    are not shown again; any other is shown as a step shows it."""
    from IPython import get_ipython
    from IPython.display import Markdown, display
    shell = get_ipython()
    if shell is None:
        return

    def show(value):
        if not any(value is seen for seen in runbook.shown):
            display(Markdown(value._repr_markdown_()))

    formatter = shell.display_formatter.ipython_display_formatter
    for kind in (Plan, Result):
        formatter.for_type(kind, show)


class Runbook:
    """Records the steps of one run."""

    def __init__(self, name: str, dry_run: bool = False):
        self.name = name
        self.dry_run = dry_run
        self.rows: list[dict] = []
        self.shown: list = []  # what step() showed (compared by identity)
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
        self.shown.append(result)
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
        from ..base.settings import settings
        if settings.recorder == self.step:
            settings.recorder = None  # the run is over: the magics are a user's again
        if self.lock is not None:
            self.lock.release()  # the run's changes are done
        frame = self.frame()
        data = {"runbook": self.name, "steps": len(frame), "changed": int(frame.changed.sum()),
                "seconds": round(time.time() - self.started, 1), "dry_run": self.dry_run}
        display({SUMMARY_MIME: data,
                 "text/plain": f"{self.name}: {data['changed']} of {data['steps']} steps "
                               f"changed something"}, raw=True)
        return frame[["step", "changed", "result"]]
