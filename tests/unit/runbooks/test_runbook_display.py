"""A runbook shows each step once: the step's display, not again as the cell's value."""
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from rbdnb.base.plan import Plan, Result
from rbdnb.runbooks.runbook import Runbook, _show_once


def new_runbook() -> Runbook:
    InteractiveShell.instance()  # the kernel's shell, as a runbook has
    rb = Runbook("test")
    _show_once(rb)
    return rb


def markdown_shown(cell: str, **names) -> list[str]:
    shell = InteractiveShell.instance()
    shell.user_ns.update(names)
    with capture_output() as captured:
        done = shell.run_cell(cell, store_history=False)
    assert done.success, done.error_in_exec
    # The cell's value, had IPython shown it, is in stdout (a terminal shell's Out[]).
    assert "Result(" not in captured.stdout and "Plan(" not in captured.stdout, captured.stdout
    return [o.data["text/markdown"] for o in captured.outputs if "text/markdown" in o.data]


def test_a_step_that_ends_a_cell_is_shown_once():
    rb = new_runbook()
    made = Result("create image p/a", True, "created", Plan("create image p/a").add("rbd", "x"))
    shown = markdown_shown("rb.step(made)", rb=rb, made=made)
    assert shown == [made._repr_markdown_()]
    assert rb.rows[0]["step"] == "create image p/a"


def test_two_steps_in_a_cell_are_each_shown_once():
    rb = new_runbook()
    one = Result("one", True, "made", Plan("one"))
    two = Result("two", False, "unchanged: exists", Plan("two"))
    shown = markdown_shown("rb.step(one)\nrb.step(two)", rb=rb, one=one, two=two)
    assert shown == [one._repr_markdown_(), two._repr_markdown_()]


def test_a_result_no_step_showed_is_shown_as_a_step_shows_it():
    new_runbook()
    plan = Plan("remove image p/a").add("rbd", "rm", "p/a")
    assert markdown_shown("plan", plan=plan) == [plan._repr_markdown_()]
