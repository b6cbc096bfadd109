"""Running runbooks unattended: ``rbdnb run`` and ``rbdnb docs build``.

``run_runbook`` validates parameters against the kinds the notebook's ``parameters`` cell
declares, executes it with papermill on the rbdnb kernel, redacts anything shaped like a
cephx key from the executed notebook, and renders HTML. Its outcome says which
kind of failure happened, so schedulers can tell a failed step from bad
parameters from an unreachable cluster (exit codes 4, 2 and 3).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidArgument
from .runbook import SUMMARY_MIME
from ..base.secret import redact

KERNEL = "rbdnb"
OK, BAD_PARAMETERS, UNREACHABLE, STEP_FAILED = 0, 2, 3, 4


@dataclass
class RunOutcome:
    """How an unattended run of a runbook ended: status, message, exit code, summary, files."""
    notebook: str
    output: str
    html: str | None
    parameters: dict
    status: str                       # ok | bad parameters | cluster unreachable | step failed
    exit_code: int
    message: str = ""
    summary: dict = field(default_factory=dict)
    started: str = ""
    seconds: float = 0.0


def convert_value(text: str):
    """A parameter value from the command line: True/False/None, numbers, JSON lists, or text."""
    if text in ("True", "true"):
        return True
    if text in ("False", "false"):
        return False
    if text in ("None", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def read_parameters_file(path: str | os.PathLike) -> dict:
    """Parameters from a JSON file holding one object (``rbdnb run --parameters``)."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise InvalidArgument(f"parameters file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise InvalidArgument(f"parameters file {path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"parameters file {path} must hold a JSON object")
    return data


def runbook_info(path: str | os.PathLike) -> dict:
    """A runbook's name, title, description (its first Markdown cell) and parameters."""
    nb = json.loads(Path(path).read_text())
    first = next(("".join(c["source"]) for c in nb.get("cells", [])
                  if c.get("cell_type") == "markdown"), "")
    lines = first.strip().splitlines()
    title = lines[0].lstrip("# ").strip() if lines else Path(path).stem
    description = "\n".join(lines[1:]).strip()
    params = [{"name": name, **p} for name, p in runbook_parameters(path).items()]
    return {"name": Path(path).stem, "title": title, "description": description,
            "parameters": params}


def runbook_parameters(path: str | os.PathLike) -> dict:
    """The parameters a runbook declares: name -> {default (source text), value, kind, type,
    help} (:func:`rbdnb.runbooks.parameters.declared`; ``type`` is what a form edits it as:
    bool, int, str, list, or None -- nullable, the help says what None means)."""
    from .parameters import declared
    return {name: {k: v for k, v in p.as_dict().items() if k != "name"}
            for name, p in declared(path).items()}


MAX_TEXT = 4096
MAX_ITEMS = 1000
MAX_DEPTH = 4


def check_value(name: str, value, depth: int = 0) -> None:
    """A parameter value JSON can carry faithfully, and of a sane size: finite numbers,
    strings of at most 4096 characters, at most 1000 items, nested at most 4 deep."""
    if depth > MAX_DEPTH:
        raise InvalidArgument(f"parameter {name}: nested more than {MAX_DEPTH} deep")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgument(f"parameter {name}: {value!r} is not a finite number")
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise InvalidArgument(f"parameter {name}: longer than {MAX_TEXT} characters")
    if isinstance(value, (list, tuple, dict)):
        if len(value) > MAX_ITEMS:
            raise InvalidArgument(f"parameter {name}: more than {MAX_ITEMS} items")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(value, dict) and not isinstance(key, str):
                raise InvalidArgument(f"parameter {name}: keys must be strings")
            check_value(name, item, depth + 1)
    elif value is not None and not isinstance(value, (bool, int, float, str)):
        raise InvalidArgument(f"parameter {name}: {type(value).__name__} is not a JSON value")


def check_parameters(path, given: dict) -> dict:
    """Refuse unknown names and values that do not fit their parameter's kind (pool and
    image names, sizes, counts and ranges, paths...), before any kernel starts."""
    from .parameters import check, declared
    parameters = declared(path)
    if not isinstance(given, dict) or len(given) > MAX_ITEMS:
        raise InvalidArgument("parameters must be an object of at most 1000 names")
    for name, value in given.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidArgument(f"parameter name {str(name)[:40]!r} is not valid")
        check_value(name, value)
    for name in given:
        if name not in parameters:
            raise InvalidArgument(f"unknown parameter {name!r} for {Path(path).name}: one of "
                                  f"{', '.join(parameters)}")
    check(parameters, given)
    return runbook_parameters(path)


@contextlib.contextmanager
def kernel_log(path: str):
    """Send what the kernel (and papermill) write to stdout and stderr -- warnings, what
    subprocesses print, a crash -- to ``path`` (0600) rather than into the one line a
    scheduler reads from ``rbdnb run`` (kept, redacted, when the run fails)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    saved = [os.dup(1), os.dup(2)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for copy in saved:
            os.close(copy)
        Path(path).write_text(redact(Path(path).read_text(errors="replace")))


def make_private(path: str | os.PathLike) -> None:
    """Create ``path`` (or keep it) readable by its owner only, whatever the umask: an
    executed notebook is the operator's record, and papermill rewrites it in place (the
    mode stays)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def redact_notebook(path: str | os.PathLike) -> None:
    """Rewrite an executed notebook with anything shaped like a cephx key redacted."""
    text = Path(path).read_text()
    Path(path).write_text(redact(text))


