"""Running runbooks unattended: ``rbdnb run`` and ``rbdnb docs build``.

``run_runbook`` validates parameters against the notebook's ``parameters`` cell,
executes it with papermill on the rbdnb kernel, redacts anything shaped like a
cephx key from the executed notebook, and renders HTML. Its outcome says which
kind of failure happened, so schedulers can tell a failed step from bad
parameters from an unreachable cluster (exit codes 4, 2 and 3).
"""

from __future__ import annotations

import ast
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


def _literal(text: str):
    """A parameter's default as a Python value, or the text itself if it is an expression."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


_TYPES = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict",
          type(None): "None"}


def runbook_parameters(path: str | os.PathLike) -> dict:
    """The parameters a runbook declares: name -> {default (source text), value, type, help}.

    ``type`` is that of the default value: bool, int, float, str, list, dict, or None
    (nullable: the help says what None means).
    """
    import papermill
    found = papermill.inspect_notebook(str(path))
    out = {}
    for name, p in found.items():
        value = _literal(p["default"])
        out[name] = {"default": p["default"], "value": value,
                     "type": _TYPES.get(type(value), "str"), "help": p["help"]}
    return out


_SAFE_CALLS = {"dict": dict, "list": list, "tuple": tuple, "str": str, "int": int}


def _value(node: ast.AST, scope: dict):
    """The value of a runbook's argument expression, computed from the parameters alone.

    Not ``eval``: only what runbooks write in their ``begin(...)`` call is understood --
    constants, names of parameters, lists, tuples, dicts, f-strings (with format specs), one
    simple comprehension, and dict/list/tuple/str/int of those. Anything else raises
    ValueError, and the run is not checked ahead (the runbook's own first cell checks it).
    """
    def value(n):
        if isinstance(n, ast.Constant):
            return n.value
        if isinstance(n, ast.Name):
            if n.id not in scope:
                raise ValueError(f"{n.id} is not a parameter")
            return scope[n.id]
        if isinstance(n, (ast.List, ast.Tuple)):
            items = [value(e) for e in n.elts]
            return items if isinstance(n, ast.List) else tuple(items)
        if isinstance(n, ast.Dict) and None not in n.keys:
            return {value(k): value(v) for k, v in zip(n.keys, n.values)}
        if isinstance(n, ast.JoinedStr):
            return "".join(value(part) for part in n.values)
        if isinstance(n, ast.FormattedValue):
            v = value(n.value)
            v = {-1: v, 115: str(v), 114: repr(v), 97: ascii(v)}[n.conversion]
            return format(v, value(n.format_spec) if n.format_spec else "")
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and \
                n.func.id in _SAFE_CALLS and n.func.id not in scope:
            kwargs = {kw.arg: value(kw.value) for kw in n.keywords if kw.arg}
            return _SAFE_CALLS[n.func.id](*[value(a) for a in n.args], **kwargs)
        if isinstance(n, ast.ListComp) and len(n.generators) == 1:
            gen = n.generators[0]
            if isinstance(gen.target, ast.Name) and not gen.ifs and not gen.is_async:
                out = []
                for item in value(gen.iter):
                    inner = {**scope, gen.target.id: item}
                    out.append(_value(n.elt, inner))
                return out
        raise ValueError(f"{type(n).__name__} is not understood here")
    return value(node)


def _begin_checks(path: str | os.PathLike, values: dict) -> dict | None:
    """The arguments the runbook's own ``begin(...)`` call would check, for these values.

    The first code cell that calls ``begin`` is read (never run): its simple assignments,
    then the keyword arguments of ``begin``, are computed from the parameters alone
    (:func:`_value`). None if the runbook has no such call or an argument needs more.
    """
    nb = json.loads(Path(path).read_text())
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        try:
            tree = ast.parse("".join(cell.get("source", "")))
        except SyntaxError:
            continue
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
                 and isinstance(n.func, ast.Name) and n.func.id == "begin"]
        if not calls:
            continue
        scope = dict(values)
        try:
            for stmt in tree.body:
                if calls[0] in ast.walk(stmt):
                    break
                if isinstance(stmt, ast.Assign) and all(isinstance(t, ast.Name)
                                                        for t in stmt.targets):
                    computed = _value(stmt.value, scope)
                    scope.update({t.id: computed for t in stmt.targets})
            return {kw.arg: _value(kw.value, scope) for kw in calls[0].keywords if kw.arg}
        except ValueError as exc:
            if "is not understood here" in str(exc):
                return None  # the runbook's first cell checks it when it runs
            raise InvalidArgument(f"bad parameter: the values given do not fit together "
                                  f"({type(exc).__name__}: {exc})") from None
        except Exception as exc:
            # The runbook's first cell would fail the same way on these values.
            raise InvalidArgument(f"bad parameter: the values given do not fit together "
                                  f"({type(exc).__name__}: {exc})") from None
    return None


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
    """Refuse unknown names, values whose type does not fit the default's, and values the
    runbook's own first cell would refuse (pool and image names, sizes, counts, paths...),
    before any kernel starts."""
    declared = runbook_parameters(path)
    if not isinstance(given, dict) or len(given) > MAX_ITEMS:
        raise InvalidArgument("parameters must be an object of at most 1000 names")
    for name, value in given.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidArgument(f"parameter name {str(name)[:40]!r} is not valid")
        check_value(name, value)
    for name, value in given.items():
        if name not in declared:
            raise InvalidArgument(f"unknown parameter {name!r} for {Path(path).name}: one of "
                                  f"{', '.join(declared)}")
        default_value = declared[name]["value"]
        if default_value is None or value is None:
            continue
        want = type(default_value)
        ok = isinstance(value, want) or (want is float and isinstance(value, int))
        if want is int and isinstance(value, bool):
            ok = False
        if not ok:
            raise InvalidArgument(f"parameter {name}={value!r}: expected "
                                  f"{want.__name__} like its default {declared[name]['default']}")
    values = {name: p["value"] for name, p in declared.items()}
    checks = _begin_checks(path, {**values, **given})
    if checks is not None:
        from .runbook import check_begin
        check_begin(**checks)
    return declared


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
               parameters: dict | None = None, only: list[str] | None = None) -> list[RunOutcome]:
    """Execute every runbook (teardown last, confirmed) and write a static HTML site."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    books = sorted(p for p in Path(runbooks_dir).glob("[0-9][0-9]-*.ipynb"))
    if only:
        books = [b for b in books if b.stem in only]
    outcomes = []
    for book in books:
        declared = runbook_parameters(book)
        # NAME applies to every runbook that declares it; RUNBOOK.NAME to that runbook only.
        params = {k: v for k, v in (parameters or {}).items() if "." not in k and k in declared}
        params.update({k.split(".", 1)[1]: v for k, v in (parameters or {}).items()
                       if k.startswith(book.stem + ".")})
        if "confirm" in declared:
            params["confirm"] = True
        outcomes.append(run_runbook(book, params, output=outdir / f"{book.stem}.ipynb",
                                    html_out=outdir / f"{book.stem}.html"))
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
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>rbdnb runbooks</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}}tr.ok td:nth-child(2){{color:#080}}
tr.fail td:nth-child(2){{color:#b00;font-weight:bold}}</style></head><body>
<h1>rbdnb runbooks</h1><p>Executed {html.escape(dt.datetime.now().isoformat(timespec='seconds'))}
against the cluster the parameters name (default: the rbdnb sandbox).</p>
<table><tr><th>runbook</th><th>result</th><th>started</th><th>took</th><th>steps</th>
<th>changed</th><th>parameters</th><th>message</th></tr>
{''.join(rows)}</table></body></html>"""
    (outdir / "index.html").write_text(redact(page))
    return outcomes
