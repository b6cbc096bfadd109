"""Runbooks in jupyter-scheduler (the Jupyter project's own scheduling extension).

``rbdnb lab install`` configures jupyter-scheduler with :class:`RunbookScheduler`. A job or
a job definition (a cron expression) on a runbook then:

* has its parameters checked against the runbook's schema when it is created, and refused
  in one line naming the parameter (jupyter-scheduler shows the message);
* runs the way ``rbdnb run`` does (papermill, the rbdnb kernel, the run's summary, every key
  redacted from the notebook and HTML it keeps), not through nbconvert;
* appears in rbdnb's runs panel too: a run directory under ``ROOT/runs/lab`` like those the
  panel starts, with the scheduler's job id in its record.

Notebooks that are not runbooks run as jupyter-scheduler runs them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

from jupyter_scheduler.exceptions import SchedulerError
from jupyter_scheduler.executors import DefaultExecutionManager
from jupyter_scheduler.scheduler import Scheduler
from traitlets import Type

from ..errors import InvalidArgument
from ..runbooks.run import check_parameters, convert_value, run_runbook
from .runs import RUNBOOK_NAME, make_run_dir, write_run_record

RUNS_DIR_ENV = "RBDNB_SCHEDULED_RUNS_DIR"


def runbook_of(path: str | os.PathLike) -> bool:
    """Whether a notebook is a runbook: named NN-name and declaring typed parameters."""
    from ..runbooks.parameters import declared
    path = Path(path)
    if not RUNBOOK_NAME.fullmatch(path.stem) or path.suffix != ".ipynb":
        return False
    try:
        return bool(declared(path))
    except Exception:
        return False


def parameter_values(given: dict | None) -> dict:
    """jupyter-scheduler's parameters are strings: read them as ``rbdnb run -p`` does."""
    return {k: convert_value(v) if isinstance(v, str) else v for k, v in (given or {}).items()}


def _check(input_path: str, parameters: dict | None) -> None:
    if not runbook_of(input_path):
        return
    try:
        check_parameters(input_path, parameter_values(parameters))
    except InvalidArgument as exc:
        raise SchedulerError(f"{Path(input_path).stem}: {exc}") from None


class RunbookExecutionManager(DefaultExecutionManager):
    """Runs a runbook job as ``rbdnb run`` does and records it in rbdnb's runs."""

    def execute(self):
        job = self.model
        source = self.staging_paths["input"]
        if not runbook_of(source):
            return super().execute()
        name = Path(job.input_filename).stem
        params = parameter_values(job.parameters)
        runs = Path(os.environ.get(RUNS_DIR_ENV) or
                    Path(self.root_dir).expanduser() / "runs" / "lab")
        rundir = make_run_dir(runs, name, params)
        record = write_run_record(rundir, name, params, os.getpid(), scheduler={
            "job_id": job.job_id, "job_definition_id": job.job_definition_id, "name": job.name})
        notebook, page = rundir / f"{name}.ipynb", rundir / f"{name}.html"
        try:
            outcome = run_runbook(source, params, output=notebook, html_out=page,
                                  cwd=os.path.dirname(source))
        except Exception as exc:  # no kernel, a kernel that died: the panel says so too
            from ..runbooks.run import RunOutcome, STEP_FAILED
            outcome = RunOutcome(source, str(notebook), str(page), params, "step failed",
                                 STEP_FAILED, message=f"{type(exc).__name__}: {exc}"[:300],
                                 started=record["started"])
        (rundir / "outcome.json").write_text(json.dumps(dataclasses.asdict(outcome), indent=2) + "\n")
        # What jupyter-scheduler keeps is what rbdnb kept: redacted, with its summary.
        for fmt, made in (("ipynb", notebook), ("html", page)):
            if fmt in (job.output_formats or []) and made.exists():
                shutil.copyfile(made, self.staging_paths[fmt])
                os.chmod(self.staging_paths[fmt], 0o600)
        if outcome.exit_code != 0:
            raise RuntimeError(f"{name}: {outcome.status}: {outcome.message}")


class RunbookScheduler(Scheduler):
    """jupyter-scheduler's scheduler, checking a runbook's parameters before a job or a job
    definition is made, and running runbooks with :class:`RunbookExecutionManager`.

    The rbdnb server's settings apply to scheduled runs as to the panel's: its ``conf`` and
    ``libvirt_uri`` fill in a runbook's parameters of those names unless the job sets them,
    and its ``runs_dir`` is where the runs are recorded."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        server = self.config.get("RbdnbServer", {})
        self.defaults = {k: str(server[k]) for k in ("conf", "libvirt_uri") if server.get(k)}
        if server.get("runs_dir"):
            # The job runs in a process of its own (spawned): it reads this from the env.
            os.environ[RUNS_DIR_ENV] = str(Path(server["runs_dir"]).expanduser())

    def _with_defaults(self, model) -> None:
        path = os.path.join(self.root_dir, model.input_uri)
        if not self.defaults or not runbook_of(path):
            return
        from ..runbooks.parameters import declared
        names = declared(path)
        model.parameters = {**{k: v for k, v in self.defaults.items() if k in names},
                            **(model.parameters or {})}

    execution_manager_class = Type(
        default_value=RunbookExecutionManager,
        klass="jupyter_scheduler.executors.ExecutionManager", config=True,
        help="The execution manager class to use (rbdnb's runs runbooks as rbdnb run does).")

    def create_job(self, model):
        if not model.job_definition_id:
            self._with_defaults(model)
            _check(os.path.join(self.root_dir, model.input_uri), model.parameters)
        return super().create_job(model)

    def create_job_definition(self, model):
        self._with_defaults(model)
        _check(os.path.join(self.root_dir, model.input_uri), model.parameters)
        return super().create_job_definition(model)