def render_html(notebook: str | os.PathLike, out: str | os.PathLike) -> None:
    """Render an executed notebook as a standalone HTML page (JupyterLab's look)."""
    import nbformat
    from nbconvert import HTMLExporter
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(
        nbformat.read(str(notebook), as_version=4))
    Path(out).write_text(redact(body))


def read_summary(notebook: str | os.PathLike) -> dict:
    """The summary a runbook's last cell records (steps, changed, failed), or {} if none."""
    nb = json.loads(Path(notebook).read_text())
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if SUMMARY_MIME in data:
                return data[SUMMARY_MIME]
    return {}


def _usage_error(notebook: str) -> str | None:
    try:
        nb = json.loads(Path(notebook).read_text())
    except (OSError, ValueError):
        return None
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            for line in "".join(output.get("text", "")).splitlines():
                if line.startswith("UsageError: "):
                    return line[len("UsageError: "):]
    return None


def run_runbook(notebook: str | os.PathLike, parameters: dict | None = None, *,
                output: str | os.PathLike | None = None, html_out: str | os.PathLike | None = None,
                kernel: str = KERNEL, cwd: str | None = None) -> RunOutcome:
    """Run a runbook with papermill (``rbdnb run``); never raises for a failed run: the outcome
    says what happened."""
    import papermill
    from papermill.exceptions import PapermillExecutionError
    notebook = str(notebook)
    parameters = dict(parameters or {})
    name = Path(notebook).stem
    output = str(output or Path("runs") / f"{name}.ipynb")
    started = dt.datetime.now().isoformat(timespec="seconds")
    outcome = RunOutcome(notebook, output, str(html_out) if html_out else None, parameters,
                         "ok", OK, started=started)
    try:
        check_parameters(notebook, parameters)
    except InvalidArgument as exc:
        outcome.status, outcome.exit_code, outcome.message = "bad parameters", BAD_PARAMETERS, \
            str(exc)
        return outcome
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    make_private(output)
    t0 = dt.datetime.now()
    try:
        with kernel_log(f"{output}.log"):
            papermill.execute_notebook(notebook, output, parameters=parameters,
                                       kernel_name=kernel, progress_bar=False,
                                       cwd=cwd or str(Path(notebook).parent))
    except PapermillExecutionError as exc:
        # IPython shows a UsageError as one stderr line, not as an error message: read it there.
        text = redact(_usage_error(output) or f"{exc.ename}: {exc.evalue}")
        if text.startswith("bad parameter"):
            outcome.status, outcome.exit_code = "bad parameters", BAD_PARAMETERS
        elif text.startswith("cluster unreachable") or exc.ename in ("Timeout", "TimeoutError"):
            # A daemon that stopped answering mid-run: the same exit code as one that
            # never answered, so a scheduler retries rather than calls a step broken.
            outcome.status, outcome.exit_code = "cluster unreachable", UNREACHABLE
        else:
            outcome.status, outcome.exit_code = "step failed", STEP_FAILED
        outcome.message = f"cell {exc.exec_count}: {text.splitlines()[0] if text else exc.ename}"
    outcome.seconds = round((dt.datetime.now() - t0).total_seconds(), 1)
    if outcome.exit_code == OK:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{output}.log")  # noise of a run that went well (kernel warnings)
    if os.path.exists(output):
        redact_notebook(output)
        outcome.summary = read_summary(output)
        if html_out:
            render_html(output, html_out)
    return outcome


