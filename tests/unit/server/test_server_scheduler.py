"""jupyter-scheduler on runbooks: what counts as a runbook, its string parameters read as
`rbdnb run -p` reads them, a bad one refused in one line before a job is made."""
from pathlib import Path

import pytest
from jupyter_scheduler.exceptions import SchedulerError

from rbdnb.server import scheduler

RUNBOOKS = Path(__file__).resolve().parents[3] / "runbooks"


def test_runbooks_are_named_and_typed_notebooks(tmp_path):
    assert scheduler.runbook_of(RUNBOOKS / "01-qemu-rbd.ipynb")
    plain = tmp_path / "01-notes.ipynb"
    plain.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    assert not scheduler.runbook_of(plain)
    assert not scheduler.runbook_of(tmp_path / "notes.ipynb")


def test_parameters_are_read_as_rbdnb_run_reads_them():
    assert scheduler.parameter_values({"vm_count": "4", "dry_run": "True", "pool": "p",
                                       "pools": '["a", "b"]'}) == \
        {"vm_count": 4, "dry_run": True, "pool": "p", "pools": ["a", "b"]}


def test_a_bad_parameter_is_refused_naming_it():
    book = str(RUNBOOKS / "03-golden-image-clones.ipynb")
    scheduler._check(book, {"vm_count": "4"})
    with pytest.raises(SchedulerError, match=r"^03-golden-image-clones: parameter vm_count"):
        scheduler._check(book, {"vm_count": "0"})
    with pytest.raises(SchedulerError, match="unknown parameter 'nope'"):
        scheduler._check(book, {"nope": "1"})


def test_the_scheduler_runs_runbooks_with_rbdnbs_execution_manager():
    assert scheduler.RunbookScheduler.execution_manager_class.default_value is \
        scheduler.RunbookExecutionManager
