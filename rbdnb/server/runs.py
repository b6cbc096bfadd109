"""Runbook runs started from JupyterLab, kept on disk so they outlive a page or a server.

Each run is a directory ``RUNS/ID`` holding ``run.json`` (what was asked, the
process), ``parameters.json``, the executed notebook (papermill saves it after
every cell: that is the progress), its HTML, ``outcome.json`` (written by
``rbdnb run --json`` when it ends) and ``run.log``. A run's state is read from
those files, so a reloaded page, or a restarted server, sees the same runs.

A run is a ``python -m rbdnb run`` process: the same code path as the CLI.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

from ..base import proc as _proc
from ..errors import InvalidArgument, NotFound
from ..base.paths import PRIVATE_DIR_MODE, ensure_dir
from ..runbooks.run import check_parameters, runbook_info

RUN_ID = re.compile(r"[0-9]{8}-[0-9]{6}-[a-z0-9-]{1,64}-[0-9a-f]{6}")
RUNBOOK_NAME = re.compile(r"[0-9]{2}-[a-z0-9-]{1,64}")
STATES = ("running", "ok", "bad parameters", "cluster unreachable", "step failed", "lost")


class Runbooks:
    """The runbooks in one directory, by name (``02-libvirt-rbd``)."""

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.dir.glob("[0-9][0-9]-*.ipynb")
                      if RUNBOOK_NAME.fullmatch(p.stem))

    def path(self, name: object) -> Path:
        if not isinstance(name, str) or name not in self.names():
            raise NotFound(f"runbook {name!r} does not exist: one of {', '.join(self.names())}")
        return self.dir / f"{name}.ipynb"

    def info(self, name: str) -> dict:
        return runbook_info(self.path(name))

    def all(self) -> list[dict]:
        return [self.info(n) for n in self.names()]

    def check(self, name: object, parameters: object) -> Path:
        """The runbook's path, once the parameters fit it; else InvalidArgument/NotFound."""
        path = self.path(name)
        if not isinstance(parameters, dict):
            raise InvalidArgument("parameters must be a JSON object of name: value")
        check_parameters(path, parameters)
        return path


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _progress(notebook: Path) -> dict:
    """Cells done, of all code cells, from the metadata papermill saves after each cell."""
    nb = _read_json(notebook)
    if not isinstance(nb, dict):
        return {"done": 0, "total": 0, "current": None}
    cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    status = [c.get("metadata", {}).get("papermill", {}).get("status") for c in cells]
    current = next((i for i, s in enumerate(status) if s == "running"), None)
    return {"done": status.count("completed"), "total": len(cells), "current": current}


