"""The runbooks' sources: each ``runbooks/NN-name.py`` (jupytext's percent format, what a
maintainer edits and reviews) and its ``.ipynb`` (what papermill runs, committed without
outputs) hold the same cells; the sources are Python that lints clean."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[3]
RUNBOOKS = ROOT / "runbooks"
SOURCES = sorted(RUNBOOKS.glob("[0-9][0-9]-*.py"))


def cells(notebook) -> list[tuple]:
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", [])))
            for c in notebook.cells]


def test_every_notebook_is_paired_with_its_source():
    assert SOURCES, "no runbook sources"
    assert [p.stem for p in SOURCES] == sorted(p.stem for p in RUNBOOKS.glob("*.ipynb"))
    config = (RUNBOOKS / "jupytext.toml").read_text()
    assert 'formats = "ipynb,py:percent"' in config


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_source_and_notebook_hold_the_same_cells(source):
    mine, theirs = cells(jupytext.read(source)), cells(jupytext.read(source.with_suffix(".ipynb")))
    for number, (a, b) in enumerate(zip(mine, theirs)):
        assert a == b, f"{source.name}, cell {number}: the .py and the .ipynb differ " \
                       f"(jupytext --sync runbooks/{source.name})"
    assert len(mine) == len(theirs), f"{source.name}: {len(mine)} cells, its .ipynb " \
                                     f"{len(theirs)} (jupytext --sync runbooks/{source.name})"


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_notebook_is_committed_clean(source):
    raw = json.loads(source.with_suffix(".ipynb").read_text())
    code = [c for c in raw["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    assert sum("parameters" in c.get("metadata", {}).get("tags", []) for c in code) == 1
    assert raw["metadata"]["kernelspec"]["name"] == "rbdnb"
    ids = [c.get("id") for c in raw["cells"]]
    assert len(set(ids)) == len(ids) and None not in ids


def test_sources_lint_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is a test dependency (pip install -e '.[test]')"
    done = subprocess.run([ruff, "check", "--no-cache", "--select", "F,E9", *map(str, SOURCES)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
