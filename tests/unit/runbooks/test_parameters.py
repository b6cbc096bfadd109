"""Runbook parameters declared once, with kinds: read without running the cell, checked the
same way by ``rbdnb run``, the server and the runbook's first cell."""
import json
import re
from pathlib import Path

import nbformat
import pytest
from IPython.core.interactiveshell import InteractiveShell

from rbdnb.errors import InvalidArgument, ParameterError
from rbdnb.runbooks.parameters import CHECKS, check, check_namespace, declared
from rbdnb.runbooks.run import check_parameters

ROOT = Path(__file__).resolve().parents[3]

CELL = '''# a runbook's parameters
pool: "pool" = "p"                  # the pool
count: "count" = 3
shown: "int[0,count]" = 1           # at most count
conf: "file" = None                 # None: the sandbox's
sizes: "list[size]" = ["4K", "1M"]
flag: "bool" = False
'''


def notebook(tmp_path, cell=CELL) -> Path:
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3",
                                                           "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(cell, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("raise SystemExit('never run')")]
    path = tmp_path / "10-test.ipynb"
    path.write_text(nbformat.writes(nb))
    return path


def test_the_cell_declares_name_kind_default_and_help(tmp_path):
    found = declared(notebook(tmp_path))
    assert list(found) == ["pool", "count", "shown", "conf", "sizes", "flag"]
    assert (found["pool"].kind, found["pool"].value, found["pool"].help) == \
        ("pool", "p", "the pool")
    assert found["shown"].kind == "int[0,count]" and found["shown"].type == "int"
    assert found["conf"].type == "None" and found["sizes"].type == "list"
    assert found["flag"].type == "bool"


def test_a_parameter_without_a_kind_is_an_error_of_the_runbook(tmp_path):
    with pytest.raises(InvalidArgument, match='parameter loose has no kind'):
        declared(notebook(tmp_path, CELL + "loose = 1\n"))


@pytest.mark.parametrize("given, message", [
    ({"pool": "bad/pool"}, "parameter pool"),
    ({"pool": "evil\n"}, "parameter pool"),
    ({"pool": 3}, "parameter pool: 3 is not a pool"),
    ({"count": 0}, "count: 0 is not valid: expected a whole number from 1 to 10000"),
    ({"count": True}, "count: True is not valid"),
    ({"count": 2.5}, "count: 2.5 is not valid"),
    ({"shown": 4}, "shown: 4 is not valid: expected a whole number from 0 to 3"),  # a bound
    ({"pool": "bad/pool"}, "parameter pool: pool name 'bad/pool' is not valid"),   # one prefix
    ({"count": 5, "shown": 5}, None),                   # ... with the value given
    ({"conf": "/nonexistent"}, "conf: /nonexistent does not exist"),
    ({"conf": None}, None),                             # None: its documented meaning
    ({"pool": None}, "pool: None is not a pool"),
    ({"sizes": "4K"}, "sizes: '4K' is not a list of size"),
    ({"sizes": ["4K", "10Q"]}, "parameter sizes '10Q' is not valid"),
    ({"flag": "yes"}, "flag: 'yes' is not True or False"),
])
def test_values_are_checked_against_their_kinds(tmp_path, given, message):
    path = notebook(tmp_path)
    if message is None:
        check_parameters(path, given)
        return
    with pytest.raises(ParameterError, match=re.escape(message) if "\\" not in message
                       else message):
        check_parameters(path, given)


def test_unknown_names_are_refused_naming_the_declared_ones(tmp_path):
    with pytest.raises(InvalidArgument, match="unknown parameter 'poool'.*one of pool, count"):
        check_parameters(notebook(tmp_path), {"poool": "x"})


def test_a_kind_rbdnb_does_not_know_is_refused(tmp_path):
    with pytest.raises(InvalidArgument, match="the kind 'colour' is not one rbdnb knows"):
        check(declared(notebook(tmp_path, 'c: "colour" = "red"\n')), {})


def test_the_first_cell_checks_what_the_kernel_holds():
    """The parameters cell leaves its kinds in __annotations__; papermill's injected cell
    (plain assignments) changes the values, not the kinds."""
    ip = InteractiveShell.instance()
    ns = {}
    exec(compile(CELL, "<parameters>", "exec"), ns)
    exec("pool = 'given'\nshown = 3", ns)          # what papermill injects
    assert check_namespace(ns)["pool"] == "given"
    exec("shown = 4", ns)
    with pytest.raises(ParameterError, match="shown: 4 is not valid"):
        check_namespace(ns)
    assert ip is not None


def test_the_kinds_ruff_is_told_of_are_rbdnb_s():
    text = (ROOT / "runbooks" / "ruff.toml").read_text()
    listed = set(json.loads(re.search(r"builtins = (\[.*?\])", text, re.S).group(1)))
    assert set(CHECKS) - {"str"} | {"count"} <= listed


def test_every_runbook_declares_its_parameters_with_kinds():
    for path in sorted((ROOT / "runbooks").glob("[0-9][0-9]-*.ipynb")):
        found = declared(path)
        assert {"conf", "client", "keyring", "libvirt_uri", "dry_run", "timeout"} <= set(found)
        check(found, {})