def make_run_dir(runs_dir: Path, runbook: str, parameters: dict) -> Path:
    """A new run's directory (0700, in a 0700 runs directory) holding its parameters.json."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    ensure_dir(runs_dir, PRIVATE_DIR_MODE, own=False)
    rundir = Path(runs_dir) / f"{stamp}-{runbook}-{secrets.token_hex(3)}"
    rundir.mkdir(mode=0o700)
    os.chmod(rundir, 0o700)
    (rundir / "parameters.json").write_text(json.dumps(parameters, indent=2) + "\n")
    return rundir


def write_run_record(rundir: Path, runbook: str, parameters: dict, pid: int, **more) -> dict:
    """A run's run.json: what was asked, and the process that runs it (its outcome is read
    from outcome.json, or the process's liveness, by :meth:`RunStore.get`)."""
    ref = _proc.ProcessRef.of("rbdnb run", pid)
    record = {"id": rundir.name, "runbook": runbook, "parameters": parameters,
              "started": dt.datetime.now().isoformat(timespec="seconds"),
              "process": ref.to_json() if ref else None, **more}
    (rundir / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


class RunStore:
    """Starts runs and reports them; ``root`` is the Jupyter root the links are relative to."""

    def __init__(self, runs_dir: str | os.PathLike, runbooks: Runbooks,
                 root: str | os.PathLike, env: dict[str, str] | None = None,
                 defaults: dict | None = None):
        self.dir = Path(runs_dir)
        self.runbooks = runbooks
        self.root = Path(root)
        self.env = env
        # Parameters the server is configured with (conf, libvirt_uri): given to every
        # runbook that declares them, unless the form sets them.
        self.defaults = {k: v for k, v in (defaults or {}).items() if v}
        self._children: dict[str, subprocess.Popen] = {}

    def _with_defaults(self, runbook: object, parameters: object):
        if not isinstance(parameters, dict):
            return parameters
        declared = {p["name"] for p in self.runbooks.info(runbook)["parameters"]}
        return {**{k: v for k, v in self.defaults.items() if k in declared}, **parameters}

    def start(self, runbook: object, parameters: object) -> dict:
        """Check, then start a run in the background; returns its record (with ``id``)."""
        parameters = self._with_defaults(runbook, parameters)
        path = self.runbooks.check(runbook, parameters)
        rundir = make_run_dir(self.dir, runbook, parameters)
        run_id = rundir.name
        argv = [sys.executable, "-m", "rbdnb", "run", str(path),
                "--parameters", str(rundir / "parameters.json"),
                "-o", str(rundir / f"{runbook}.ipynb"), "--html", str(rundir / f"{runbook}.html"),
                "--json"]
        with open(rundir / "outcome.json.part", "wb") as out, open(rundir / "run.log", "wb") as log:
            child = subprocess.Popen(argv, stdout=out, stderr=log, stdin=subprocess.DEVNULL,
                                     cwd=str(path.parent), env=self.env, start_new_session=True)
        self._children[run_id] = child
        write_run_record(rundir, runbook, parameters, child.pid)
        return self.get(run_id)

    def reap(self) -> None:
        """Collect finished children (no zombies), and publish their outcome."""
        # Called from the event loop and from handler threads: either may get there first.
        for run_id, child in list(self._children.items()):
            if child.poll() is not None and self._children.pop(run_id, None) is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.replace(self.dir / run_id / "outcome.json.part",
                               self.dir / run_id / "outcome.json")

    def _link(self, path: Path) -> str | None:
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return None

    def get(self, run_id: object) -> dict:
        if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id) or \
                not (self.dir / run_id / "run.json").is_file():
            raise NotFound(f"run {run_id!r} does not exist")
        self.reap()
        rundir = self.dir / run_id
        record = json.loads((rundir / "run.json").read_text())
        notebook = rundir / f"{record['runbook']}.ipynb"
        html = rundir / f"{record['runbook']}.html"
        ref = _proc.ProcessRef.from_json(record["process"]) if record.get("process") else None
        alive = run_id in self._children or (ref is not None and ref.alive())
        outcome = _read_json(rundir / "outcome.json")
        if outcome is None and not alive:
            # It finished while no server watched it: publish the outcome it wrote.
            outcome = _read_json(rundir / "outcome.json.part")
            if outcome is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.replace(rundir / "outcome.json.part", rundir / "outcome.json")
        if outcome is not None:
            state, message = outcome["status"], outcome.get("message", "")
            summary, seconds = outcome.get("summary", {}), outcome.get("seconds")
        else:
            state = "running" if alive else "lost"
            message = "" if alive else "the run's process ended without an outcome; see run.log"
            summary, seconds = {}, None
        return {**record, "state": state, "message": message, "summary": summary,
                "seconds": seconds, "progress": _progress(notebook),
                "notebook": self._link(notebook) if notebook.exists() else None,
                "html": self._link(html) if html.exists() else None,
                "log": self._link(rundir / "run.log")}

    def all(self) -> list[dict]:
        if not self.dir.is_dir():
            return []
        ids = sorted((p.name for p in self.dir.iterdir() if RUN_ID.fullmatch(p.name)
                      and (p / "run.json").is_file()), reverse=True)
        return [self.get(i) for i in ids]

    def copy(self, runbook: object, parameters: object) -> str:
        """A new notebook: the runbook with these parameters filled in; its path under root."""
        import nbformat
        from papermill.iorw import load_notebook_node
        from papermill.parameterize import parameterize_notebook
        parameters = self._with_defaults(runbook, parameters)
        path = self.runbooks.check(runbook, parameters)
        nb = parameterize_notebook(load_notebook_node(str(path)), parameters)
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        copies = self.dir.parent / "copies"
        # A copy is the user's own notebook: once run it may hold anything the kernel
        # printed, so it is private (0600 in a 0700 directory), whatever the umask.
        ensure_dir(copies, PRIVATE_DIR_MODE)
        for n in range(1000):
            out = copies / f"{runbook}-{stamp}{'' if n == 0 else f'-{n}'}.ipynb"
            try:
                # Created exclusively: two copies in the same second never overwrite.
                fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as fh:
                nbformat.write(nb, fh)
            break
        else:
            raise InvalidArgument(f"too many copies of {runbook} this second")
        link = self._link(out)
        if link is None:
            raise InvalidArgument(f"{out} is outside the Jupyter root {self.root}")
        return link