def build_docs(outdir: str | os.PathLike, runbooks_dir: str | os.PathLike, *,
               parameters: dict | None = None, only: list[str] | None = None,
               scale: str | os.PathLike | None = None) -> list[RunOutcome]:
    """Execute every runbook (teardown last, confirmed) and write a static HTML site whose
    front page is the guide regenerated (:mod:`rbdnb.runbooks.docs`): each step's cell, its
    output and the real tool's check, run right after the runbook that made it. With
    ``scale`` (a ``rbdnb bench scale --output`` CSV), a page of its cost curves too."""
    from . import docs
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    if scale is not None and not Path(scale).is_file():  # refused before any runbook runs
        raise InvalidArgument(f"scale results {scale} do not exist: make them with "
                              f"rbdnb bench scale --output {scale}")
    books = sorted(p for p in Path(runbooks_dir).glob("[0-9][0-9]-*.ipynb"))
    if only:
        books = [b for b in books if b.stem in only]
    outcomes, cells, checks, fsid = [], {}, {}, ""
    for book in books:
        declared = runbook_parameters(book)
        # NAME applies to every runbook that declares it; RUNBOOK.NAME to that runbook only.
        params = {k: v for k, v in (parameters or {}).items() if "." not in k and k in declared}
        params.update({k.split(".", 1)[1]: v for k, v in (parameters or {}).items()
                       if k.startswith(book.stem + ".")})
        if "confirm" in declared:
            params["confirm"] = True
        outcome = run_runbook(book, params, output=outdir / f"{book.stem}.ipynb",
                              html_out=outdir / f"{book.stem}.html")
        outcomes.append(outcome)
        for tag, found in docs.tagged_cells(outcome.output).items():
            cells.setdefault(tag, []).extend((book.stem, c) for c in found)
        if outcome.exit_code == 0:
            values = {k: v["value"] for k, v in declared.items()} | params
            found, seen_fsid = docs.run_checks(book.stem, values)
            checks.update(found)
            fsid = fsid or seen_fsid
    meta = docs.build_metadata(fsid)
    rows = []
    for o in outcomes:
        name = Path(o.notebook).stem
        s = o.summary
        shown = {k: v for k, v in o.parameters.items() if k != "confirm"}
        rows.append(
            f"<tr class='{'ok' if o.exit_code == 0 else 'fail'}'><td><a href='{name}.html'>"
            f"{html.escape(name)}</a></td><td>{'pass' if o.exit_code == 0 else html.escape(o.status)}"
            f"</td><td>{html.escape(o.started)}</td><td>{o.seconds:.1f} s</td>"
            f"<td>{s.get('steps', '')}</td><td>{s.get('changed', '')}</td>"
            f"<td><code>{html.escape(json.dumps(shown)) if shown else 'defaults'}</code></td>"
            f"<td>{html.escape(o.message)}</td></tr>")
        if (outdir / f"{name}.html").exists():
            docs.stamp(outdir / f"{name}.html", meta)
    table = ("<table class='runs'><tr><th>runbook</th><th>result</th><th>started</th>"
             "<th>took</th><th>steps</th><th>changed</th><th>parameters</th><th>message</th>"
             f"</tr>{''.join(rows)}</table>")
    if scale is not None:
        page = docs.scale_page(scale, outdir, meta)
        table += (f"<p><a href='{page}'>Scale</a>: rbdnb against the rbd CLI as a pool grows "
                  f"to thousands of images (cost curves and ratios).</p>")
    (outdir / "index.html").write_text(docs.guide_page(cells, checks, meta, table))
    return outcomes
